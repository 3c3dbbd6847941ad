"""The scikit-learn compatible estimators: learning, partial_fit, warm start,
early stopping, parameters, bad input, pickling, scikit-learn's own estimator
checks, and a run with scikit-learn blocked."""

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastbp
import fastbp.estimators as est_mod
from fastbp.estimators import ConvergenceWarning, MLPClassifier, MLPRegressor, NotFittedError

SMALL = dict(hidden_layer_sizes=(5,), max_iter=50)

# Small max_iter values are on purpose; tests that are about the warning turn it back on.
pytestmark = pytest.mark.filterwarnings("ignore::fastbp.estimators.ConvergenceWarning")


def smooth_regression(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    return X, y


def xor_blobs(n=400, seed=0):
    """Four Gaussian blobs at the corners of a square, XOR-labelled with strings."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, (n, 2))
    X = corners + 0.15 * rng.normal(size=(n, 2))
    y = np.where(corners[:, 0] ^ corners[:, 1], "odd", "even")
    return X, y


def three_blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n) * 10  # labels 0, 10, 20
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    X = centers[y // 10] + 0.5 * rng.normal(size=(n, 2))
    return X, y


# ------------------------------------------------------------------ learning
def test_regressor_learns_a_smooth_function():
    X, y = smooth_regression()
    X_test, y_test = smooth_regression(200, seed=1)
    reg = MLPRegressor(hidden_layer_sizes=(10,), random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.95
    assert reg.score(X_test, y_test) > 0.9
    pred = reg.predict(X_test)
    assert pred.shape == (200,) and pred.dtype == np.float64
    assert isinstance(reg.net_, fastbp.Network)
    assert reg.net_.layer_sizes == (2, 10, 1)
    assert reg.net_.activations == ("sigmoid", "identity")
    assert reg.n_features_in_ == 2 and reg.n_outputs_ == 1
    assert reg.n_iter_ == len(reg.loss_curve_) >= 1
    assert reg.best_loss_ == min(reg.loss_curve_)
    assert reg.validation_scores_ is None and reg.best_validation_score_ is None


def test_regressor_multioutput_and_1d_targets():
    X, y = smooth_regression(200)
    Y = np.column_stack([y, -2 * y])
    reg = MLPRegressor(hidden_layer_sizes=(10,), activation="tanh", random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (200, 2)
    assert reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.9
    # a column-vector y predicts a column, a 1-D y a 1-D array, with equal values
    col = MLPRegressor(**SMALL, random_state=0).fit(X, y[:, None])
    flat = MLPRegressor(**SMALL, random_state=0).fit(X, y)
    assert col.predict(X).shape == (200, 1) and flat.predict(X).shape == (200,)
    np.testing.assert_array_equal(col.predict(X).ravel(), flat.predict(X))


def test_regressor_without_hidden_layer_is_linear_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    reg = MLPRegressor(hidden_layer_sizes=(), weight_decay=0.0, random_state=0).fit(X, y)
    assert reg.net_.layer_sizes == (3, 1)
    assert reg.score(X, y) > 0.9999
    assert MLPRegressor(hidden_layer_sizes=4, max_iter=5, random_state=0).fit(X, y) \
        .net_.layer_sizes == (3, 4, 1)


def test_classifier_learns_xor_with_string_labels():
    X, y = xor_blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", random_state=0).fit(X, y)
    assert list(clf.classes_) == ["even", "odd"]
    assert clf.score(X, y) > 0.9
    X_test, y_test = xor_blobs(200, seed=1)
    assert clf.score(X_test, y_test) > 0.9
    proba = clf.predict_proba(X_test)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[proba.argmax(axis=1)])
    assert clf.net_.loss == "cross_entropy" and clf.net_.activations[-1] == "softmax"
    assert clf.net_.layer_sizes == (2, 8, 2)


def test_classifier_multiclass_with_int_labels():
    X, y = three_blobs()
    clf = MLPClassifier(**SMALL, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [0, 10, 20])
    assert clf.predict(X).dtype == y.dtype
    assert clf.score(X, y) > 0.9
    assert clf.predict_proba(X).shape == (300, 3)
    assert clf.n_outputs_ == 3


def test_same_random_state_same_model_other_state_other_model():
    X, y = smooth_regression(100)
    a = MLPRegressor(**SMALL, random_state=3).fit(X, y).predict(X)
    b = MLPRegressor(**SMALL, random_state=3).fit(X, y).predict(X)
    c = MLPRegressor(**SMALL, random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # a Generator is accepted too
    MLPRegressor(**SMALL, random_state=np.random.default_rng(0)).fit(X, y)


def test_float32():
    X, y = three_blobs(150)
    clf = MLPClassifier(**SMALL, random_state=0, dtype=np.float32).fit(X, y)
    assert clf.net_.dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32
    assert clf.score(X, y) > 0.9


# ---------------------------------------------------------- optimizers
@pytest.mark.parametrize("optimizer", ["gd", "sgd", "lbfgs"])
def test_every_optimizer_fits(optimizer):
    X, y = smooth_regression(200)
    reg = MLPRegressor(hidden_layer_sizes=(10,), optimizer=optimizer, learning_rate=0.5,
                       max_iter=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.score(X, y) > 0.5


def test_optimizer_string_and_extra_arguments_go_straight_to_train(monkeypatch):
    """Whatever optimizer the user names reaches fastbp.train unchanged (so new
    optimizers such as "adam" work as soon as train has them); partial_fit uses
    it when it is a mini-batch one, else "sgd"."""
    calls = []

    def spy(net, X, Y, **kwargs):
        calls.append(kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("optimizer", "momentum", "state")}
        return fastbp.train(net, X, Y, optimizer="gd", **kwargs)

    monkeypatch.setattr(est_mod, "train", spy)
    X, y = smooth_regression(50)
    reg = MLPRegressor(**SMALL, optimizer="adam", optimizer_params={"momentum": 0.5},
                       batch_size=16, learning_rate=0.01, weight_decay=0.0, shuffle=False,
                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    reg.partial_fit(X, y)
    reg.set_params(optimizer="lbfgs").partial_fit(X, y)
    assert [c["optimizer"] for c in calls] == ["adam", "adam", "sgd"]
    first = calls[0]
    assert first["momentum"] == 0.5 and first["batch_size"] == 16
    assert first["learning_rate"] == 0.01 and first["weight_decay"] == 0.0
    assert first["iterations"] == 50 and first["shuffle"] is False
    assert [c["iterations"] for c in calls[1:]] == [1, 1]


def test_adam_and_momentum_once_train_has_them():
    import inspect

    from fastbp.training import OPTIMIZERS

    if "adam" not in OPTIMIZERS or "momentum" not in inspect.signature(fastbp.train).parameters:
        pytest.skip("this fastbp.train has no adam / momentum")
    X, y = smooth_regression(300)
    adam = MLPRegressor(hidden_layer_sizes=(10,), optimizer="adam", learning_rate=0.01,
                        max_iter=200, random_state=0).fit(X, y)
    assert adam.score(X, y) > 0.9
    adam.partial_fit(X, y)
    assert adam.n_iter_ == len(adam.loss_curve_)
    nesterov = MLPRegressor(hidden_layer_sizes=(10,), optimizer="sgd", learning_rate=0.05,
                            optimizer_params={"momentum": 0.9, "nesterov": True},
                            max_iter=100, random_state=0).fit(X, y)
    assert nesterov.score(X, y) > 0.5


# ---------------------------------------------------------- partial_fit
def test_regressor_partial_fit_lowers_the_loss():
    X, y = smooth_regression(200)
    reg = MLPRegressor(hidden_layer_sizes=(10,), learning_rate=0.5, batch_size=16,
                       random_state=0)
    for _ in range(30):
        reg.partial_fit(X, y)
    assert reg.n_iter_ == 30 and len(reg.loss_curve_) == 30
    assert reg.loss_curve_[-1] < 0.5 * reg.loss_curve_[0]
    assert reg.score(X, y) > 0.5


def test_partial_fit_continues_a_fit():
    X, y = smooth_regression(200)
    reg = MLPRegressor(**SMALL, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    net, n_iter, theta = reg.net_, reg.n_iter_, reg.net_.theta.copy()
    reg.partial_fit(X, y)
    assert reg.net_ is net and reg.n_iter_ == n_iter + 1
    assert not np.array_equal(reg.net_.theta, theta)
    with pytest.raises(ValueError, match="X has 1 features, but MLPRegressor is expecting 2"):
        reg.partial_fit(X[:, :1], y)


def test_classifier_partial_fit_needs_classes_first():
    X, y = three_blobs()
    clf = MLPClassifier(**SMALL, learning_rate=0.5, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    # mini-batches may lack classes; classes= fixes the output layer
    first = y[:20] != 20
    clf.partial_fit(X[:20][first], y[:20][first], classes=[0, 10, 20])
    np.testing.assert_array_equal(clf.classes_, [0, 10, 20])
    for _ in range(20):
        clf.partial_fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:3], [0, 10, 30])
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X, y, classes=[0, 10])
    with pytest.raises(ValueError, match="not in classes"):
        MLPClassifier().partial_fit(X[:3], [0, 1, 2], classes=[0, 1])
    with pytest.raises(ValueError, match="one class"):
        MLPClassifier().partial_fit(X[:3], [0, 0, 0], classes=[0])


# ---------------------------------------------------------- warm start
def test_warm_start_continues_from_net():
    X, y = smooth_regression(100)
    Y = y[:, None]
    reg = MLPRegressor(hidden_layer_sizes=(5,), optimizer="gd", learning_rate=0.5, max_iter=5,
                       warm_start=True, weight_decay=1e-4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
        net = reg.net_
        cost_after_first = net.cost(X, Y, weight_decay=1e-4)
        reg.fit(X, y)
    # gd reports J before each step: the second fit starts where the first ended
    assert reg.net_ is net and reg.n_iter_ == 10 and len(reg.loss_curve_) == 10
    assert reg.loss_curve_[5] == pytest.approx(cost_after_first, rel=1e-12)
    # without warm_start a refit starts over from the same initialisation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = reg.set_params(warm_start=False).fit(X, y)
    assert cold.net_ is not net and cold.n_iter_ == 5
    assert cold.loss_curve_ == reg.loss_curve_[:5]


def test_warm_start_refuses_another_architecture():
    X, y = three_blobs(100)
    clf = MLPClassifier(**SMALL, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        clf.set_params(hidden_layer_sizes=(6,)).fit(X, y)
    clf.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="not in classes_"):
        clf.fit(X, y + 1)
    reg = MLPRegressor(**SMALL, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="target column"):
        reg.fit(X, np.column_stack([y, y]))


# ---------------------------------------------------------- early stopping
def _noisy_regression():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 3))
    y = np.sin(2 * X[:, 0]) + 0.3 * rng.normal(size=60)
    return X, y


def test_early_stopping_stops_and_restores_the_best_parameters():
    X, y = _noisy_regression()
    params = dict(hidden_layer_sizes=(30,), weight_decay=0.0, early_stopping=True,
                  validation_fraction=0.3, n_iter_no_change=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopping early is converging
        reg = MLPRegressor(max_iter=500, **params).fit(X, y)
    scores = np.array(reg.validation_scores_)
    assert reg.n_iter_ == len(scores) == len(reg.loss_curve_) < 500
    best = int(scores.argmax())
    assert reg.best_validation_score_ == scores[best]
    assert best < reg.n_iter_ - 1  # the last iterate is not the best: params were restored
    # The same run cut off right after the best iteration holds exactly those parameters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cut = MLPRegressor(max_iter=best + 1, **params).fit(X, y)
    np.testing.assert_array_equal(cut.validation_scores_, scores[:best + 1])
    np.testing.assert_array_equal(reg.net_.theta, cut.net_.theta)


def test_classifier_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(5,), early_stopping=True, random_state=0,
                        max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ < 500
    assert all(0 <= s <= 1 for s in clf.validation_scores_)
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9
    with pytest.raises(ValueError, match="validation"):
        MLPClassifier(early_stopping=True, validation_fraction=0.9).fit(X[:2], [0, 1])


def test_max_iter_without_converging_warns():
    X, y = smooth_regression(100)
    reg = MLPRegressor(**dict(SMALL, max_iter=3), random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        reg.fit(X, y)
    assert reg.n_iter_ == 3 and hasattr(reg, "net_")
    assert issubclass(ConvergenceWarning, UserWarning)


# ---------------------------------------------------------- parameters
def test_init_stores_parameters_untouched_and_get_set_params():
    hidden = [7, 3]
    reg = MLPRegressor(hidden_layer_sizes=hidden, activation="nonsense", max_iter=-1)
    assert reg.hidden_layer_sizes is hidden and reg.activation == "nonsense"
    params = reg.get_params()
    assert set(params) == {
        "hidden_layer_sizes", "activation", "output_activation", "optimizer", "weight_decay",
        "learning_rate", "batch_size", "max_iter", "shuffle", "random_state", "warm_start",
        "early_stopping", "validation_fraction", "n_iter_no_change", "tol", "init",
        "epsilon", "dtype", "optimizer_params"}
    assert "output_activation" not in MLPClassifier().get_params()
    assert reg.set_params(max_iter=5, activation="relu") is reg
    assert reg.max_iter == 5 and reg.activation == "relu"
    with pytest.raises(ValueError, match="Invalid parameter"):
        reg.set_params(hidden_layers=3)
    assert "hidden_layer_sizes=[7, 3]" in repr(reg)


def test_clone_round_trip():
    clone = pytest.importorskip("sklearn.base").clone
    X, y = three_blobs(100)
    clf = MLPClassifier(**SMALL, random_state=1, dtype=np.float32).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "net_") and not hasattr(copy, "classes_")
    np.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), clf.predict_proba(X))


def test_pipeline_and_grid_search():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = three_blobs(120)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**SMALL, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(2,), (5,)]}, cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.9
    assert search.predict(X).shape == (120,)


def test_pickle_round_trip_keeps_views_and_training_state():
    X, y = smooth_regression(100)
    reg = MLPRegressor(**SMALL, optimizer="sgd", learning_rate=0.5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    back = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    net = back.net_
    assert all(np.shares_memory(W, net.theta) for W in net.weights)
    # both continue identically
    reg.partial_fit(X, y)
    back.partial_fit(X, y)
    np.testing.assert_array_equal(back.net_.theta, reg.net_.theta)
    np.testing.assert_array_equal(back.net_.weights[0], reg.net_.weights[0])


# ---------------------------------------------------------- bad input
@pytest.mark.parametrize("params, error, match", [
    ({"hidden_layer_sizes": (0,)}, ValueError, r"hidden_layer_sizes\[0\] must be >= 1"),
    ({"hidden_layer_sizes": ("5",)}, TypeError, "must be an integer"),
    ({"hidden_layer_sizes": "5"}, TypeError, "hidden_layer_sizes"),
    ({"activation": "softplus"}, ValueError, "activation must be one of"),
    ({"output_activation": "softmax"}, ValueError, "output_activation must be one of"),
    ({"optimizer": 3}, TypeError, "optimizer must be a string"),
    ({"optimizer": "newton"}, ValueError, "optimizer must be one of"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"max_iter": 2.5}, TypeError, "max_iter"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
    ({"warm_start": 1}, TypeError, "warm_start"),
    ({"early_stopping": None}, TypeError, "early_stopping"),
    ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
    ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change"),
    ({"tol": -1e-3}, ValueError, "tol"),
    ({"init": "zeros"}, ValueError, "init must be one of"),
    ({"epsilon": 0.0}, ValueError, "epsilon"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"random_state": "seed"}, TypeError, "random_state"),
    ({"optimizer_params": [("momentum", 0.9)]}, TypeError, "optimizer_params"),
    ({"optimizer_params": {"seed": 1}}, ValueError, "optimizer_params may not set"),
    ({"optimizer_params": {"no_such_argument": 1}}, TypeError, "no_such_argument"),
])
def test_bad_parameters_raise_in_fit(params, error, match):
    X, y = smooth_regression(20)
    reg = MLPRegressor(**params)  # __init__ never validates
    with pytest.raises(error, match=match):
        reg.fit(X, y)
    assert not hasattr(reg, "net_")


def test_failed_refit_leaves_no_half_fitted_estimator():
    X, y = smooth_regression(20)
    reg = MLPRegressor(**SMALL, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="optimizer"):
        reg.set_params(optimizer="newton").fit(X[:, :1], y)
    assert not hasattr(reg, "net_") and not hasattr(reg, "n_features_in_")
    with pytest.raises(NotFittedError):
        reg.predict(X)


def test_bad_data():
    X, y = three_blobs(60)
    reg = MLPRegressor(**SMALL, random_state=0)
    clf = MLPClassifier(**SMALL, random_state=0)
    for est in (reg, clf):
        with pytest.raises(NotFittedError):
            est.predict(X)
        with pytest.raises(ValueError, match="2D|2-D"):
            est.fit(X[:, 0], y)
        bad = X.copy()
        bad[3, 1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            est.fit(bad, y)
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            est.fit(X, y[:-1])
        with pytest.raises(ValueError, match="requires y"):
            est.fit(X, None)
        with pytest.raises(ValueError, match="Complex data not supported"):
            est.fit(X + 1j, y)
        est.fit(X, y)
        with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 2"):
            est.predict(np.ones((4, 3)))
        with pytest.raises(ValueError, match="NaN|inf"):
            est.predict(bad)
    with pytest.raises(ValueError, match="only one class: 'a'"):
        MLPClassifier().fit(X, ["a"] * 60)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, np.linspace(0, 1, 60))
    with pytest.raises(ValueError, match="NaN|inf"):
        MLPRegressor().fit(X, np.full(60, np.inf))


# ---------------------------------------------------------- scikit-learn's checks
try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:
    parametrize_with_checks = None

CHECKED_ESTIMATORS = [
    MLPRegressor(**SMALL),
    MLPClassifier(**SMALL),
    MLPRegressor(hidden_layer_sizes=(5,), optimizer="sgd", max_iter=30, early_stopping=True),
]

if parametrize_with_checks is not None:
    @pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
    @parametrize_with_checks(CHECKED_ESTIMATORS)
    def test_sklearn_check_estimator(estimator, check):
        check(estimator)
else:
    def test_sklearn_check_estimator():
        pytest.importorskip("sklearn")


def test_sklearn_tags():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import is_classifier, is_regressor

    assert is_regressor(MLPRegressor()) and is_classifier(MLPClassifier())
    if hasattr(sklearn.base.BaseEstimator, "__sklearn_tags__"):  # scikit-learn >= 1.6
        from sklearn.utils import get_tags

        reg, clf = get_tags(MLPRegressor()), get_tags(MLPClassifier())
        assert reg.target_tags.multi_output and reg.target_tags.single_output
        assert not clf.target_tags.multi_output and clf.classifier_tags.multi_class
        assert not clf.classifier_tags.multi_label
        for tags in (reg, clf):
            assert not tags.input_tags.sparse and not tags.input_tags.allow_nan
            assert tags.requires_fit and tags.target_tags.required


# ---------------------------------------------------------- without scikit-learn
NO_SKLEARN_SCRIPT = textwrap.dedent("""
    import sys, importlib.abc, pickle, warnings

    class BlockSklearn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" or name.startswith("sklearn."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)

    sys.meta_path.insert(0, BlockSklearn())
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        del sys.modules[name]

    import numpy as np
    import fastbp.estimators as E

    assert not E.HAS_SKLEARN
    assert "sklearn" not in sys.modules
    assert issubclass(E.ConvergenceWarning, UserWarning)
    assert E.ConvergenceWarning.__module__ == "fastbp.estimators"

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    reg = E.MLPRegressor(hidden_layer_sizes=(10,), random_state=0)
    assert reg.fit(X, y) is reg and reg.score(X, y) > 0.9
    assert isinstance(reg.score(X, y), float) and reg.predict(X).shape == (200,)
    labels = np.where(X[:, 0] > 0, "pos", "neg")
    clf = E.MLPClassifier(hidden_layer_sizes=(5,), random_state=0).fit(X, labels)
    assert clf.score(X, labels) > 0.9 and list(clf.classes_) == ["neg", "pos"]
    clf.partial_fit(X, labels)

    # parameters
    params = reg.get_params()
    assert params["hidden_layer_sizes"] == (10,) and params["optimizer"] == "lbfgs"
    assert reg.set_params(max_iter=2) is reg and reg.max_iter == 2
    assert repr(reg) == "MLPRegressor(hidden_layer_sizes=(10,), max_iter=2, random_state=0)"
    try:
        reg.set_params(nope=1)
        raise AssertionError("no error")
    except ValueError as exc:
        assert "Invalid parameter" in str(exc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.fit(X, y)
    assert any(issubclass(w.category, E.ConvergenceWarning) for w in caught)

    # the built-in input checks
    def raises(error, text, f, *args):
        try:
            f(*args)
        except error as exc:
            assert text in str(exc), str(exc)
        else:
            raise AssertionError(f"no {error.__name__}")

    raises(E.NotFittedError, "not fitted", E.MLPRegressor().predict, X)
    raises(ValueError, "X has 3 features, but MLPRegressor is expecting 2", reg.predict, np.ones((2, 3)))
    raises(ValueError, "NaN", reg.predict, np.full((2, 2), np.nan))
    raises(ValueError, "2-D", reg.predict, X[:, 0])
    raises(ValueError, "0 feature(s)", E.MLPRegressor().fit, np.ones((5, 0)), np.ones(5))
    raises(ValueError, "0 sample(s)", E.MLPRegressor().fit, np.ones((0, 2)), np.ones(0))
    raises(ValueError, "requires y", E.MLPRegressor().fit, X, None)
    raises(ValueError, "inconsistent numbers of samples", E.MLPRegressor().fit, X, y[:-1])
    raises(ValueError, "Complex data", E.MLPRegressor().fit, X + 1j, y)
    raises(TypeError, "sparse", E.MLPRegressor().fit, __import__("scipy.sparse").sparse.csr_matrix(X), y)
    raises(ValueError, "one class", E.MLPClassifier().fit, X, np.zeros(200))
    raises(ValueError, "Unknown label type", E.MLPClassifier().fit, X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        E.MLPClassifier(hidden_layer_sizes=(2,), max_iter=5).fit(X, labels[:, None])
    assert any(issubclass(w.category, E.DataConversionWarning) for w in caught)
    X_obj = X.astype(object)
    E.MLPRegressor(hidden_layer_sizes=(2,), max_iter=5).fit(X_obj.tolist(), list(y))
    X_obj[0, 0] = {"a": 1}
    raises(TypeError, "number", E.MLPRegressor().fit, X_obj, y)

    back = pickle.loads(pickle.dumps(clf))
    assert (back.predict_proba(X) == clf.predict_proba(X)).all()
    print("OK")
""")


def test_imports_and_fits_without_sklearn():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(
        os.path.abspath(fastbp.__file__))), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", NO_SKLEARN_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("OK")
