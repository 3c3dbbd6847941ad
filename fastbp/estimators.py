"""scikit-learn compatible estimators: :class:`MLPRegressor` and :class:`MLPClassifier`.

Both are thin shells around :class:`fastbp.Network` and :func:`fastbp.train`:
they validate hyper-parameters and data, encode class labels, build the
network, hand every iteration to ``train`` and keep the bookkeeping
(``loss_curve_``, early stopping, convergence). There is no second engine and
no math here beyond label encoding and the scores (R², accuracy) that
``score`` and early stopping report.

scikit-learn is optional. When it is importable the estimators inherit from
``sklearn.base.BaseEstimator`` and ``RegressorMixin``/``ClassifierMixin`` and
use sklearn's own input validation, so they work with ``clone``, pipelines,
``GridSearchCV`` and pass ``check_estimator``. Without it a small built-in base
supplies ``get_params``/``set_params``/``score`` and equivalent input checks.

>>> import numpy as np
>>> from fastbp.estimators import MLPRegressor
>>> X = np.linspace(-1, 1, 50).reshape(-1, 1)
>>> reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=100, random_state=0).fit(X, X[:, 0] ** 2)
>>> reg.predict(X).shape
(50,)
"""

import inspect
import numbers
import warnings
from collections.abc import Mapping

import numpy as np

from ._validation import all_finite, check_dtype, check_scalar
from .network import ACTIVATIONS, Network
from .training import train

try:  # scikit-learn is optional
    from sklearn.base import BaseEstimator as _SkBaseEstimator
    from sklearn.base import ClassifierMixin as _SkClassifierMixin
    from sklearn.base import RegressorMixin as _SkRegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
    from sklearn.utils.multiclass import check_classification_targets as _sk_check_targets
    from sklearn.utils.validation import check_is_fitted as _sk_check_is_fitted
except ImportError:
    HAS_SKLEARN = False

    class ConvergenceWarning(UserWarning):
        """Training reached ``max_iter`` before it converged (scikit-learn's
        ``ConvergenceWarning`` when scikit-learn is installed)."""

    class DataConversionWarning(UserWarning):
        """A column-vector y was passed where a 1-D array was expected."""

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before ``fit``."""
else:
    HAS_SKLEARN = True
    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data  # >= 1.6
    except ImportError:  # scikit-learn < 1.6: the same thing as a private method
        def _sk_validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
            return estimator._validate_data(X, y, **kwargs)

# scikit-learn >= 1.6 describes estimators with __sklearn_tags__, older ones with _more_tags.
_SKLEARN_TAGS = HAS_SKLEARN and hasattr(_SkBaseEstimator, "__sklearn_tags__")

__all__ = ["MLPRegressor", "MLPClassifier", "ConvergenceWarning", "NotFittedError",
           "HAS_SKLEARN"]

# partial_fit runs one epoch of the chosen optimizer when it works on
# mini-batches, otherwise one epoch of "sgd".
_MINIBATCH_OPTIMIZERS = ("sgd", "adam")
# Keyword arguments of fastbp.train that the estimators set themselves.
_RESERVED_TRAIN_ARGS = frozenset((
    "net", "X", "Y", "learning_rate", "weight_decay", "iterations", "callback", "optimizer",
    "batch_size", "shuffle", "seed", "state", "validation_fraction", "n_iter_no_change", "tol"))
_INITS = ("uniform", "normal")
_MAX_SEED = 2**31 - 1


# ----------------------------------------------------------------- fallbacks
class _FallbackBaseEstimator:
    """``get_params``/``set_params``/``repr`` from ``__init__``'s signature, for
    when scikit-learn is not installed."""

    @classmethod
    def _get_param_names(cls):
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind == p.VAR_KEYWORD:
                continue
            if p.kind == p.VAR_POSITIONAL:
                raise RuntimeError(f"{cls.__name__}.__init__ must not take *args")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep=True):
        """Parameters of this estimator (and, with ``deep``, of nested estimators)."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set parameters (``name`` or ``nested__name``); returns self."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested = {}
        for key, value in params.items():
            name, delim, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if delim:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __repr__(self):
        defaults = {p.name: p.default
                    for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = []
        for name in self._get_param_names():
            value, default = getattr(self, name), defaults.get(name, inspect.Parameter.empty)
            same = value is default or (type(value) is type(default) and repr(value) == repr(default))
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


class _FallbackRegressorMixin:
    _estimator_type = "regressor"

    def score(self, X, y, sample_weight=None):
        """R² of ``predict(X)`` against y, averaged uniformly over outputs."""
        return _r2_score(y, self.predict(X), sample_weight)


class _FallbackClassifierMixin:
    _estimator_type = "classifier"

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against y."""
        return _accuracy_score(y, self.predict(X), sample_weight)


if HAS_SKLEARN:
    _Base, _RegressorMixin, _ClassifierMixin = _SkBaseEstimator, _SkRegressorMixin, _SkClassifierMixin
else:
    _Base, _RegressorMixin, _ClassifierMixin = (
        _FallbackBaseEstimator, _FallbackRegressorMixin, _FallbackClassifierMixin)


# ------------------------------------------------------------------- scores
def _r2_score(y_true, y_pred, sample_weight=None):
    """R² = 1 − Σ w(y − ŷ)² / Σ w(y − ȳ)², per output, averaged uniformly
    (a constant y scores 1 when predicted exactly, else 0: sklearn's convention)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    n = y_true.shape[0]
    y_true, y_pred = y_true.reshape(n, -1), y_pred.reshape(y_pred.shape[0], -1)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"y has shape {y_true.shape} but the predictions {y_pred.shape}")
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} entries for {n} samples")
    w = w[:, None]
    mean = (w * y_true).sum(axis=0) / w.sum()
    num = (w * (y_true - y_pred) ** 2).sum(axis=0)
    den = (w * (y_true - mean) ** 2).sum(axis=0)
    r2 = np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1.0), np.where(num == 0, 1.0, 0.0))
    return float(r2.mean())


