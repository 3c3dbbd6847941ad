"""fastbp.MLPClassifier / MLPRegressor as drop-ins for scikit-learn's.

The central check is parity: with the same parameters and random_state, fastbp
reproduces scikit-learn's own fit (initial weights, batch order, penalty
scaling, update rules, stopping) to rounding, for every solver and output
type — so every difference in meaning shows up here as a number. scikit-learn's
own test module runs against fastbp in test_sklearn_mlp_suite.py.
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
import scipy.sparse  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_digits, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastbp  # noqa: E402
from fastbp import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_digits_X, _digits_y = load_digits(n_class=3, return_X_y=True)
X_DIGITS = MinMaxScaler().fit_transform(_digits_X[:150])
Y_MULTI = _digits_y[:150]          # three classes: softmax
Y_BINARY = (Y_MULTI == 1).astype(int)  # two classes: one logistic unit
X_ML, Y_ML = make_multilabel_classification(n_samples=60, n_features=8, random_state=0)
RNG = np.random.default_rng(0)
X_REG = RNG.normal(size=(70, 4))
Y_REG = np.sin(X_REG[:, 0]) + X_REG[:, 1] * X_REG[:, 2]
Y_COUNTS = RNG.poisson(np.exp(0.5 * X_REG[:, 0]))


def params_of(est):
    return list(est.coefs_) + list(est.intercepts_)


def assert_same_fit(a, b, rtol=1e-7, atol=1e-10):
    """scikit-learn's estimator ``a`` and fastbp's ``b`` hold the same model."""
    assert len(a.coefs_) == len(b.coefs_)
    for pa, pb in zip(params_of(a), params_of(b)):
        assert pa.shape == pb.shape
        np.testing.assert_allclose(pb, pa, rtol=rtol, atol=atol)
    assert b.n_iter_ == a.n_iter_ and b.t_ == a.t_
    np.testing.assert_allclose(b.loss_, a.loss_, rtol=rtol)
    for name in ("loss_curve_", "validation_scores_"):
        if hasattr(a, name) and getattr(a, name) is not None:
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=rtol, atol=atol)
    for name in ("best_loss_", "best_validation_score_", "n_layers_", "n_outputs_",
                 "out_activation_"):
        assert getattr(b, name, "absent") == pytest.approx(getattr(a, name, "absent")) \
            if isinstance(getattr(a, name, None), float) else \
            getattr(b, name, "absent") == getattr(a, name, "absent"), name


def both(cls_name, **params):
    return getattr(sk, cls_name)(**params), getattr(fastbp, cls_name)(**params)


# ------------------------------------------------------------------- parity
SOLVERS = [
    dict(solver="lbfgs", max_iter=30),
    dict(solver="adam", max_iter=8, batch_size=32),             # 150 = 4·32 + 22: a short last batch
    dict(solver="sgd", max_iter=8, batch_size=40, learning_rate_init=0.1),   # Nesterov momentum
    dict(solver="sgd", max_iter=8, batch_size=40, momentum=0.5, nesterovs_momentum=False,
         learning_rate="invscaling", learning_rate_init=0.5, power_t=0.3),
    dict(solver="sgd", max_iter=6, momentum=0, shuffle=False, learning_rate_init=0.3),
]
ACTIVATIONS = ["relu", "logistic", "tanh", "identity"]
LBFGS_TOL = dict(rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda p: "-".join(map(str, p.values())))
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel"])
def test_classifier_reproduces_sklearn(solver, target):
    X, y = {"binary": (X_DIGITS, Y_BINARY), "multiclass": (X_DIGITS, Y_MULTI),
            "multilabel": (X_ML, Y_ML)}[target]
    if target == "multilabel" and solver["solver"] == "lbfgs":
        # Between its 20th and 30th iteration L-BFGS on this problem amplifies
        # a 1e-9 difference in the parameters ~1e6-fold whatever its source
        # (measured against scikit-learn: 5e-9 → 7e-6 with row-major chunks,
        # 2e-9 → 8e-3 with unit-major ones, whose sums run in another order),
        # so compare where the fits are still a comparison of the gradients.
        solver = dict(solver, max_iter=20)
    a, b = both("MLPClassifier", hidden_layer_sizes=(7, 5), alpha=0.01, random_state=3,
                **solver)
    a.fit(X, y)
    b.fit(X, y)
    # L-BFGS amplifies rounding differences (summation order) over its iterations
    assert_same_fit(a, b, **(LBFGS_TOL if solver["solver"] == "lbfgs" else {}))
    assert b.out_activation_ == {"binary": "logistic", "multiclass": "softmax",
                                 "multilabel": "logistic"}[target]
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(b.predict(X), a.predict(X))
    np.testing.assert_array_equal(b.classes_, a.classes_)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("solver", SOLVERS[:3], ids=["lbfgs", "adam", "sgd"])
def test_regressor_reproduces_sklearn(solver, activation):
    a, b = both("MLPRegressor", hidden_layer_sizes=(6,), activation=activation, alpha=0.1,
                random_state=1, **solver)
    a.fit(X_REG, Y_REG)
    b.fit(X_REG, Y_REG)
    assert_same_fit(a, b, **(LBFGS_TOL if solver["solver"] == "lbfgs" else {}))
    np.testing.assert_allclose(b.predict(X_REG), a.predict(X_REG), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS[:2], ids=["lbfgs", "adam"])
def test_poisson_regressor_reproduces_sklearn(solver):
    a, b = both("MLPRegressor", loss="poisson", hidden_layer_sizes=(4,), random_state=0,
                **solver)
    a.fit(X_REG, Y_COUNTS)
    b.fit(X_REG, Y_COUNTS)
    assert b.out_activation_ == "exp"
    assert_same_fit(a, b, **(LBFGS_TOL if solver["solver"] == "lbfgs" else {}))


@pytest.mark.parametrize("cls_name", ["MLPClassifier", "MLPRegressor"])
def test_early_stopping_reproduces_sklearn(cls_name):
    y = Y_MULTI if cls_name == "MLPClassifier" else Y_MULTI.astype(float)
    a, b = both(cls_name, hidden_layer_sizes=(5,), solver="sgd", early_stopping=True,
                validation_fraction=0.2, n_iter_no_change=3, tol=0.05, max_iter=60,
                learning_rate="adaptive", random_state=2)
    a.fit(X_DIGITS, y)
    b.fit(X_DIGITS, y)
    assert b.best_loss_ is None and isinstance(b.validation_scores_, list)
    assert_same_fit(a, b)


def test_warm_start_and_partial_fit_reproduce_sklearn():
    a, b = both("MLPClassifier", hidden_layer_sizes=(5,), solver="adam", max_iter=3,
                warm_start=True, random_state=0)
    for est in (a, b):
        est.fit(X_DIGITS, Y_MULTI)
        est.set_params(max_iter=4)
        est.fit(X_DIGITS, Y_MULTI)           # n_iter_ counts this fit only, t_ continues
        est.partial_fit(X_DIGITS[:50], Y_MULTI[:50])
    assert b.n_iter_ == 1 and b.t_ == 150 * 7 + 50
    assert_same_fit(a, b)


# ------------------------------------------------------------- semantics
def one_sgd_step(X, y, **params):
    return MLPRegressor(hidden_layer_sizes=(3,), solver="sgd", momentum=0, batch_size=len(y),
                        shuffle=False, max_iter=1, random_state=0, **params).fit(X, y)


def test_alpha_is_scaled_by_the_batch_size():
    """One step of plain sgd on one batch B: ∇W = ΔW/|B| + (α/|B|) W, so
    θ1(α) − θ1(0) = −rate · (α/|B|) W0 on the weights and 0 on the biases."""
    X, y = X_REG[:10], Y_REG[:10]
    theta0 = one_sgd_step(X, y, learning_rate_init=1e-300, alpha=0.0).net_.theta  # θ as drawn
    plain = one_sgd_step(X, y, learning_rate_init=0.1, alpha=0.0)
    penalised = one_sgd_step(X, y, learning_rate_init=0.1, alpha=2.0)
    W0, b0 = plain.net_.unflatten(theta0)
    expected = -0.1 * (2.0 / 10) * np.concatenate(
        [np.concatenate([W.ravel(), np.zeros_like(b)]) for W, b in zip(W0, b0)])
    np.testing.assert_allclose(penalised.net_.theta - plain.net_.theta, expected, rtol=1e-9,
                               atol=1e-15)


def test_float32_data_trains_a_float32_network():
    X = X_DIGITS.astype(np.float32)
    for est in (MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
                MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)):
        y = Y_MULTI if isinstance(est, MLPClassifier) else Y_MULTI.astype(np.float32)
        est.fit(X, y)
        assert est.net_.dtype == np.float32
        assert all(p.dtype == np.float32 for p in params_of(est))
        out = est.predict_proba(X) if isinstance(est, MLPClassifier) else est.predict(X)
        assert out.dtype == np.float32
    # the dtype extra overrides
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, dtype=np.float64).fit(X, Y_MULTI * 1.0)
    assert est.coefs_[0].dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        MLPRegressor(dtype=np.int32).fit(X, Y_MULTI)


def test_float32_adam_follows_sklearns_float32_adam():
    """float32 Adam takes 1 − β and its bias correction from float64 β, as
    scikit-learn's does (float32(1 − 0.999) ≠ 1 − float32(0.999) by 1.3e-5)."""
    X = X_DIGITS.astype(np.float32)
    a, b = both("MLPClassifier", hidden_layer_sizes=(6,), solver="adam", max_iter=10,
                batch_size=16, random_state=0, learning_rate_init=0.01)
    a.fit(X, Y_MULTI)
    b.fit(X, Y_MULTI)
    for pa, pb in zip(params_of(a), params_of(b)):
        assert pa.dtype == pb.dtype == np.float32
        # float32 rounding only: ~2e-7 (with float32 β in the kernel: 3.6e-6)
        np.testing.assert_allclose(pb, pa, rtol=0, atol=6e-7)


