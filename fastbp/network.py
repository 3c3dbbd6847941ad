"""The network: its parameters θ and the thin wrappers around the kernels.

:class:`Network` owns one flat parameter vector ``theta``; ``weights[l]`` and
``biases[l]`` are views into it (W^(l+1), b^(l+1) of the seed, counting layers
from 1 there and from 0 here). Each public method validates its input once,
converts it at most once, and calls one kernel from :mod:`fastbp._kernels`.
"""

import numpy as np

from . import _kernels as K
from ._compiler import BLAS_MIN_WEIGHTS, CHUNK, MAX_SLOTS
from ._threads import blas_single_threaded
from ._validation import all_finite, check_data, check_dtype, check_scalar, check_theta

ACTIVATIONS = {"sigmoid": K.SIGMOID, "tanh": K.TANH, "relu": K.RELU, "identity": K.IDENTITY}
LOSSES = {"squared": K.SQUARED, "cross_entropy": K.CROSS_ENTROPY,
          "binary_cross_entropy": K.BINARY_CROSS_ENTROPY, "poisson": K.POISSON}
#: The output activation each of these losses puts on the output layer.
OUTPUT_ACTIVATIONS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                      "poisson": "exp"}
_OUTPUT_ONLY = {"softmax": K.SOFTMAX, "exp": K.EXP}
INITS = ("normal", "uniform")