def _accuracy_score(y_true, y_pred, sample_weight=None):
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y has {y_true.shape[0]} labels but there are {y_pred.shape[0]} predictions")
    hit = (y_true == y_pred).astype(np.float64)
    return float(np.average(hit, weights=sample_weight))


# ------------------------------------------------------- parameter checks
def _check_bool(value, name):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def _check_hidden_layer_sizes(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, got {value!r}")
    try:
        sizes = list(value)
    except TypeError:
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, "
                        f"got {type(value).__name__} {value!r}") from None
    for k, s in enumerate(sizes):
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
            raise TypeError(f"hidden_layer_sizes[{k}] must be an integer, got {s!r}")
        if s < 1:
            raise ValueError(f"hidden_layer_sizes[{k}] must be >= 1, got {s}")
    return tuple(int(s) for s in sizes)


def _check_name(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def _check_fraction(value, name):
    value = check_scalar(value, name, low=0, low_inclusive=False)
    if value >= 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return value


def _draw_seeds(random_state, k):
    """k integer seeds from ``random_state`` (None: numpy's global RandomState;
    an int; a ``np.random.RandomState``; a ``np.random.Generator``)."""
    if random_state is None:
        return [int(s) for s in np.random.randint(0, _MAX_SEED, size=k)]
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_)):
        random_state = np.random.RandomState(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(0, _MAX_SEED, size=k)]
    if isinstance(random_state, np.random.Generator):
        return [int(s) for s in random_state.integers(0, _MAX_SEED, size=k)]
    raise TypeError(f"random_state must be None, an int, a np.random.RandomState or a "
                    f"np.random.Generator, got {type(random_state).__name__} {random_state!r}")


def _train_accepts(name):
    return name in inspect.signature(train).parameters