def test_coefs_are_views_and_assigned_coefs_are_used():
    est = MLPClassifier(hidden_layer_sizes=(3,), solver="sgd", max_iter=2,
                        random_state=0).fit(X_DIGITS, Y_MULTI)
    theta = est.net_.theta
    assert np.shares_memory(est.coefs_[0], theta) and np.shares_memory(est.intercepts_[1], theta)
    est.coefs_[0][0, 0] = 5.0           # in place: θ sees it
    assert 5.0 in theta
    est.coefs_ = [np.zeros_like(c) for c in est.coefs_]   # replaced: the network is rebuilt
    est.intercepts_ = [np.zeros_like(b) for b in est.intercepts_]
    np.testing.assert_allclose(est.predict_proba(X_DIGITS[:2]), 1 / 3)
    assert not np.shares_memory(est.net_.theta, theta)
    with pytest.raises(ValueError, match=r"coefs_\[0\] has shape"):
        est.coefs_ = [np.zeros((64, 4)), est.coefs_[1]]
        est.predict(X_DIGITS)


def test_pickle_round_trip_then_partial_fit_continues_identically():
    est = MLPRegressor(hidden_layer_sizes=(5,), random_state=0, max_iter=5).fit(X_REG, Y_REG)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X_REG), est.predict(X_REG))
    for e in (est, back):
        for _ in range(3):
            e.partial_fit(X_REG, Y_REG)     # Adam's moments travel with the pickle
    np.testing.assert_array_equal(back.predict(X_REG), est.predict(X_REG))
    assert np.shares_memory(back.coefs_[0], back.net_.theta)


