"""The network: its parameters θ and the thin wrappers around the kernels.

:class:`Network` owns one flat parameter vector ``theta``; ``weights[l]`` and
``biases[l]`` are views into it (W^(l+1), b^(l+1) of the seed, counting layers
from 1 there and from 0 here). Each public method validates its input once,
converts it at most once, and calls one kernel from :mod:`fastbp._kernels`.
"""

import math
import threading

import numpy as np

from . import _kernels as K
from ._compiler import (BLAS, BLAS_MIN_WEIGHTS, CHUNK, LOOPS, MAX_SLOTS, SIMD, SIMD_MAX_WEIGHTS,
                        SIMD_MAX_WEIGHTS_WIDE)
from . import _threads
from ._threads import blas_single_threaded
from ._validation import (NOT_FINITE, all_finite, check_data, check_dtype, check_finite,
                          check_scalar, check_seed, check_theta)

ACTIVATIONS = {"sigmoid": K.SIGMOID, "tanh": K.TANH, "relu": K.RELU, "identity": K.IDENTITY}
LOSSES = {"squared": K.SQUARED, "cross_entropy": K.CROSS_ENTROPY,
          "binary_cross_entropy": K.BINARY_CROSS_ENTROPY, "poisson": K.POISSON}
#: The output activation each of these losses puts on the output layer.
OUTPUT_ACTIVATIONS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                      "poisson": "exp"}
_OUTPUT_ONLY = {"softmax": K.SOFTMAX, "exp": K.EXP}
INITS = ("normal", "uniform")
#: The error of a sparsity term whose mean hidden activations ρ̂ leave (0, 1).
SPARSITY_OUTSIDE = ("sparsity needs mean hidden activations strictly inside (0, 1); "
                    "use a sigmoid first hidden layer")


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
        self._setup(layer_sizes, activations, dtype, loss)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        epsilon = check_scalar(epsilon, "epsilon", low=0, low_inclusive=False)
        seed = check_seed(seed)
        self._theta = np.empty(self.n_params, dtype=self.dtype)
        self.weights, self.biases = self.unflatten(self._theta)
        self.initialize(init, epsilon, seed)

    @classmethod
    def _from_theta(cls, theta, layer_sizes, activations="sigmoid", dtype=np.float64,
                    loss="squared"):
        """A network whose θ *is* ``theta`` (a 1-D float array of the right
        length, finite, owned by the caller who hands it over): nothing is
        drawn or copied, so loading a model needs θ's memory once
        (:func:`fastbp.io.load`). A byte-swapped array is swapped in place."""
        net = cls.__new__(cls)
        net._setup(layer_sizes, activations, dtype, loss)
        if theta.ndim != 1 or theta.shape[0] != net.n_params or theta.dtype.kind != "f" \
                or theta.dtype.itemsize != net.dtype.itemsize:
            raise ValueError(f"theta must be a flat {net.dtype.name} array of {net.n_params} "
                             f"entries, got {theta.dtype} of shape {theta.shape}")
        if not theta.dtype.isnative:
            theta = theta.byteswap(inplace=True).view(theta.dtype.newbyteorder("="))
        if not (theta.flags.c_contiguous and theta.flags.writeable):
            theta = np.array(theta, dtype=net.dtype, order="C")
        net._theta = theta
        net.weights, net.biases = net.unflatten(theta)
        return net

    def _setup(self, layer_sizes, activations, dtype, loss):
        """Architecture, codes and kernel choices (everything but θ)."""
        self.layer_sizes = _check_layer_sizes(layer_sizes)
        self.dtype = check_dtype(dtype)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.loss = loss
        self._loss_code = LOSSES[loss]
        self.activations = _check_activations(activations, len(self.layer_sizes) - 1, loss)
        self._sizes = np.array(self.layer_sizes, dtype=np.int64)
        self._activation_codes = np.array(
            [_OUTPUT_ONLY[a] if a in _OUTPUT_ONLY else ACTIVATIONS[a] for a in self.activations],
            np.int64)
        # How each layer makes its products (fastbp._compiler: LOOPS, SIMD, BLAS).
        weights = [s_in * s_out for s_in, s_out in zip(self.layer_sizes[:-1],
                                                         self.layer_sizes[1:])]
        self._products = np.array([LOOPS if w < BLAS_MIN_WEIGHTS else
                                   SIMD if w <= SIMD_MAX_WEIGHTS else BLAS for w in weights],
                                  np.int64)
        # Layers that may call BLAS (SIMD layers above SIMD_MAX_WEIGHTS_WIDE
        # do on full chunks), and the weights of the widest: a chunk of r rows
        # makes BLAS products of at most r times this many multiply-adds.
        self._layer_blas = [code == BLAS or (code == SIMD and w > SIMD_MAX_WEIGHTS_WIDE)
                            for w, code in zip(weights, self._products)]
        self._any_blas = any(self._layer_blas)
        self._blas_weights = max((w for w, blas in zip(weights, self._layer_blas) if blas),
                                 default=0)
        self._n_params = sum(s_out * (s_in + 1) for s_in, s_out in zip(
            self.layer_sizes[:-1], self.layer_sizes[1:]))
        # Floating-point operations of one example's forward pass, 2 Σ_l s_l s_{l+1}:
        # what the thread policy weighs to decide whether a call is worth threads.
        self._forward_flops = 2 * sum(
            s_in * s_out for s_in, s_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]))

    # ------------------------------------------------------------------ θ
    @property
    def n_params(self):
        """Number of parameters Σ_l s_{l+1}(s_l + 1)."""
        return self._n_params

    @property
    def theta(self):
        return self._theta

    @theta.setter
    def theta(self, value):
        self._theta[...] = check_theta(value, self.n_params, self.dtype)

    def unflatten(self, flat):
        """Views (W^(l)…), (b^(l)…) into a flat vector laid out like θ."""
        layout = self.__dict__.get("_layout")
        if layout is None:
            weights, biases, off = [], [], 0
            for s_in, s_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
                weights.append((slice(off, off + s_out * s_in), (s_out, s_in)))
                off += s_out * s_in
                biases.append(slice(off, off + s_out))
                off += s_out
            self._layout = layout = (tuple(weights), tuple(biases))
        weights, biases = layout
        views = []
        for w, shape in weights:
            view = flat[w]
            view.shape = shape  # a view's own shape: cheaper than reshape()
            views.append(view)
        return tuple(views), tuple([flat[b] for b in biases])

    def initialize(self, init="normal", epsilon=0.01, seed=0):
        """Draw fresh parameters (see the class docstring for the rules)."""
        seed = check_seed(seed)
        if init == "normal":
            epsilon = check_scalar(epsilon, "epsilon", low=0, low_inclusive=False)
        rng = np.random.default_rng(seed)
        if init == "normal":
            # Every W_ij and b_i ~ N(0, ε²): small, near zero, never all equal.
            with np.errstate(over="ignore", invalid="ignore"):
                draw = rng.normal(0.0, epsilon, size=self.n_params).astype(self.dtype,
                                                                           copy=False)
            if not all_finite(draw):  # θ is left as it was
                raise ValueError(
                    f"epsilon={epsilon!r} is too large: N(0, epsilon²) draws overflow "
                    f"{self.dtype.name} to ±inf; use a small standard deviation such as 0.01")
            self._theta[...] = draw
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
        other.__dict__.pop("_work_lock", None)
        other._theta = self._theta.astype(other.dtype)  # always a copy
        other.weights, other.biases = other.unflatten(other._theta)
        return other

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["weights"], state["biases"]  # views: rebuilt from θ on unpickling
        state.pop("_work", None)               # scratch buffers
        state.pop("_work_lock", None)
        state.pop("_layout", None)             # derived: rebuilt on first use
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "_n_params" not in state:  # pickled by an older fastbp
            self.__dict__.pop("_layout", None)  # its layout format differs
        if "_n_params" not in state or "_products" not in state:
            # Kernel choices as this release makes them (the release before
            # the SIMD tiles pickled a per-layer use_blas flag instead).
            self.__dict__.pop("_use_blas", None)
            self._setup(self.layer_sizes, self.activations, self.dtype, self.loss)
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
    def _one_chunk(self, theta, X, Y, weight_decay, sparsity_weight, grad):
        """The common small call in one step: J (and ∇J into ``grad``, if
        given) when X, Y are C-contiguous 2-D arrays of the network's dtype
        with 1 … CHUNK rows and the network's widths, λ is a Python float and
        there is no sparsity term; else None, and the caller takes the
        general path, whose checks also say what is wrong. X, Y and θ are
        checked finite inside the compiled call."""
        dtype = self.dtype
        if not (type(X) is np.ndarray and type(Y) is np.ndarray and X.dtype == dtype
                and Y.dtype == dtype and X.ndim == 2 and Y.ndim == 2
                and X.flags.c_contiguous and Y.flags.c_contiguous
                and type(weight_decay) is float and 0.0 <= weight_decay < math.inf
                and type(sparsity_weight) in (float, int) and sparsity_weight == 0):
            return None
        m, n_in = X.shape
        m_y, n_out = Y.shape
        sizes = self.layer_sizes
        if not (0 < m <= CHUNK and m_y == m and n_in == sizes[0] and n_out == sizes[-1]):
            return None
        return self._small_batch(theta, X, Y, weight_decay, grad, True)

    def _small_batch(self, theta, X, Y, weight_decay, grad, check):
        """J (and ∇J into ``grad``, if given) of m ≤ CHUNK examples in one
        compiled call, which with ``check`` also checks X, Y and θ finite.
        BLAS is pinned only for a network with a BLAS layer (entering even
        an empty context costs ~0.3 µs of a 6 µs one-example call)."""
        dt = self.dtype.type
        args = (theta, self._sizes, self._activation_codes, self._products, self._loss_code,
                X, Y, dt(weight_decay), _NO_SPARSITY[dt], grad is not None, check,
                _NO_GRADIENT[dt] if grad is None else grad)
        if self._any_blas:
            with self._pin_blas(X.shape[0]):
                code, J = K.small_batch_kernel(*args)
        else:
            code, J = K.small_batch_kernel(*args)
        if code:
            raise ValueError(NOT_FINITE[code])
        return float(J)

    def _evaluate(self, theta, X, Y, weight_decay, sparsity_target, sparsity_weight, grad,
                  comm=None, m_total=None, check=False):
        """J and (if ``grad`` is given) ∇J at θ; inputs already validated,
        except that with ``check`` X, Y and θ are still to be checked finite
        (a ValueError names the first that is not).

        With an MPI communicator ``comm``, X and Y are this rank's shard of
        ``m_total`` examples: every rank adds its ΔW, Δb scaled by 1/m_total
        (rank 0 alone adds λW), one in-place Allreduce sums the flat gradient,
        another the cost; ρ̂ is reduced the same way before the backward pass.
        """
        m = X.shape[0]
        if m <= CHUNK and comm is None and not sparsity_weight:
            return self._small_batch(theta, X, Y, weight_decay, grad, check)
        want_gradient = grad is not None
        if grad is None:
            grad = _NO_GRADIENT[self.dtype.type]
        # X and Y are checked chunk by chunk inside the kernel, in the pass that
        # uses them (a separate scan of a 10,000 × 64 X and Y takes 0.2–0.4 ms,
        # 5–10 % of the UFLDL gradient: kernel_choices.py --scaling), except where something reads X before the
        # kernel (ρ̂) or every MPI rank must raise together; θ is checked here.
        in_kernel = check and comm is None and not sparsity_weight
        if check and not (in_kernel and all_finite(theta)):
            check_finite(X, Y, theta)
        dt = self.dtype.type
        m_total = m if m_total is None else m_total
        if comm is not None and comm.Get_rank() != 0:
            weight_decay = 0.0  # λW and (λ/2)ΣW² enter the sum once
        sparsity_delta, sparsity_cost = self._sparsity(theta, X, sparsity_target,
                                                       sparsity_weight, comm, m_total)
        args = (theta, self._sizes, self._activation_codes, self._products, self._loss_code,
                X, Y, dt(weight_decay), sparsity_delta, want_gradient, in_kernel, m_total, CHUNK,
                MAX_SLOTS)
        threads = self._threads_for(m)
        lock = self._workspace_lock()
        mine = lock.acquire(blocking=False)  # taken: another thread computes with it
        try:
            workspace = self._workspace(m) if mine else self._new_workspace(
                min(MAX_SLOTS, -(-m // CHUNK)))
            with self._pin_blas(m):
                if threads:
                    with _threads.parallel_region(threads):
                        J = K.cost_and_gradient_kernel(*args, threads, workspace, grad)
                else:
                    J = K.cost_and_gradient_kernel(*args, 0, workspace, grad)
        finally:
            if mine:
                lock.release()
        if in_kernel and not math.isfinite(J):
            check_finite(X, Y, theta)  # a NaN or ±Inf in X or Y raises; else J stands
        if comm is not None:
            J = _allreduce_sum(comm, np.array([J], np.float64))[0]
            if want_gradient:
                _allreduce_sum(comm, grad)
        return float(J) + sparsity_cost

    def _step_flops(self, m):
        """A gradient's work on m examples: forward, residuals and ΔW, about
        three forward passes."""
        return 3 * self._forward_flops * m

    def _threads_for(self, m):
        """Threads for a gradient on m examples (0: the serial kernel); one
        chunk is always serial."""
        return _threads.plan(self._step_flops(m)) if m > CHUNK else 0

    def _batch_parts(self, batch_size):
        """Parts a mini-batch's gradient is cut into: BATCH_PARTS when the
        batch's work is worth threads (forward, residuals and ΔW: about three
        forward passes), else 1. Depends on the architecture and batch size
        only, so the result is bit-identical for any thread count."""
        return K.BATCH_PARTS if _threads.worth_sharing(self._step_flops(batch_size)) else 1

    def _pin_blas(self, m, uses_blas=None):
        """The context a kernel call on m examples runs in: BLAS held to one
        thread, unless the call makes no BLAS product (``uses_blas``, by
        default whether any layer is on BLAS) or none big enough for BLAS to
        thread anyway (chunks of at most CHUNK rows)."""
        if uses_blas is None:
            uses_blas = self._any_blas
        return blas_single_threaded(uses_blas and _threads.blas_may_thread(
            min(m, CHUNK) * self._blas_weights))

    def _workspace(self, m):
        """Per-slot buffers for the gradient kernel, kept between calls (the
        slots a batch of m examples uses: at most MAX_SLOTS). Only for the
        holder of the workspace lock (:meth:`_workspace_lock`)."""
        slots = min(MAX_SLOTS, -(-m // CHUNK))
        ws = self.__dict__.get("_work")
        if ws is None or ws.shape[0] < slots or ws.dtype != self.dtype:
            ws = self._work = self._new_workspace(slots)
        return ws

    def _new_workspace(self, slots):
        width = 2 * CHUNK * sum(self.layer_sizes[1:]) + self.n_params
        return np.empty((slots, width), self.dtype)

    def _rows_workspace_width(self):
        """Entries of one slot row for a kernel that may read X, Y through an
        index array: the slot's activations, residuals and ΔW/Δb plus one
        gathered chunk of X and Y."""
        return (2 * CHUNK * sum(self.layer_sizes[1:]) + self.n_params
                + CHUNK * (self.layer_sizes[0] + self.layer_sizes[-1]))

    def _workspace_lock(self):
        """The lock over the network's kept workspace.

        The kernels run without the GIL, so two Python threads using one
        network at once must not share the workspace. The first caller takes
        it under this lock; a call that finds the lock taken does not wait for
        it but works in a private workspace of its own, so concurrent calls
        are correct and still run in parallel.
        """
        lock = self.__dict__.get("_work_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.setdefault("_work_lock", threading.Lock())
        return lock

    def _sparsity(self, theta, X, rho, beta, comm=None, m_total=None):
        """The sparse autoencoder's δ term and cost β Σ_j KL(ρ ‖ ρ̂_j) for layer 2."""
        if beta == 0.0:
            return _NO_SPARSITY[self.dtype.type], 0.0
        r = self._mean_hidden_activation(theta, X).astype(np.float64)
        if comm is not None:
            r = _allreduce_sum(comm, r * (X.shape[0] / m_total))
        delta = np.empty(r.shape[0], self.dtype)
        ok, cost = K.sparsity_terms(r, float(rho), float(beta), delta)  # shared with train_many
        if not ok:
            raise ValueError(SPARSITY_OUTSIDE)
        return delta, float(cost)

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

    def _prepare(self, X, Y, weight_decay, sparsity_target, sparsity_weight, finite=True):
        """Checked (X, Y, λ, ρ, β) (``finite=False``: X and Y are not checked
        finite here, but by :meth:`_evaluate` with ``check=True``)."""
        weight_decay = check_scalar(weight_decay, "weight_decay", low=0)
        if sparsity_target is None and sparsity_weight == 0.0 and type(sparsity_weight) in (
                float, int):
            rho, beta = 0.0, 0.0
        else:
            rho, beta = self._check_sparsity(sparsity_target, sparsity_weight)
        X, Y = check_data(X, Y, self.layer_sizes, self.dtype, finite=finite)
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
        theta = self._theta
        if sparsity_target is None:
            J = self._one_chunk(theta, X, Y, weight_decay, sparsity_weight, None)
            if J is not None:
                return J
        X, Y, lam, rho, beta = self._prepare(X, Y, weight_decay, sparsity_target, sparsity_weight,
                                             finite=False)
        return self._evaluate(theta, X, Y, lam, rho, beta, None, check=True)

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
        theta = self._theta
        grad = np.empty(self._n_params, self.dtype)
        J = None if sparsity_target is not None else self._one_chunk(
            theta, X, Y, weight_decay, sparsity_weight, grad)
        if J is None:
            X, Y, lam, rho, beta = self._prepare(X, Y, weight_decay, sparsity_target,
                                                 sparsity_weight, finite=False)
            J = self._evaluate(theta, X, Y, lam, rho, beta, grad, check=True)
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
        grad = np.empty(self._n_params, self.dtype)
        J = None
        if sparsity_target is None and type(theta) is np.ndarray and theta.dtype == self.dtype \
                and theta.shape == (self._n_params,) and theta.flags.c_contiguous:
            J = self._one_chunk(theta, X, Y, weight_decay, sparsity_weight, grad)
        if J is None:
            X, Y, lam, rho, beta = self._prepare(X, Y, weight_decay, sparsity_target,
                                                 sparsity_weight, finite=False)
            theta = check_theta(theta, self._n_params, self.dtype, finite=False)
            J = self._evaluate(theta, X, Y, lam, rho, beta, grad, check=True)
        return J, grad.astype(np.float64, copy=False)

    def mean_hidden_activation(self, X):
        """ρ̂_j = (1/m) Σ_k a_j^(2)(x^(k)): the mean activation of each unit of
        the first hidden layer over the rows of X, shape (s_2,)."""
        if len(self.layer_sizes) < 3:
            raise ValueError("the network has no hidden layer (it needs at least 3 layer sizes)")
        theta = self._theta
        X, _ = check_data(X, None, self.layer_sizes, self.dtype, theta)
        return self._mean_hidden_activation(theta, X)

    def _mean_hidden_activation(self, theta, X):
        rho_hat = np.empty(self.layer_sizes[1], self.dtype)
        args = (theta, self._sizes, self._activation_codes, self._products, X, CHUNK, MAX_SLOTS,
                rho_hat)
        threads = _threads.plan(2 * self.layer_sizes[0] * self.layer_sizes[1] * X.shape[0])
        with self._pin_blas(X.shape[0], self._layer_blas[0]):
            if threads:
                with _threads.parallel_region(threads):
                    K.mean_activation_kernel(*args[:-1], True, rho_hat)
            else:
                K.mean_activation_kernel(*args[:-1], False, rho_hat)
        return rho_hat

    def predict(self, X):
        """h_{W,b}(x) for every row of X: ndarray of shape (m, s_{n_l})."""
        theta = self._theta
        X, _ = check_data(X, None, self.layer_sizes, self.dtype, finite=False)
        m = X.shape[0]
        out = np.empty((m, self.layer_sizes[-1]), self.dtype)
        if m <= CHUNK:  # one chunk: one compiled call, the finiteness check inside
            with self._pin_blas(m):
                code = K.small_predict_kernel(theta, self._sizes, self._activation_codes,
                                              self._products, X, out)
            if code:
                raise ValueError(NOT_FINITE[code])
            return out
        check_finite(X, None, theta)
        args = (theta, self._sizes, self._activation_codes, self._products, X, CHUNK, MAX_SLOTS,
                out)
        threads = _threads.plan(self._forward_flops * m)
        with self._pin_blas(m):
            if threads:
                with _threads.parallel_region(threads):
                    K.predict_kernel(*args[:-1], True, out)
            else:
                K.predict_kernel(*args[:-1], False, out)
        return out


#: Guards the lazy creation of each network's workspace lock (networks made
#: by ``__new__``, unpickling or :meth:`Network.astype` get theirs on first use).
_LOCK_CREATION = threading.Lock()


#: The kernels' "no sparsity term" and "no gradient" arguments, one per dtype
#: (empty: never written).
_NO_SPARSITY = {np.float32: np.empty(0, np.float32), np.float64: np.empty(0, np.float64)}
_NO_GRADIENT = {np.float32: np.empty(0, np.float32), np.float64: np.empty(0, np.float64)}


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