# ------------------------------------------------------- data checks (no sklearn)
def _is_sparse(a):
    try:
        from scipy.sparse import issparse
    except ImportError:  # pragma: no cover - scipy is a fastbp dependency
        return False
    return issparse(a)


def _fallback_check_X(estimator, X, *, reset, dtype):
    name = type(estimator).__name__
    if _is_sparse(X):
        raise TypeError(f"{name} does not accept sparse input; pass a dense array (X.toarray()).")
    if X is None or isinstance(X, (str, bytes)):
        raise TypeError(f"X must be a 2-D array-like of numbers, got {type(X).__name__}")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"X must be a 2-D array-like of numbers: {exc}") from None
    if arr.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if arr.ndim != 2:
        raise ValueError(f"Expected a 2-D array for X, got {arr.ndim}-D (shape {arr.shape}); "
                         f"use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for "
                         f"a single sample.")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"X must hold numbers: {exc}") from None
    arr = np.ascontiguousarray(arr, dtype=dtype)
    n_samples, n_features = arr.shape
    if n_samples == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum "
                         f"of 1 is required by {name}.")
    if n_features == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum "
                         f"of 1 is required by {name}.")
    if not all_finite(arr):
        raise ValueError("Input X contains NaN or infinity.")
    if reset:
        estimator.n_features_in_ = n_features
    elif n_features != estimator.n_features_in_:
        raise ValueError(f"X has {n_features} features, but {name} is expecting "
                         f"{estimator.n_features_in_} features as input.")
    return arr


def _fallback_check_y(estimator, y, n_samples, *, numeric):
    """y as an ndarray: numeric (regression, 1-D or 2-D) or labels (1-D)."""
    name = type(estimator).__name__
    if y is None:
        raise ValueError(f"This {name} estimator requires y to be passed, but the target y is None.")
    if _is_sparse(y):
        raise TypeError(f"{name} does not accept a sparse y; pass a dense array.")
    try:
        y = np.asarray(y)
    except Exception as exc:
        raise ValueError(f"y must be an array-like: {exc}") from None
    if y.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if numeric:
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"y must hold numbers: {exc}") from None
    else:
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples, ), for example using ravel().",
                          DataConversionWarning, stacklevel=6)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("Input y contains NaN or infinity.")
    if y.shape[0] != n_samples:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"[{n_samples}, {y.shape[0]}]")
    return y


def _fallback_check_classification_targets(y):
    values = y
    if y.dtype.kind == "O":
        try:
            values = y.astype(np.float64)
        except (TypeError, ValueError):
            return  # strings or other labels
    if values.dtype.kind == "f" and np.any(values != np.floor(values)):
        raise ValueError("Unknown label type: continuous. Maybe you are trying to fit a "
                         "classifier, which expects discrete classes on a regression target "
                         "with continuous values.")


# ------------------------------------------------------------ training monitor
class _Monitor:
    """The ``callback(iteration, J, net)`` handed to :func:`fastbp.train`: records
    the cost, scores the validation set (early stopping), keeps the best
    parameters and says when to stop."""

    def __init__(self, tol, patience, stop, validation=None, scorer=None):
        self.tol, self.patience, self.stop = tol, patience, stop
        self.validation, self.scorer = validation, scorer
        self.losses, self.scores = [], []
        self.best_loss, self.best_score, self.best_theta = np.inf, -np.inf, None
        self.no_improvement = 0
        self.converged = False

    def __call__(self, iteration, J, net):
        J = float(J)
        self.losses.append(J)
        if self.validation is not None:
            score = self.scorer(net, *self.validation)
            self.scores.append(score)
            improved = score > self.best_score + self.tol
            if score > self.best_score:
                self.best_score, self.best_theta = score, net.theta.copy()
        else:
            improved = J < self.best_loss - self.tol
        self.best_loss = min(self.best_loss, J)
        self.no_improvement = 0 if improved else self.no_improvement + 1
        if self.stop and self.no_improvement >= self.patience:
            self.converged = True
            return True
        return False