def test_sparse_input_is_densified_with_the_same_results():
    X_sparse = scipy.sparse.csr_matrix(np.where(X_DIGITS > 0.5, X_DIGITS, 0))
    X_dense = X_sparse.toarray()
    a = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X_sparse, Y_MULTI)
    b = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X_dense, Y_MULTI)
    np.testing.assert_array_equal(a.predict_proba(X_sparse.tocsc()), b.predict_proba(X_dense))


def test_sample_weight_constant_or_refused():
    kw = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=20, random_state=0, alpha=0.5)
    a = MLPRegressor(**kw).fit(X_REG, Y_REG, sample_weight=np.full(len(Y_REG), 2.0))
    b = MLPRegressor(**{**kw, "alpha": 0.25}).fit(X_REG, Y_REG)
    c, _ = both("MLPRegressor", **kw)
    c.fit(X_REG, Y_REG, sample_weight=np.full(len(Y_REG), 2.0))
    np.testing.assert_array_equal(a.predict(X_REG), b.predict(X_REG))
    np.testing.assert_allclose(a.predict(X_REG), c.predict(X_REG), rtol=1e-8, atol=1e-10)
    weights = np.ones(len(Y_REG))
    weights[0] = 2
    with pytest.raises(ValueError, match="sample_weight must be None or the same"):
        MLPRegressor(**kw).fit(X_REG, Y_REG, sample_weight=weights)


def test_parameters_are_sklearns():
    ours, theirs = MLPClassifier().get_params(), sk.MLPClassifier().get_params()
    extras = {"dtype": None, "init": "glorot", "init_epsilon": 0.01}
    assert ours == {**theirs, **extras}
    ours, theirs = MLPRegressor().get_params(), sk.MLPRegressor().get_params()
    assert ours == {**theirs, **extras}
    for bad in (dict(solver="gd"), dict(learning_rate=0.1), dict(activation="sigmoid"),
                dict(alpha=-1), dict(batch_size=0), dict(n_iter_no_change=0),
                dict(init="he"), dict(init_epsilon=0)):
        with pytest.raises(InvalidParameterError, match=next(iter(bad))):
            MLPRegressor(**bad).fit(X_REG, Y_REG)
    with pytest.raises(InvalidParameterError, match="loss"):
        MLPRegressor(loss="huber").fit(X_REG, Y_REG)
    with pytest.raises(ValueError, match="y >= 0"):
        MLPRegressor(loss="poisson").fit(X_REG, Y_REG)


