"""scikit-learn's :class:`MLPClassifier` and :class:`MLPRegressor` on fastbp's kernels.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` and
``MLPRegressor``: the same parameters with the same names, meanings and
defaults, the same fitted attributes and methods, and the same training
procedure (Glorot initialisation drawn from ``random_state`` in scikit-learn's
order, its mini-batch order, early-stopping split, learning-rate schedules,
stopping rule and warnings). Every forward pass, gradient and parameter update
runs in :mod:`fastbp._kernels` — a :class:`fastbp.Network` holds the
parameters, and ``coefs_[i]``/``intercepts_[i]`` are views into its θ
(``coefs_[i]`` is ``W.T``: scikit-learn stores (fan_in, fan_out)).

scikit-learn is required (``pip install fastbp[sklearn]``); ``import fastbp``
does not import it — ``fastbp.MLPClassifier`` loads this module on first use.

What the objective is, exactly as scikit-learn computes it (n = samples in the
batch, or all of them for L-BFGS)::

    loss = (1/n) Σ_k loss(y_k, h(x_k)) + (α / 2n) Σ_l ‖W_l‖²

with the output loss on the canonical output unit (δ = h − y): identity +
½‖·‖² (regressor), exp + half Poisson deviance (regressor, ``loss="poisson"``),
one logistic unit + binary log-loss (two classes), softmax + log-loss (several
classes), one logistic unit per label + binary log-loss (multilabel). In
fastbp's terms: ``weight_decay = alpha / n`` per batch.

Differences from scikit-learn, all documented on the parameters below:

* sparse ``X`` is densified once, up front (``X.toarray()``), in ``fit`` and
  ``predict`` alike;
* ``sample_weight`` must be None or constant: fastbp's kernels do not weight
  samples. A constant weight c is exactly scikit-learn's weighting (it scales
  the penalty to α/c); other weights raise ``ValueError``;
* with several regression targets, scikit-learn's *reported* squared error
  divides the data term by n_outputs while its gradients do not; fastbp trains
  with the same gradients and reports the loss those gradients belong to
  (summed over outputs). With one output the two agree.

Extra parameters (not in scikit-learn): ``dtype`` (network precision; default
X's float dtype), ``init`` ("glorot" = scikit-learn's, "normal" = the seed's
N(0, ε²), "uniform" = the UFLDL exercise code's) and ``init_epsilon`` (ε).

>>> import numpy as np
>>> from fastbp import MLPRegressor
>>> X = np.linspace(-1, 1, 50).reshape(-1, 1)
>>> reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, X[:, 0] ** 2)
>>> reg.predict(X).shape
(50,)
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
except ImportError as exc:  # exercised in a subprocess test
    raise ImportError("fastbp.MLPClassifier and fastbp.MLPRegressor need scikit-learn: "
                      "pip install 'fastbp[sklearn]'") from exc
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils import shuffle as _shuffle
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _kernels as K
from ._validation import check_dtype
from .network import Network
from .training import minibatch_epoch

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")
# scikit-learn's activation names -> fastbp's.
_HIDDEN = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# out_activation_ -> (fastbp output activation, fastbp loss).
_OUTPUT = {"identity": ("identity", "squared"), "exp": ("exp", "poisson"),
           "logistic": ("sigmoid", "binary_cross_entropy"), "softmax": ("softmax", "cross_entropy")}
_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
              "values and need to be preprocessed.")


class _Optimizer:
    """The state of the "sgd" or "adam" update between epochs: the kernel's
    update rule, its moments (velocity, or Adam's m and s, laid out like θ),
    the step count, and the learning rate with scikit-learn's schedules.

    ``learning_rate`` is the rate the next epoch uses (sgd) or Adam's
    bias-corrected rate after the last step, as in scikit-learn's optimizers.
    """

    def __init__(self, est, n_params, dtype):
        self.solver = est.solver
        self.learning_rate_init = float(est.learning_rate_init)
        self.learning_rate = float(est.learning_rate_init)
        self.lr_schedule = est.learning_rate
        self.power_t = float(est.power_t)
        self.momentum = float(est.momentum)
        self.beta_1, self.beta_2, self.epsilon = float(est.beta_1), float(est.beta_2), float(est.epsilon)
        if self.solver == "adam":
            self.kind = K.ADAM
        elif self.momentum > 0:
            self.kind = K.NESTEROV if est.nesterovs_momentum else K.MOMENTUM
        else:
            self.kind = K.PLAIN
        self.moments = np.zeros((2, n_params), dtype)
        self.step = np.zeros(1, np.int64)

    def after_steps(self):
        if self.solver == "adam" and self.step[0]:
            t = int(self.step[0])
            self.learning_rate = (self.learning_rate_init * np.sqrt(1 - self.beta_2 ** t)
                                  / (1 - self.beta_1 ** t))

    def iteration_ends(self, time_step):
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True: stop. "adaptive" sgd instead divides the rate by 5 until it is ≤ 1e-6."""
        if self.solver == "adam" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network,
    the L-BFGS and mini-batch drivers around fastbp's kernels."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        # fastbp's extras
        "dtype": "no_validation",  # checked in fit by fastbp's check_dtype
        "init": [StrOptions({"glorot", "normal", "uniform"})],
        "init_epsilon": [Interval(Real, 0, None, closed="neither")],
    }

    # ------------------------------------------------------------ network
    def _make_network(self, layer_units, dtype):
        hidden = _HIDDEN[self.activation]
        out, loss = _OUTPUT[self.out_activation_]
        activations = [hidden] * (len(layer_units) - 2) + [out]
        return Network(layer_units, activations=activations, loss=loss, dtype=dtype)

    def _bind(self, net):
        """Make ``net`` the estimator's network: coefs_/intercepts_ become views of θ."""
        self._net = net
        self.coefs_ = [W.T for W in net.weights]
        self.intercepts_ = list(net.biases)
        self._bound = (tuple(self.coefs_), tuple(self.intercepts_))

    def _network(self):
        """The network holding coefs_ and intercepts_ — rebuilt from them when
        they were replaced (by assignment, or by unpickling)."""
        net, bound = self.__dict__.get("_net"), self.__dict__.get("_bound")
        if (net is not None and bound is not None and len(bound[0]) == len(self.coefs_)
                and all(a is b for a, b in zip(bound[0], self.coefs_))
                and all(a is b for a, b in zip(bound[1], self.intercepts_))):
            return net
        coefs = [np.asarray(c) for c in self.coefs_]
        intercepts = [np.asarray(b).reshape(-1) for b in self.intercepts_]
        units = [c.shape[0] for c in coefs] + [coefs[-1].shape[1]]
        for i, (c, b) in enumerate(zip(coefs, intercepts)):
            if c.ndim != 2 or c.shape != (units[i], units[i + 1]) or b.shape != (units[i + 1],):
                raise ValueError(f"coefs_[{i}] has shape {c.shape} and intercepts_[{i}] "
                                 f"{b.shape}; expected ({units[i]}, {units[i + 1]}) and "
                                 f"({units[i + 1]},)")
        dtype = coefs[0].dtype if coefs[0].dtype in (np.float32, np.float64) else np.float64
        net = self._make_network(units, dtype)
        for W, bias, c, b in zip(net.weights, net.biases, coefs, intercepts):
            W[...] = c.T
            bias[...] = b
        self._bind(net)
        return net

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight=None, *buffers):
        """Loss and gradient at a parameter vector packed as scikit-learn packs
        it (every coefs_[i] row-major, then every intercepts_[i]), computed by
        fastbp's kernel; the parameters are set to it, as scikit-learn does.
        scikit-learn's private hook, kept for code (and its test) that calls it;
        ``buffers`` (its preallocated arrays) are not needed."""
        net = self._network()
        index = np.arange(net.n_params)
        W_index, b_index = net.unflatten(index)
        order = np.concatenate([W.T.ravel() for W in W_index] + list(b_index))
        net.theta[order] = np.asarray(packed_coef_inter, dtype=net.dtype)
        if scipy.sparse.issparse(X):
            X = X.toarray()
        X = np.ascontiguousarray(X, dtype=net.dtype)
        Y = np.ascontiguousarray(np.reshape(y, (X.shape[0], -1)), dtype=net.dtype)
        grad = np.empty(net.n_params, net.dtype)
        J = net._evaluate(net.theta, X, Y, self._alpha(sample_weight, X) / X.shape[0],
                          0.0, 0.0, grad)
        return J, grad[order].astype(np.float64)

    @property
    def net_(self):
        """The fitted :class:`fastbp.Network` (θ shared with coefs_ and intercepts_)."""
        check_is_fitted(self)
        return self._network()

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state.pop("_net", None)   # rebuilt from coefs_/intercepts_ on first use
        state.pop("_bound", None)
        return state

    # ---------------------------------------------------------- fitting
    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        net = self._make_network(layer_units, dtype)
        if self.init == "glorot":
            # scikit-learn's draws, in its order: per layer W (fan_in, fan_out), then b.
            factor = 2.0 if self.activation == "logistic" else 6.0
            for W, b in zip(net.weights, net.biases):
                fan_out, fan_in = W.shape
                bound = np.sqrt(factor / (fan_in + fan_out))
                W[...] = self._random_state.uniform(-bound, bound, (fan_in, fan_out)).T
                b[...] = self._random_state.uniform(-bound, bound, fan_out)
        else:
            net.initialize(self.init, self.init_epsilon, self._random_state.randint(2**31 - 1))
        self._bind(net)
        self._best_theta = net.theta.copy()
        if self.solver in _STOCHASTIC_SOLVERS:
            self._reset_stochastic_records()

    def _reset_stochastic_records(self):
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if scipy.sparse.issparse(X):
            X = X.toarray()  # densified once, up front
        if first_pass:
            dtype = X.dtype if self.dtype is None else check_dtype(self.dtype)
        else:
            dtype = self._network().dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        alpha = self._alpha(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)

        if first_pass:
            self._initialize(y, layer_units, dtype)
        else:
            units = list(self._network().layer_sizes)
            if units != layer_units:
                raise ValueError(
                    f"the fitted network has layer sizes {units} but this data and "
                    f"hidden_layer_sizes={self.hidden_layer_sizes!r} need {layer_units}; "
                    f"fit with warm_start=False to start over")
            if self.solver in _STOCHASTIC_SOLVERS and not hasattr(self, "loss_curve_"):
                self._reset_stochastic_records()

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, alpha, incremental)
        else:
            self._fit_lbfgs(X, y, alpha)

        if not np.all(np.isfinite(self._network().theta)):
            raise ValueError(_NONFINITE)
        return self

    def _alpha(self, sample_weight, X):
        """α, adjusted for a constant sample weight c (scikit-learn divides the
        penalty by Σw = c·n, the data term is unchanged: α/c)."""
        if sample_weight is None:
            return float(self.alpha)
        sample_weight = _check_sample_weight(sample_weight, X)
        c = sample_weight[0]
        if not np.all(sample_weight == c) or not c > 0:
            raise ValueError(
                "sample_weight must be None or the same positive value for every sample: "
                "fastbp's kernels do not weight samples individually")
        return float(self.alpha) / float(c)

    def _targets(self, y, dtype):
        return np.ascontiguousarray(y, dtype=dtype)

    def _fit_lbfgs(self, X, y, alpha):
        net = self._network()
        Y = self._targets(y, net.dtype)
        weight_decay = alpha / X.shape[0]
        grad = np.empty(net.n_params, net.dtype)
        history = []

        def loss_and_gradient(theta):
            theta = theta.astype(net.dtype, copy=False)
            J = net._evaluate(theta, X, Y, weight_decay, 0.0, 0.0, grad)
            return J, grad.astype(np.float64)

        def report(intermediate_result):
            history.append(float(intermediate_result.fun))
            print("Iteration %d, loss = %.8f" % (len(history), history[-1]))

        with np.errstate(over="ignore", invalid="ignore"):
            result = scipy.optimize.minimize(
                loss_and_gradient, net.theta.astype(np.float64), method="L-BFGS-B", jac=True,
                callback=report if self.verbose else None,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if result.status != 0:
            message = result.message
            if isinstance(message, bytes):
                message = message.decode("latin1")
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) (status="
                f"{result.status}):\n{message}.\n\nIncrease the number of iterations to "
                f"improve the convergence (max_iter={self.max_iter}).\nYou might also want to "
                f"scale the data.", ConvergenceWarning, stacklevel=3)
        self.n_iter_ = min(result.nit, self.max_iter)
        self.loss_ = float(result.fun)
        net.theta[...] = result.x

    def _fit_stochastic(self, X, y, alpha, incremental):
        net = self._network()
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Optimizer(self, net.n_params, net.dtype)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # stratified, except for multilabel targets (as scikit-learn)
            stratify = y if self._is_classifier() and self.n_outputs_ == 1 else None
            X_train, X_val, y_train, y_val = train_test_split(
                X, y, random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            y_val = self._validation_targets(y_val)
        else:
            X_train, y_train, X_val, y_val = X, y, None, None
        if "_best_theta" not in self.__dict__:
            self._best_theta = net.theta.copy()
        X_train = np.ascontiguousarray(X_train)
        Y_train = self._targets(y_train, net.dtype)

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        sample_idx = np.arange(n_samples, dtype=int)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _shuffle(sample_idx, random_state=self._random_state)
                self.loss_ = self._epoch(net, X_train, Y_train, sample_idx, batch_size, alpha)
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                                  f"reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            net.theta[...] = self._best_theta  # the best parameters seen

    def _epoch(self, net, X, Y, sample_idx, batch_size, alpha):
        """One pass in mini-batches (rows in ``sample_idx`` order) through
        fastbp's mini-batch kernel; returns scikit-learn's epoch loss: the
        batch losses weighted by batch size.

        Each batch B has the penalty α/|B| (scikit-learn's scaling). The full
        batches go to the kernel in one call, a smaller last batch in a second.
        """
        if self.shuffle:
            X, Y = np.take(X, sample_idx, axis=0), np.take(Y, sample_idx, axis=0)
        n = X.shape[0]
        n_full = n - n % batch_size
        opt = self._optimizer
        dt = net.dtype.type
        # Adam's kernel applies its bias correction to the initial rate itself.
        rate = opt.learning_rate_init if opt.solver == "adam" else opt.learning_rate
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for lo, hi, b in ((0, n_full, batch_size), (n_full, n, n - n_full)):
                if hi == lo:
                    continue
                # β in float64: Adam's 1 − β and bias correction as scikit-learn
                # forms them (float32 θ: the kernel rounds them once)
                J = minibatch_epoch(
                    net, X[lo:hi], Y[lo:hi], np.arange(hi - lo), False, b, alpha / b,
                    opt.kind, dt(rate), dt(opt.momentum), float(opt.beta_1),
                    float(opt.beta_2), dt(opt.epsilon), opt.moments, opt.step)
                total += J * (hi - lo)
        opt.after_steps()
        return total / n

    def _update_no_improvement_count(self, early_stopping, X_val, y_val):
        if early_stopping:
            score = self._score_network(X_val, y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_theta = self._network().theta.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _score_network(self, X, y):
        """Validation score (R² or accuracy) without input validation; NaN when
        the network's outputs are not finite."""
        if not np.all(np.isfinite(self._network().theta)):
            return np.nan
        out = self._forward(X)
        if not np.all(np.isfinite(out)):
            return np.nan
        return float(self._score_function(y, self._outputs_to_predictions(out)))

    # ------------------------------------------------------------ predicting
    def _forward(self, X):
        net = self._network()
        if scipy.sparse.issparse(X):
            X = X.toarray()
        return net.predict(np.ascontiguousarray(X, dtype=net.dtype))

    def _validated_forward(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return self._forward(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (a sparse matrix is densified once).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real values (regression).
        sample_weight : None or array-like of shape (n_samples,), default=None
            Must be None or constant (see the module docstring).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_COMMON_DOC = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'lbfgs': scipy's L-BFGS-B on the flat parameter vector (``tol`` is its
        gradient tolerance ``gtol``, ``max_fun`` its limit on loss evaluations);
        'sgd': mini-batch gradient descent with (Nesterov's) momentum; 'adam'.
    alpha : float, default=0.0001
        Strength of the L2 penalty, divided by the number of samples in the
        batch: loss += (alpha / 2n) Σ‖W‖².
    batch_size : int or 'auto', default='auto'
        Mini-batch size for 'sgd' and 'adam'; 'auto' is min(200, n_samples).
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        'sgd' schedule: learning_rate_init; learning_rate_init / (t + 1)^power_t
        with t the samples seen before the epoch; or divided by 5 each time the
        loss (validation score) stops improving, until it falls to 1e-6.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs ('sgd', 'adam') or L-BFGS iterations, per fit.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Initialisation, batch order and early-stopping split, drawn in
        scikit-learn's order (the same seed gives scikit-learn's initial weights).
    tol : float, default=1e-4
    verbose : bool, default=False
        Print the loss after every iteration.
    warm_start : bool, default=False
        Continue from coefs_/intercepts_ (n_iter_ counts this fit only; t_ continues).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out validation_fraction of the data (stratified for the
        classifier, except multilabel) and stop when its score stops improving
        by tol for n_iter_no_change epochs; keeps the best parameters.
    validation_fraction : float, default=0.1
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's ε (not an initialisation scale: that is ``init_epsilon``).
    n_iter_no_change : int or np.inf, default=10
    max_fun : int, default=15000
    dtype : None, np.float32 or np.float64, default=None
        fastbp extra: precision of the network. None: X's float dtype
        (float32 X trains a float32 network; anything else float64).
    init : {'glorot', 'normal', 'uniform'}, default='glorot'
        fastbp extra: 'glorot' is scikit-learn's initialisation; 'normal' the
        seed's W, b ~ N(0, init_epsilon²); 'uniform' the UFLDL exercise code's.
    init_epsilon : float, default=0.01
        fastbp extra: ε of init='normal'.
"""

_ATTRS_DOC = """
    loss_ : float
        The loss at the end of the last iteration.
    best_loss_ : float or None
        The lowest training loss ('sgd', 'adam'); None with early stopping.
    loss_curve_ : list of float
        The loss after each epoch ('sgd', 'adam').
    validation_scores_ : list of float or None
        The validation score after each epoch (early stopping), else None.
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray of shape (fan_in, fan_out)
        Views into the network's θ.
    intercepts_ : list of ndarray of shape (fan_out,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    net_ : fastbp.Network
        The network (fastbp extra); ``fastbp.save(est.net_, path)`` writes it.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron classifier (scikit-learn's) trained by fastbp's kernels.

    Log-loss on softmax outputs for several classes, on one logistic output
    for two classes, on one logistic unit per label for multilabel targets.

    Parameters
    ----------""" + _COMMON_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)""" + _ATTRS_DOC)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, init="glorot", init_epsilon=0.01):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.init = init
        self.init_epsilon = init_epsilon

    def _is_classifier(self):
        return True

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        f"warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _validation_targets(self, y_val):
        return self._label_binarizer.inverse_transform(y_val)

    def _score_function(self, y, y_pred):
        return accuracy_score(y, y_pred)

    def _outputs_to_predictions(self, out):
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict(self, X):
        """The predicted classes: ndarray of shape (n_samples,) or (n_samples, n_classes)
        (multilabel)."""
        return self._outputs_to_predictions(self._validated_forward(X))

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y ('sgd' and 'adam' only).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : None or array-like of shape (n_samples,), default=None
            Must be None or constant.
        classes : array-like of shape (n_classes,), default=None
            Every class; required on the first call.

        Returns
        -------
        self
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Probabilities: ndarray of shape (n_samples, n_classes), columns in classes_ order."""
        out = self._validated_forward(X)
        if self.n_outputs_ == 1:
            out = out.ravel()
            return np.vstack([1 - out, out]).T
        return out

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron regressor (scikit-learn's) trained by fastbp's kernels.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        Half the squared error on an identity output, or half the Poisson
        deviance on an exp output (y ≥ 0).""" + _COMMON_DOC + """
    Attributes
    ----------""" + _ATTRS_DOC)

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, init="glorot", init_epsilon=0.01):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.init = init
        self.init_epsilon = init_epsilon

    def _is_classifier(self):
        return False

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs y >= 0 (counts or rates)")
        return X, y

    def _validation_targets(self, y_val):
        return y_val

    def _score_function(self, y, y_pred):
        return r2_score(y, y_pred)

    def _outputs_to_predictions(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    def predict(self, X):
        """Predictions: ndarray of shape (n_samples,) or (n_samples, n_outputs)."""
        return self._outputs_to_predictions(self._validated_forward(X))

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y ('sgd' and 'adam' only).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : None or array-like of shape (n_samples,), default=None
            Must be None or constant.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