def _fresh_network(net):
    """The same network rebuilt from its description: fresh, writable buffers
    with ``weights``/``biases`` viewing ``theta`` again (after unpickling, a
    Network's views are independent copies and may be read-only memmaps)."""
    fresh = Network(net.layer_sizes, activations=list(net.activations), init="uniform",
                    seed=0, dtype=net.dtype, loss=net.loss)
    fresh.theta = np.array(net.theta, dtype=net.dtype)
    return fresh


# ------------------------------------------------------------------- base
class _BaseMLP(_Base):
    """Shared machinery; subclasses define ``__init__``, the target encoding and
    the validation score."""

    _loss = None  # "squared" or "cross_entropy"

    # ---------------------------------------------------------- parameters
    def _check_params(self):
        optimizer = self.optimizer
        if not isinstance(optimizer, str):
            raise TypeError(f"optimizer must be a string such as 'lbfgs', 'sgd', 'gd' or "
                            f"'adam', got {type(optimizer).__name__} {optimizer!r}")
        extra = self.optimizer_params
        if extra is None:
            extra = {}
        elif not isinstance(extra, Mapping):
            raise TypeError(f"optimizer_params must be a dict of keyword arguments for "
                            f"fastbp.train (or None), got {type(extra).__name__}")
        clash = sorted(set(extra) & _RESERVED_TRAIN_ARGS)
        if clash:
            raise ValueError(f"optimizer_params may not set {clash}: the estimator sets them "
                             f"from its own parameters")
        init = _check_name(self.init, "init", _INITS)
        return dict(
            hidden=_check_hidden_layer_sizes(self.hidden_layer_sizes),
            activation=_check_name(self.activation, "activation", ACTIVATIONS),
            optimizer=optimizer,
            optimizer_params=dict(extra),
            weight_decay=check_scalar(self.weight_decay, "weight_decay", low=0),
            learning_rate=check_scalar(self.learning_rate, "learning_rate", low=0,
                                       low_inclusive=False),
            batch_size=(None if self.batch_size is None else  # None: full batch (adam)
                        check_scalar(self.batch_size, "batch_size", low=1, integer=True)),
            max_iter=check_scalar(self.max_iter, "max_iter", low=1, integer=True),
            shuffle=_check_bool(self.shuffle, "shuffle"),
            warm_start=_check_bool(self.warm_start, "warm_start"),
            early_stopping=_check_bool(self.early_stopping, "early_stopping"),
            validation_fraction=_check_fraction(self.validation_fraction, "validation_fraction"),
            n_iter_no_change=check_scalar(self.n_iter_no_change, "n_iter_no_change", low=1,
                                          integer=True),
            tol=check_scalar(self.tol, "tol", low=0),
            init=init,
            epsilon=check_scalar(self.epsilon, "epsilon", low=0, low_inclusive=False),
            dtype=check_dtype(self.dtype),
        )

    def _output_activation(self, params):
        raise NotImplementedError

    def _architecture(self, params, n_features, n_outputs):
        sizes = (n_features, *params["hidden"], n_outputs)
        activations = (params["activation"],) * len(params["hidden"]) + (
            self._output_activation(params),)
        return sizes, activations

    # ---------------------------------------------------------------- data
    def _validate_X(self, X, *, reset, dtype):
        if HAS_SKLEARN:
            return _sk_validate_data(self, X, reset=reset, dtype=dtype, order="C")
        return _fallback_check_X(self, X, reset=reset, dtype=dtype)

    # ------------------------------------------------------------- fitting
    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def _check_is_fitted(self):
        if HAS_SKLEARN:
            _sk_check_is_fitted(self)
        elif not self.__sklearn_is_fitted__():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 f"'fit' with appropriate arguments before using this estimator.")

    def _forget_fit(self):
        for name in list(vars(self)):
            fitted = name.endswith("_") and not name.startswith("__")
            if fitted or name in ("_rng", "_train_state", "_y_1d"):
                delattr(self, name)

    def _fit(self, X, y, *, incremental, classes=None):
        params = self._check_params()
        continuing = self.__sklearn_is_fitted__() and (incremental or params["warm_start"])
        try:
            return self._fit_checked(X, y, params, incremental, continuing, classes)
        except BaseException:
            if not continuing:  # a failed fresh fit leaves no half-fitted estimator behind
                self._forget_fit()
            raise

    def _fit_checked(self, X, y, params, incremental, continuing, classes):
        dtype = self.net_.dtype if continuing else params["dtype"]
        X, Y, fitted = self._validate_training_data(X, y, reset=not continuing, dtype=dtype,
                                                    continuing=continuing, classes=classes)
        sizes, activations = self._architecture(params, X.shape[1], Y.shape[1])
        if continuing:
            net, rng = self.net_, self._rng
            self._check_same_network(net, sizes, activations, params["dtype"])
            state = self._train_state if incremental else {}
        else:
            init_seed, rng_seed = _draw_seeds(self.random_state, 2)
            net = Network(sizes, activations=list(activations), init=params["init"],
                          epsilon=params["epsilon"], seed=init_seed, dtype=params["dtype"],
                          loss=self._loss)
            rng = np.random.default_rng(rng_seed)
            state = {}

        if incremental:
            optimizer = (params["optimizer"] if params["optimizer"] in _MINIBATCH_OPTIMIZERS
                         else "sgd")
            iterations, validation = 1, None
        else:
            optimizer, iterations = params["optimizer"], params["max_iter"]
            validation = None
            if params["early_stopping"]:
                X, Y, validation = self._split_validation(X, Y, params["validation_fraction"], rng)
        monitor = _Monitor(params["tol"], params["n_iter_no_change"], stop=not incremental,
                           validation=validation, scorer=self._validation_score)
        kwargs = dict(learning_rate=params["learning_rate"], weight_decay=params["weight_decay"],
                      iterations=iterations, callback=monitor, optimizer=optimizer,
                      batch_size=params["batch_size"], shuffle=params["shuffle"],
                      seed=int(rng.integers(_MAX_SEED)), **params["optimizer_params"])
        if _train_accepts("state"):  # optimizer state (momentum, Adam moments) carries over
            kwargs["state"] = state
        train(net, X, Y, **kwargs)

        if validation is not None and monitor.best_theta is not None:
            net.theta = monitor.best_theta
        converged = monitor.converged or len(monitor.losses) < iterations

        # Commit: every fitted attribute is set only once training has succeeded.
        for name, value in fitted.items():
            setattr(self, name, value)
        previous = list(self.loss_curve_) if continuing else []
        self.net_ = net
        self._rng, self._train_state = rng, state
        self.n_outputs_ = Y.shape[1]
        self.loss_curve_ = previous + monitor.losses
        self.n_iter_ = (self.n_iter_ if continuing else 0) + len(monitor.losses)
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None
        if not (incremental and continuing):  # partial_fit keeps those of the last fit
            self.validation_scores_ = monitor.scores if validation is not None else None
            self.best_validation_score_ = (monitor.best_score if validation is not None
                                           and monitor.scores else None)
        if not incremental and not converged:
            what = "validation score" if validation is not None else "training loss"
            warnings.warn(
                f"{type(self).__name__}: optimizer {optimizer!r} reached max_iter={iterations} "
                f"iterations without converging (the {what} still improved by more than "
                f"tol={params['tol']} within the last n_iter_no_change="
                f"{params['n_iter_no_change']} iterations). Increase max_iter or tol.",
                ConvergenceWarning, stacklevel=4)
        return self

    def _check_same_network(self, net, sizes, activations, dtype):
        want = (tuple(sizes), tuple(activations), np.dtype(dtype))
        have = (tuple(net.layer_sizes), tuple(net.activations), net.dtype)
        if want != have:
            raise ValueError(
                f"warm_start / partial_fit continue training net_ = {net!r} (layer sizes "
                f"{list(have[0])}, activations {list(have[1])}), but the current parameters and "
                f"data ask for layer sizes {list(want[0])}, activations {list(want[1])}, dtype "
                f"{want[2]}; fit with warm_start=False to start a new network")

    def _split_validation(self, X, Y, fraction, rng):
        m = X.shape[0]
        n_val = int(np.ceil(fraction * m))
        if n_val < 1 or m - n_val < 1:
            raise ValueError(f"early_stopping with validation_fraction={fraction} needs at "
                             f"least one training and one validation sample; got {m} samples")
        order = rng.permutation(m)
        val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
        return X[fit], Y[fit], (X[val], self._validation_target(Y[val]))

    def _validation_target(self, Y_val):
        return Y_val

    # ------------------------------------------------------------- pickling
    def __setstate__(self, state):
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
        if "net_" in self.__dict__:
            self.net_ = _fresh_network(self.net_)
        if "_train_state" in self.__dict__:
            self._train_state = {k: (np.array(v) if isinstance(v, np.ndarray) else v)
                                 for k, v in self._train_state.items()}

    # ---------------------------------------------------------------- tags
    if _SKLEARN_TAGS:
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.sparse = False
            tags.input_tags.allow_nan = False
            return tags