class Network:
    """A fully-connected network trained with the UFLDL backpropagation algorithm.

    Parameters
    ----------
    layer_sizes : sequence of int
        (s_1, …, s_{n_l}): input width, hidden widths, output width; at least two.
    activations : str or sequence of str, default "sigmoid"
        f for every layer transition, or one name per transition (n_l − 1 of
        them), from "sigmoid" (the seed), "tanh", "relu", "identity".
        With ``loss="cross_entropy"`` the output layer is a softmax and the
        last entry, if given per layer, must be "softmax".
    init : {"normal", "uniform"}, default "normal"
        "normal": every W and b drawn from N(0, ε²) (the seed's rule).
        "uniform": W ~ U(−r, r), r = √6/√(s_l + s_{l+1} + 1), b = 0 (UFLDL exercise code).
    epsilon : float, default 0.01
        ε, the standard deviation of the "normal" initialisation.
    seed : int or None, default 0
        Seed of the ``numpy.random.Generator`` used for initialisation.
    dtype : np.float32 or np.float64, default np.float64
        Precision of parameters and arithmetic.
    loss : {"squared", "cross_entropy", "binary_cross_entropy", "poisson"}, default "squared"
        "squared" is the seed's ½‖h(x) − y‖²; "cross_entropy" puts a softmax on
        the output and uses −Σ y log h(x); "binary_cross_entropy" puts a
        sigmoid on every output unit and uses −Σ [y log h + (1 − y) log(1 − h)];
        "poisson" puts exp on the output and uses Σ [y log(y/h) − y + h]
        (scikit-learn's MLP losses for binary/multilabel targets and counts).

    Attributes
    ----------
    theta : ndarray of shape (n_params,)
        All parameters, W^(1), b^(1), W^(2), b^(2), … each row-major, in one
        contiguous vector. Assigning to it copies into the same buffer.
    weights : tuple of ndarray of shape (s_{l+1}, s_l)
        Views into ``theta``.
    biases : tuple of ndarray of shape (s_{l+1},)
        Views into ``theta``.
    """

    def __init__(self, layer_sizes, activations="sigmoid", init="normal", epsilon=0.01,
                 seed=0, dtype=np.float64, loss="squared"):
        self.layer_sizes = _check_layer_sizes(layer_sizes)
        self.dtype = check_dtype(dtype)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.loss = loss
        self.activations = _check_activations(activations, len(self.layer_sizes) - 1, loss)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        epsilon = check_scalar(epsilon, "epsilon", low=0, low_inclusive=False)

        self._sizes = np.array(self.layer_sizes, dtype=np.int64)
        self._activation_codes = np.array(
            [_OUTPUT_ONLY[a] if a in _OUTPUT_ONLY else ACTIVATIONS[a] for a in self.activations],
            np.int64)
        self._use_blas = np.array(
            [s_in * s_out >= BLAS_MIN_WEIGHTS
             for s_in, s_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:])], np.bool_)
        self._any_blas = bool(self._use_blas.any())
        self._theta = np.empty(self.n_params, dtype=self.dtype)
        self.weights, self.biases = self.unflatten(self._theta)
        self.initialize(init, epsilon, seed)

    # ------------------------------------------------------------------ θ
    @property
    def n_params(self):
        """Number of parameters Σ_l s_{l+1}(s_l + 1)."""
        s = self.layer_sizes
        return sum(s[l + 1] * (s[l] + 1) for l in range(len(s) - 1))

    @property
    def theta(self):
        return self._theta

    @theta.setter
    def theta(self, value):
        self._theta[...] = check_theta(value, self.n_params, self.dtype)

    def unflatten(self, flat):
        """Views (W^(l)…), (b^(l)…) into a flat vector laid out like θ."""
        weights, biases, off = [], [], 0
        for s_in, s_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            weights.append(flat[off:off + s_out * s_in].reshape(s_out, s_in))
            off += s_out * s_in
            biases.append(flat[off:off + s_out])
            off += s_out
        return tuple(weights), tuple(biases)

    def initialize(self, init="normal", epsilon=0.01, seed=0):
        """Draw fresh parameters (see the class docstring for the rules)."""
        rng = np.random.default_rng(seed)
        if init == "normal":
            # Every W_ij and b_i ~ N(0, ε²): small, near zero, never all equal.
            self._theta[...] = rng.normal(0.0, epsilon, size=self.n_params)
        elif init == "uniform":
            for W, b in zip(self.weights, self.biases):
                s_out, s_in = W.shape
                r = np.sqrt(6.0) / np.sqrt(s_in + s_out + 1)
                W[...] = rng.uniform(-r, r, size=W.shape)
                b[...] = 0
        else:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")

    def astype(self, dtype):
        """An independent network with the same architecture and parameters
        (converted to ``dtype``)."""
        other = Network.__new__(Network)
        other.__dict__.update(self.__dict__)
        other.dtype = check_dtype(dtype)
        other.__dict__.pop("_work", None)  # scratch buffers are never shared
        other._theta = self._theta.astype(other.dtype)  # always a copy
        other.weights, other.biases = other.unflatten(other._theta)
        return other

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["weights"], state["biases"]  # views: rebuilt from θ on unpickling
        state.pop("_work", None)               # scratch buffers
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._theta = np.array(self._theta, dtype=self.dtype, order="C")  # own, writable
        self.weights, self.biases = self.unflatten(self._theta)

    def copy(self):
        """An independent network with the same architecture and parameters."""
        return self.astype(self.dtype)

    def __repr__(self):
        acts = self.activations
        act = acts[0] if len(set(acts)) == 1 else list(acts)
        return (f"Network({list(self.layer_sizes)}, activations={act!r}, "
                f"loss={self.loss!r}, dtype=np.{self.dtype.name})")

    # ------------------------------------------------------------ kernels
    def _evaluate(self, theta, X, Y, weight_decay, sparsity_target, sparsity_weight, grad,
                  comm=None, m_total=None):
        """J and (if ``grad`` is given) ∇J at θ; inputs already validated.

        With an MPI communicator ``comm``, X and Y are this rank's shard of
        ``m_total`` examples: every rank adds its ΔW, Δb scaled by 1/m_total
        (rank 0 alone adds λW), one in-place Allreduce sums the flat gradient,
        another the cost; ρ̂ is reduced the same way before the backward pass.
        """
        dt = self.dtype.type
        m_total = X.shape[0] if m_total is None else m_total
        if comm is not None and comm.Get_rank() != 0:
            weight_decay = 0.0  # λW and (λ/2)ΣW² enter the sum once
        sparsity_delta, sparsity_cost = self._sparsity(theta, X, sparsity_target,
                                                       sparsity_weight, comm, m_total)
        want_gradient = grad is not None
        if grad is None:
            grad = np.empty(0, self.dtype)
        # Up to one chunk of examples: the serial driver, which never wakes the
        # thread pool (measured: the parallel one cost 40 µs more on 2-8-1, m = 256).
        args = (theta, self._sizes, self._activation_codes, self._use_blas, LOSSES[self.loss],
                X, Y, dt(weight_decay), sparsity_delta, want_gradient, m_total, CHUNK)
        workspace = self._workspace(X.shape[0])
        with blas_single_threaded(self._any_blas):
            if X.shape[0] <= CHUNK:
                J = K.cost_and_gradient_one_slot(*args, workspace, grad)
            else:
                J = K.cost_and_gradient_kernel(*args, MAX_SLOTS, workspace, grad)
        if comm is not None:
            J = _allreduce_sum(comm, np.array([J], np.float64))[0]
            if want_gradient:
                _allreduce_sum(comm, grad)
        return float(J) + sparsity_cost

    def _finite_theta(self):
        """θ itself, after checking it is still finite (its views are writable)."""
        if not all_finite(self._theta):
            raise ValueError("theta contains NaN or Inf; every parameter must be finite")
        return self._theta

    def _workspace(self, m):
        """Per-slot buffers for the gradient kernel, kept between calls (the
        slots a batch of m examples uses: at most MAX_SLOTS)."""
        slots = min(MAX_SLOTS, -(-m // CHUNK))
        ws = self.__dict__.get("_work")
        if ws is None or ws.shape[0] < slots or ws.dtype != self.dtype:
            width = 2 * CHUNK * sum(self.layer_sizes[1:]) + self.n_params
            ws = self._work = np.empty((slots, width), self.dtype)
        return ws

    def _sparsity(self, theta, X, rho, beta, comm=None, m_total=None):
        """The sparse autoencoder's δ term and cost β Σ_j KL(ρ ‖ ρ̂_j) for layer 2."""
        if beta == 0.0:
            return np.empty(0, self.dtype), 0.0
        r = self._mean_hidden_activation(theta, X).astype(np.float64)
        if comm is not None:
            r = _allreduce_sum(comm, r * (X.shape[0] / m_total))
        if np.any(r <= 0) or np.any(r >= 1):
            raise ValueError(
                "sparsity needs mean hidden activations strictly inside (0, 1); "
                "use a sigmoid first hidden layer")
        kl = rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r))
        delta = beta * (-rho / r + (1 - rho) / (1 - r))
        return delta.astype(self.dtype), float(beta * kl.sum())

    def _check_sparsity(self, sparsity_target, sparsity_weight):
        beta = check_scalar(sparsity_weight, "sparsity_weight", low=0)
        if beta == 0.0:
            return 0.0, 0.0
        if len(self.layer_sizes) < 3:
            raise ValueError("sparsity_weight > 0 needs a hidden layer (at least 3 layer sizes)")
        if sparsity_target is None:
            raise ValueError("sparsity_weight > 0 needs sparsity_target, the target activation ρ in (0, 1)")
        rho = check_scalar(sparsity_target, "sparsity_target", low=0, low_inclusive=False)
        if rho >= 1:
            raise ValueError(f"sparsity_target must be in (0, 1), got {rho!r}")
        return rho, beta

    def _prepare(self, X, Y, weight_decay, sparsity_target, sparsity_weight):
        weight_decay = check_scalar(weight_decay, "weight_decay", low=0)
        rho, beta = self._check_sparsity(sparsity_target, sparsity_weight)
        X, Y = check_data(X, Y, self.layer_sizes, self.dtype)
        return X, Y, weight_decay, rho, beta

    # --------------------------------------------------------------- API
    def cost(self, X, Y, weight_decay=0.0, *, sparsity_target=None, sparsity_weight=0.0):
        """J(W,b) = (1/m) Σ_k ½‖h(x^(k)) − y^(k)‖² + (λ/2) Σ_l ‖W^(l)‖².

        Parameters
        ----------
        X : array-like of shape (m, s_1)
            Inputs, one example per row.
        Y : array-like of shape (m, s_{n_l})
            Targets, one example per row.
        weight_decay : float, default 0
            λ ≥ 0; biases are never decayed.
        sparsity_target, sparsity_weight : float, optional
            ρ and β of the sparse autoencoder: adds β Σ_j KL(ρ ‖ ρ̂_j).

        Returns
        -------
        float
        """
        X, Y, lam, rho, beta = self._prepare(X, Y, weight_decay, sparsity_target, sparsity_weight)
        theta = self._finite_theta()
        return self._evaluate(theta, X, Y, lam, rho, beta, None)

    def cost_and_gradient(self, X, Y, weight_decay=0.0, *, sparsity_target=None,
                          sparsity_weight=0.0):
        """J and its gradient at the current parameters.

        Returns
        -------
        J : float
        grad_W : tuple of ndarray of shape (s_{l+1}, s_l)
            ∂J/∂W^(l) = (1/m) ΔW^(l) + λ W^(l).
        grad_b : tuple of ndarray of shape (s_{l+1},)
            ∂J/∂b^(l) = (1/m) Δb^(l).
        """
        X, Y, lam, rho, beta = self._prepare(X, Y, weight_decay, sparsity_target, sparsity_weight)
        theta = self._finite_theta()
        grad = np.empty(self.n_params, self.dtype)
        J = self._evaluate(theta, X, Y, lam, rho, beta, grad)
        grad_W, grad_b = self.unflatten(grad)
        return J, grad_W, grad_b

    def cost_and_gradient_flat(self, theta, X, Y, weight_decay=0.0, *, sparsity_target=None,
                               sparsity_weight=0.0):
        """J and the flat gradient at an arbitrary θ (the network is not changed).

        The signature ``f(theta, *args) -> (J, grad)`` is what
        ``scipy.optimize.minimize(..., jac=True)`` expects.

        Returns
        -------
        J : float
        grad : ndarray of shape (n_params,)
            Laid out like θ, in float64 (what scipy's optimisers work in).
        """
        X, Y, lam, rho, beta = self._prepare(X, Y, weight_decay, sparsity_target, sparsity_weight)
        theta = check_theta(theta, self.n_params, self.dtype)
        grad = np.empty(self.n_params, self.dtype)
        J = self._evaluate(theta, X, Y, lam, rho, beta, grad)
        return J, grad.astype(np.float64, copy=False)

    def mean_hidden_activation(self, X):
        """ρ̂_j = (1/m) Σ_k a_j^(2)(x^(k)): the mean activation of each unit of
        the first hidden layer over the rows of X, shape (s_2,)."""
        if len(self.layer_sizes) < 3:
            raise ValueError("the network has no hidden layer (it needs at least 3 layer sizes)")
        X, _ = check_data(X, None, self.layer_sizes, self.dtype)
        theta = self._finite_theta()
        return self._mean_hidden_activation(theta, X)

    def _mean_hidden_activation(self, theta, X):
        rho_hat = np.empty(self.layer_sizes[1], self.dtype)
        with blas_single_threaded(self._use_blas[0]):
            K.mean_activation_kernel(theta, self._sizes, self._activation_codes,
                                     self._use_blas, X, CHUNK, MAX_SLOTS, rho_hat)
        return rho_hat

    def predict(self, X):
        """h_{W,b}(x) for every row of X: ndarray of shape (m, s_{n_l})."""
        X, _ = check_data(X, None, self.layer_sizes, self.dtype)
        theta = self._finite_theta()
        out = np.empty((X.shape[0], self.layer_sizes[-1]), self.dtype)
        with blas_single_threaded(self._any_blas):
            K.predict_kernel(theta, self._sizes, self._activation_codes, self._use_blas,
                             X, CHUNK, MAX_SLOTS, out)
        return out