def test_partial_fit_only_for_stochastic_solvers():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPRegressor(solver="sgd"), "partial_fit")


def test_warm_start_with_other_architecture_is_refused():
    est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, warm_start=True).fit(X_REG, Y_REG)
    est.set_params(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="warm_start=False"):
        est.fit(X_REG, Y_REG)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # sklearn's r2_score on inf
def test_divergence_raises_like_sklearn_and_early_stopping_keeps_the_best():
    X = np.finfo(np.float64).max * np.random.default_rng(0).uniform(size=(10, 2))
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        MLPRegressor().fit(X, y)
    est = MLPRegressor(hidden_layer_sizes=20, activation="identity", solver="sgd",
                       learning_rate_init=1, max_iter=20, early_stopping=True,
                       random_state=0).fit(X_DIGITS, Y_MULTI.astype(float))
    assert np.isnan(est.validation_scores_[-1])
    assert np.all(np.isfinite(est.net_.theta))


def test_n_iter_no_change_inf_runs_max_iter():
    est = MLPClassifier(hidden_layer_sizes=(3,), solver="sgd", tol=1e9, max_iter=15,
                        n_iter_no_change=np.inf).fit(X_DIGITS, Y_MULTI)
    assert est.n_iter_ == 15


def test_verbose_prints_iterations(capsys):
    MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, verbose=True).fit(X_REG, Y_REG)
    MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2,
                 verbose=True).fit(X_REG, Y_REG)
    assert capsys.readouterr().out.count("Iteration") == 4


def test_init_extras():
    # a step of 1e-300 leaves θ as drawn: N(0, ε²) for init="normal"
    est = MLPRegressor(hidden_layer_sizes=(200,), init="normal", init_epsilon=0.05,
                       solver="sgd", learning_rate_init=1e-300, max_iter=1, random_state=0)
    theta = est.fit(X_REG, Y_REG).net_.theta
    assert 0.045 < np.std(theta) < 0.055 and abs(np.mean(theta)) < 0.005
    est.set_params(init="uniform")
    assert np.all(np.abs(est.fit(X_REG, Y_REG).intercepts_[0]) < 1e-290)   # UFLDL: b = 0


def test_network_can_be_saved_and_loaded(tmp_path):
    for est, y in ((MLPRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=3), Y_COUNTS),
                   (MLPClassifier(hidden_layer_sizes=(3,), max_iter=3), Y_BINARY[:70])):
        est.fit(X_REG if y is Y_COUNTS else X_DIGITS[:70], y)
        path = tmp_path / "model.npz"
        fastbp.save(est.net_, path)
        net = fastbp.load(path)
        X = X_REG if y is Y_COUNTS else X_DIGITS[:70]
        np.testing.assert_array_equal(net.predict(X), est.net_.predict(X))


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "poisson"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "identity"])
def test_new_losses_gradient_check(loss, activation):
    rng = np.random.default_rng(1)
    net = fastbp.Network([3, 4, 2], activations=activation, loss=loss, epsilon=0.3, seed=2)
    X = rng.normal(size=(9, 3))
    Y = (rng.uniform(size=(9, 2)) > 0.5).astype(float) if loss != "poisson" else \
        rng.poisson(2.0, size=(9, 2)).astype(float)
    assert fastbp.check_gradient(net, X, Y, weight_decay=1e-3) < 1e-9
    J32, gW, _ = net.astype(np.float32).cost_and_gradient(X, Y)
    assert gW[0].dtype == np.float32
    assert J32 == pytest.approx(net.cost(X, Y), rel=1e-5)


BLOCKED_SKLEARN = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import fastbp
net = fastbp.Network([2, 3, 1])          # fastbp works without scikit-learn
try:
    fastbp.MLPClassifier
except ImportError as exc:
    print(exc)
"""


def test_import_fastbp_does_not_import_sklearn():
    code = "import sys, fastbp; assert 'sklearn' not in sys.modules; print('OK')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr
    out = subprocess.run([sys.executable, "-c", BLOCKED_SKLEARN], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "need scikit-learn: pip install 'fastbp[sklearn]'" in out.stdout


# ------------------------------------------------------- sklearn's checks
SAMPLE_WEIGHT_REASON = ("fastbp's kernels do not weight samples individually: "
                        "non-constant sample_weight is refused with a ValueError")
EXPECTED_FAILED = {name: SAMPLE_WEIGHT_REASON for name in (
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
    "check_sample_weights_not_overwritten",
    "check_classifiers_one_label_sample_weights")}


@parametrize_with_checks(
    [MLPClassifier(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=100, random_state=0),
     MLPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=100, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