# ----------------------------------------------------------------- regressor
class MLPRegressor(_RegressorMixin, _BaseMLP):
    """A fully-connected regression network trained with fastbp's backpropagation.

    Loss: ``J = (1/m) Σ ½‖h(x) − y‖² + (λ/2) Σ‖W‖²`` (:class:`fastbp.Network`
    with ``loss="squared"``), minimised by :func:`fastbp.train`.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers; ``()`` fits a single affine layer.
    activation : {"sigmoid", "tanh", "relu", "identity"}, default "sigmoid"
        f of every hidden layer.
    output_activation : {"identity", "sigmoid", "tanh", "relu"}, default "identity"
        f of the output layer.
    optimizer : str, default "lbfgs"
        Passed unchanged to ``fastbp.train(optimizer=...)``: "lbfgs", "gd",
        "sgd", and whatever else ``train`` supports (e.g. "adam").
    weight_decay : float, default 1e-4
        λ ≥ 0 (weights only, never biases).
    learning_rate : float, default 0.1
        α > 0 (gd, sgd, adam; unused by lbfgs).
    batch_size : int, default 32
        Examples per mini-batch (sgd, adam).
    max_iter : int, default 200
        Iterations (lbfgs, gd) or epochs (sgd, adam) per ``fit``.
    shuffle : bool, default True
        Shuffle the examples every epoch (sgd, adam).
    random_state : None, int, np.random.RandomState or np.random.Generator, default None
        Controls initialisation, shuffling and the validation split.
    warm_start : bool, default False
        ``fit`` continues from ``net_`` instead of starting a new network.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data, score it (R²) after every
        iteration, stop when the score has not improved by ``tol`` for
        ``n_iter_no_change`` iterations and keep the best parameters.
    validation_fraction : float, default 0.1
        Fraction in (0, 1) held out for early stopping.
    n_iter_no_change : int, default 10
        Patience: iterations without an improvement of at least ``tol``
        (validation score with early stopping, training loss without) after
        which training stops and counts as converged.
    tol : float, default 1e-4
        Minimum improvement.
    init : {"uniform", "normal"}, default "uniform"
        Initialisation rule of :class:`fastbp.Network`.
    epsilon : float, default 0.01
        Standard deviation of the "normal" initialisation.
    dtype : np.float32 or np.float64, default np.float64
        Precision of the network; inputs are converted to it.
    optimizer_params : dict or None, default None
        Further keyword arguments for :func:`fastbp.train` (for example
        ``{"momentum": 0.9, "nesterov": True}`` once ``train`` supports them).

    Attributes
    ----------
    net_ : fastbp.Network
        The trained network.
    n_features_in_ : int
    n_outputs_ : int
    loss_curve_ : list of float
        The cost ``train`` reported for every iteration (continued by warm
        starts and ``partial_fit``).
    n_iter_ : int
        Iterations (epochs) run, summed over warm starts and ``partial_fit``.
    best_loss_ : float or None
        The lowest value in ``loss_curve_``.
    validation_scores_ : list of float or None
        R² on the held-out data after each iteration of the last ``fit`` (early stopping).
    best_validation_score_ : float or None
        The best of them; ``net_`` holds the parameters that reached it.
    """

    _loss = "squared"

    def __init__(self, hidden_layer_sizes=(100,), activation="sigmoid",
                 output_activation="identity", optimizer="lbfgs", weight_decay=1e-4,
                 learning_rate=0.1, batch_size=32, max_iter=200, shuffle=True,
                 random_state=None, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, init="uniform",
                 epsilon=0.01, dtype=np.float64, optimizer_params=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output_activation = output_activation
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.init = init
        self.epsilon = epsilon
        self.dtype = dtype
        self.optimizer_params = optimizer_params

    def _output_activation(self, params):
        return _check_name(self.output_activation, "output_activation", ACTIVATIONS)

    def _validate_training_data(self, X, y, *, reset, dtype, continuing, classes):
        if HAS_SKLEARN:
            if _is_sparse(y):
                raise TypeError(f"{type(self).__name__} does not accept a sparse y; pass a dense array.")
            X, y = _sk_validate_data(self, X, y, reset=reset, dtype=dtype, order="C",
                                     multi_output=True, y_numeric=True)
        else:
            X = _fallback_check_X(self, X, reset=reset, dtype=dtype)
            y = _fallback_check_y(self, y, X.shape[0], numeric=True)
        y = np.asarray(y)
        y_1d = y.ndim == 1
        Y = np.ascontiguousarray(y.reshape(-1, 1) if y_1d else y, dtype=dtype)
        if Y.shape[1] == 0:
            raise ValueError(f"y has 0 columns (shape {y.shape}); expected at least one target")
        if continuing and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} target column(s) but net_ was fitted with "
                             f"{self.n_outputs_}; fit with warm_start=False to start over")
        return X, Y, {"_y_1d": y_1d}

    def _validation_score(self, net, X_val, Y_val):
        return _r2_score(Y_val, net.predict(X_val))

    def fit(self, X, y):
        """Train on X, y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over X, y with "sgd" (or the chosen optimizer if it works on
        mini-batches, e.g. "adam"), continuing from ``net_`` when fitted.
        ``max_iter`` and early stopping do not apply.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Network outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) when fitted on a 1-D y, else (n_samples, n_outputs)
        """
        self._check_is_fitted()
        X = self._validate_X(X, reset=False, dtype=self.net_.dtype)
        out = self.net_.predict(X)
        return out.ravel() if self._y_1d else out

    if _SKLEARN_TAGS:
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.target_tags.multi_output = True
            tags.target_tags.single_output = True
            return tags
    elif HAS_SKLEARN:
        def _more_tags(self):
            return {"multioutput": True, "allow_nan": False}