def _allreduce_sum(comm, buf):
    """Sum ``buf`` over the ranks of ``comm``, in place; returns it."""
    from mpi4py import MPI
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf


def _check_layer_sizes(layer_sizes):
    try:
        sizes = list(layer_sizes)
    except TypeError:
        raise TypeError(f"layer_sizes must be a sequence of integers, got {layer_sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least 2 entries (input and output widths), got {sizes}")
    for k, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"layer_sizes[{k}] must be an integer, got {s!r}")
        if s <= 0:
            raise ValueError(f"layer_sizes[{k}] must be a positive integer, got {s}")
    return tuple(int(s) for s in sizes)


def _check_activations(activations, n_transitions, loss):
    names = [activations] * n_transitions if isinstance(activations, str) else activations
    try:
        names = list(names)
    except TypeError:
        raise TypeError(f"activations must be a name or a sequence of names, got {activations!r}") from None
    if len(names) != n_transitions:
        raise ValueError(
            f"activations has {len(names)} entries; expected one name or {n_transitions} "
            f"(one per layer transition)")
    for k, name in enumerate(names):
        if k == n_transitions - 1 and name == OUTPUT_ACTIVATIONS.get(loss):
            continue
        if name not in ACTIVATIONS:
            raise ValueError(f"activations[{k}] must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    if loss in OUTPUT_ACTIVATIONS:
        names[-1] = OUTPUT_ACTIVATIONS[loss]
    return tuple(names)