# ---------------------------------------------------------------- classifier
class MLPClassifier(_ClassifierMixin, _BaseMLP):
    """A fully-connected classification network trained with fastbp's backpropagation.

    The output layer is a softmax over ``classes_`` trained with cross-entropy
    on one-hot targets (:class:`fastbp.Network` with ``loss="cross_entropy"``),
    for two classes as for many, so ``predict_proba`` rows sum to 1.

    Parameters
    ----------
    hidden_layer_sizes, activation, optimizer, weight_decay, learning_rate, batch_size,
    max_iter, shuffle, random_state, warm_start, early_stopping, validation_fraction,
    n_iter_no_change, tol, init, epsilon, dtype, optimizer_params
        As for :class:`MLPRegressor`; early stopping scores the held-out data
        by accuracy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The sorted class labels.
    net_, n_features_in_, n_outputs_, loss_curve_, n_iter_, best_loss_,
    validation_scores_, best_validation_score_
        As for :class:`MLPRegressor` (``n_outputs_`` is ``n_classes``).
    """

    _loss = "cross_entropy"

    def __init__(self, hidden_layer_sizes=(100,), activation="sigmoid", optimizer="lbfgs",
                 weight_decay=1e-4, learning_rate=0.1, batch_size=32, max_iter=200,
                 shuffle=True, random_state=None, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, init="uniform",
                 epsilon=0.01, dtype=np.float64, optimizer_params=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.init = init
        self.epsilon = epsilon
        self.dtype = dtype
        self.optimizer_params = optimizer_params

    def _output_activation(self, params):
        return "softmax"

    def _validate_training_data(self, X, y, *, reset, dtype, continuing, classes):
        name = type(self).__name__
        if HAS_SKLEARN:
            if _is_sparse(y):
                raise TypeError(f"{name} does not accept a sparse y; pass a dense array.")
            X, y = _sk_validate_data(self, X, y, reset=reset, dtype=dtype, order="C")
            _sk_check_targets(y)
        else:
            X = _fallback_check_X(self, X, reset=reset, dtype=dtype)
            y = _fallback_check_y(self, y, X.shape[0], numeric=False)
            _fallback_check_classification_targets(y)
        y = np.asarray(y)

        if continuing:
            if classes is not None and not np.array_equal(_unique_labels(classes), self.classes_):
                raise ValueError(f"classes={_unique_labels(classes).tolist()} differs from "
                                 f"classes_ = {self.classes_.tolist()} of the earlier "
                                 f"fit/partial_fit")
            known = self.classes_
        elif classes is not None:
            known = _unique_labels(classes)
        else:
            known = _unique_labels(y)
        if known.shape[0] < 2:
            raise ValueError(f"{name} needs samples of at least 2 classes, but the data "
                             f"contains only one class: {known.tolist()[0]!r}")
        index = np.searchsorted(known, y)
        unknown = (index >= known.shape[0]) | (known[np.minimum(index, known.shape[0] - 1)] != y)
        if np.any(unknown):
            where = "classes_ of the earlier fit" if continuing else "classes"
            raise ValueError(f"y has labels {_unique_labels(y[unknown]).tolist()} that are not "
                             f"in {where} {known.tolist()}")
        Y = np.zeros((y.shape[0], known.shape[0]), dtype=dtype)
        Y[np.arange(y.shape[0]), index] = 1
        return X, Y, {} if continuing else {"classes_": known}

    def _validation_target(self, Y_val):
        return np.argmax(Y_val, axis=1)

    def _validation_score(self, net, X_val, labels):
        return float(np.mean(np.argmax(net.predict(X_val), axis=1) == labels))

    def fit(self, X, y):
        """Train on X and the class labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels (ints, strings, ...), at least two distinct ones.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over X, y with "sgd" (or the chosen optimizer if it works on
        mini-batches, e.g. "adam"), continuing from ``net_`` when fitted.
        ``max_iter`` and early stopping do not apply.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), optional
            Every label that will ever occur; required on the first call.

        Returns
        -------
        self
        """
        if classes is None and not self.__sklearn_is_fitted__():
            raise ValueError("classes must be passed on the first call to partial_fit "
                             "(every label that will ever occur)")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities (softmax outputs).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to 1.
        """
        self._check_is_fitted()
        X = self._validate_X(X, reset=False, dtype=self.net_.dtype)
        return self.net_.predict(X)

    def predict(self, X):
        """The most probable class of each row of X: ndarray of shape (n_samples,)."""
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(proba, axis=1)]


def _unique_labels(y):
    try:
        return np.unique(np.asarray(y).reshape(-1))
    except TypeError as exc:
        raise TypeError(f"class labels must be mutually comparable (e.g. all strings or all "
                        f"numbers): {exc}") from None
