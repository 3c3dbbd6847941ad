"""The trainer: iteration, bookkeeping and stopping. It holds no math — every
cost, gradient and parameter update is computed by a kernel."""

import functools
import os
import signal
import threading

import numpy as np

from . import _kernels as K
from ._compiler import CHUNK, MAX_SLOTS
from . import _threads
from ._threads import blas_single_threaded
from ._validation import all_finite, check_finite, check_scalar, check_seed
from .checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from .network import LOSSES as K_LOSSES
from .network import SPARSITY_OUTSIDE, Network

OPTIMIZERS = ("gd", "sgd", "adam", "lbfgs")
SCHEDULES = ("constant", "invscaling", "step")


class DivergenceError(FloatingPointError):
    """Training produced a non-finite cost, gradient or parameter. The network
    keeps the last finite parameters."""


def _diverged_gradient(t, J):
    return DivergenceError(f"iteration {t}: the cost or gradient is not finite (J = {J}); "
                           f"the network keeps the last finite parameters")


def _diverged_update(what, t, J, learning_rate):
    return DivergenceError(
        f"{what} {t}: the cost or the updated parameters are not finite (J = {J}); the "
        f"network keeps the parameters from before it — lower learning_rate "
        f"(α = {learning_rate})")


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during training with a checkpoint path: the
    checkpoint was written and training stopped cleanly."""


class TrainingHistory(np.ndarray):
    """The cost per iteration (an ndarray), with what else training saw.

    Attributes
    ----------
    validation : ndarray or None
        Validation cost (data term only) after each iteration, when
        ``validation_fraction > 0``.
    stopped_early : bool
        Training stopped because the validation cost stopped improving.
    best_iteration : int or None
        The iteration whose parameters the network holds after early stopping.
    """

    validation = None
    stopped_early = False
    best_iteration = None

    @classmethod
    def build(cls, costs, validation=None, stopped_early=False, best_iteration=None):
        history = np.asarray(costs, dtype=np.float64).view(cls)
        history.validation = None if validation is None else np.asarray(validation)
        history.stopped_early = stopped_early
        history.best_iteration = best_iteration
        return history


def train(net, X, Y, learning_rate=0.1, weight_decay=0.0, iterations=100, callback=None, *,
          optimizer="gd", batch_size=32, shuffle=True, seed=0, momentum=0.0, nesterov=False,
          beta1=0.9, beta2=0.999, adam_epsilon=1e-8, schedule="constant", power_t=0.5,
          step_every=10, step_factor=0.5, validation_fraction=0.0, n_iter_no_change=10,
          tol=1e-4, state=None, checkpoint=None, checkpoint_every=0, resume=False,
          comm=None, sparsity_target=None, sparsity_weight=0.0):
    """Train ``net`` in place and return the cost history.

    Parameters
    ----------
    net : fastbp.Network
    X : array-like of shape (m, s_1)
    Y : array-like of shape (m, s_{n_l})
    learning_rate : float, default 0.1
        α > 0 (gd, sgd, adam).
    weight_decay : float, default 0
        λ ≥ 0.
    iterations : int, default 100
        gd: gradient steps over the full batch; sgd, adam: epochs (passes
        over the data); lbfgs: L-BFGS iterations.
    callback : callable, optional
        ``callback(iteration, J, net)`` after every iteration; returning True
        stops training.
    optimizer : {"gd", "sgd", "adam", "lbfgs"}, default "gd"
        "gd": the seed's batch gradient descent (with ``momentum`` > 0, heavy
        ball or Nesterov momentum on the full batch). "sgd": the same update on
        mini-batches of ``batch_size``, with optional momentum. "adam": Adam on
        mini-batches (``batch_size=None`` for the full batch). "lbfgs":
        ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on the flat θ
        (the UFLDL minFunc workflow).
    batch_size : int or None, default 32
        Examples per mini-batch (sgd, adam); None means all m.
    shuffle : bool, default True
        Visit the examples in a new random order each epoch (sgd, adam).
    seed : int or None, default 0
        Seed of the Generators that shuffle and split off validation data.
    momentum : float, default 0
        μ in [0, 1) (gd, sgd).
    nesterov : bool, default False
        Nesterov's momentum instead of heavy-ball (needs momentum > 0).
    beta1, beta2, adam_epsilon : float
        Adam's moment decay rates and ε.
    schedule : {"constant", "invscaling", "step"}, default "constant"
        Learning rate at iteration t: α; α / (t+1)^power_t; α · step_factor^⌊t / step_every⌋.
    validation_fraction : float, default 0
        Hold out this fraction of the examples (chosen with ``seed``) and stop
        when their cost has not improved by ``tol`` for ``n_iter_no_change``
        iterations; the network then gets the best parameters seen.
    state : dict, optional
        Optimizer state (velocity or Adam moments, step count, iteration,
        shuffling RNG). Pass the same dict to the next call to continue
        training exactly where this one stopped.
    checkpoint : str or path, optional
        Write a checkpoint here (atomically) every ``checkpoint_every``
        iterations and when SIGINT or SIGTERM arrives; on a signal training
        then stops by raising :class:`TrainingInterrupted`. gd, sgd and adam.
    checkpoint_every : int, default 0
        Iterations between checkpoints (0: only on a signal).
    resume : bool, default False
        Continue from ``checkpoint`` if it exists; ``iterations`` then counts
        from the start of the checkpointed run, and the result is
        bit-identical to a run that was never interrupted.
    comm : mpi4py communicator, optional
        Data-parallel training: X and Y are this rank's shard; every rank
        computes its part of ΔW, Δb with the same kernels, one Allreduce sums
        the flat gradient (and the cost, and ρ̂), 1/m uses the global m, and
        every rank applies the identical update. Full-batch optimizers only
        (gd, lbfgs, adam with batch_size=None). Rank 0 writes checkpoints.
    sparsity_target, sparsity_weight : float, optional
        ρ and β of the sparse autoencoder (full-batch optimizers: gd, lbfgs,
        adam with batch_size=None).

    Returns
    -------
    TrainingHistory of shape (n_iterations,)
        gd: J before each step; sgd, adam: each epoch's mean per-example
        cost, (1/m) Σ_B |B| J_B over its mini-batches B (each J_B at the
        parameters before B's update, decay term included), so a short last
        batch weighs only its share; lbfgs: J after each iteration.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastbp.Network, got {type(net).__name__} {net!r:.60}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    seed = check_seed(seed)
    iterations = check_scalar(iterations, "iterations", low=0, integer=True)
    if optimizer != "lbfgs":
        learning_rate = check_scalar(learning_rate, "learning_rate", low=0, low_inclusive=False)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    momentum = check_scalar(momentum, "momentum", low=0)
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0")
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if check_scalar(value, name, low=0) >= 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    adam_epsilon = check_scalar(adam_epsilon, "adam_epsilon", low=0, low_inclusive=False)
    power_t, step_every, step_factor, validation_fraction, n_iter_no_change, tol = \
        check_schedule_and_stopping(power_t, step_every, step_factor, validation_fraction,
                                    n_iter_no_change, tol)
    if state is not None and not isinstance(state, dict):
        raise TypeError(f"state must be a dict (or None), got {type(state).__name__}")
    checkpoint_every = check_scalar(checkpoint_every, "checkpoint_every", low=0, integer=True)
    if checkpoint is not None and optimizer == "lbfgs":
        raise ValueError("checkpoint works with optimizer 'gd', 'sgd' or 'adam' (scipy's "
                         "L-BFGS state cannot be saved)")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    if checkpoint is not None:
        _check_checkpoint_path(checkpoint)
    full_batch = optimizer in ("gd", "lbfgs") or batch_size is None
    # A mini-batch epoch checks X and Y batch by batch as it reads them, and the
    # first epoch reads every row; that replaces a scan of its own before
    # training (0.2–0.4 ms on 10,000 × 64, 3–5 % of an SGD epoch: kernel_choices.py
    # --scaling). The other paths, and a held-out split, scan first.
    scanned = full_batch or comm is not None or validation_fraction > 0
    X, Y, weight_decay, rho, beta = net._prepare(X, Y, weight_decay, sparsity_target,
                                                 sparsity_weight, finite=scanned)
    if not full_batch:
        batch_size = check_scalar(batch_size, "batch_size", low=1, integer=True)
        if beta:
            raise ValueError("sparsity needs the full batch for ρ̂: use optimizer 'gd' or "
                             "'lbfgs', or batch_size=None")

    m_total = None
    if comm is not None:
        if not full_batch:
            raise ValueError("comm (MPI) needs a full-batch optimizer: 'gd', 'lbfgs', or "
                             "'adam' with batch_size=None")
        if validation_fraction:
            raise ValueError("validation_fraction is not supported with comm (MPI)")
        m_total = comm.allreduce(X.shape[0])
    lead = comm is None or comm.Get_rank() == 0

    state = {} if state is None else state
    history = []
    run = None
    if checkpoint is not None:
        run = run_fingerprint(net, X, Y, _settings(
            optimizer, full_batch, learning_rate=learning_rate, weight_decay=weight_decay,
            batch_size=batch_size, shuffle=shuffle, seed=seed, momentum=momentum,
            nesterov=nesterov, beta1=beta1, beta2=beta2, adam_epsilon=adam_epsilon,
            schedule=schedule, power_t=power_t, step_every=step_every,
            step_factor=step_factor, validation_fraction=validation_fraction,
            sparsity_target=rho, sparsity_weight=beta), comm)
    if resume and os.path.exists(checkpoint):
        theta, saved, history = load_checkpoint(checkpoint, net, run)
        net.theta[...] = theta
        state.clear()
        state.update(saved)
    # Only shuffled mini-batch epochs draw; the others build no Generator.
    rng = _rng(state, seed) if shuffle and not full_batch else None
    # The split draws from its own Generator(seed), so a resumed run splits alike.
    X, Y, X_val, Y_val = _split_validation(X, Y, validation_fraction, seed, net)
    stopper = _EarlyStopping(net, X_val, Y_val, n_iter_no_change, tol)
    if optimizer == "lbfgs":
        history = _train_lbfgs(net, X, Y, weight_decay, iterations, callback, rho, beta,
                               stopper, comm, m_total)
        return stopper.finish(history)

    kind = {"adam": K.ADAM}.get(optimizer, K.NESTEROV if nesterov else
                                K.MOMENTUM if momentum else K.PLAIN)
    dt = net.dtype.type
    moments, step = _optimizer_arrays(state, net, kind)
    rule = (kind, dt(momentum), dt(beta1), dt(beta2), dt(adam_epsilon), moments, step)
    start = state.get("iteration", 0)
    stop = iterations if resume else start + iterations

    def rate(t):
        if schedule == "invscaling":
            return learning_rate / (t + 1) ** power_t
        if schedule == "step":
            return learning_rate * step_factor ** (t // step_every)
        return learning_rate

    if (full_batch and comm is None and callback is None and checkpoint is None
            and validation_fraction == 0 and net._threads_for(X.shape[0]) == 0):
        # Nothing to do between steps, and a step too small for threads: run
        # them in compiled blocks, without the Python below around each step.
        return stopper.finish(_full_batch_blocks(net, X, Y, weight_decay, rho, beta, rate,
                                                 rule, start, stop, state, learning_rate))
    previous = np.empty_like(net.theta)
    previous_moments = np.empty_like(moments)
    grad = np.empty_like(net.theta)
    signals = _SignalCatcher(checkpoint is not None)
    with signals:
        for t in range(start, stop):
            previous[...] = net.theta
            previous_moments[...] = moments
            if not scanned:
                previous_step, previous_rng = step.copy(), state.get("rng")
            with np.errstate(over="ignore", invalid="ignore"):
                if full_batch:
                    J = _full_batch_step(net, X, Y, weight_decay, rho, beta, grad,
                                         dt(rate(t)), rule, t, comm, m_total)
                else:
                    J = _epoch(net, X, Y, weight_decay, batch_size, shuffle, rng, dt(rate(t)),
                               rule, check=not scanned)
            if not (np.isfinite(J) and all_finite(net.theta)):
                net.theta[...] = previous
                moments[...] = previous_moments
                if not scanned:  # the epoch stopped at the first batch holding a NaN or ±Inf
                    step[...] = previous_step
                    if previous_rng is not None:
                        state["rng"] = previous_rng
                    check_finite(X, Y)  # names X or Y; if both are finite, J diverged
                what = "iteration" if full_batch else "epoch"
                raise _diverged_update(what, t, J, learning_rate)
            scanned = True  # the epoch read every row of X and Y
            history.append(J)
            state["iteration"] = t + 1
            if comm is not None and checkpoint is not None:
                # Stop together: a signal on any rank stops every rank.
                signals.caught = signals.caught or (["signal on another rank"] if comm.allreduce(
                    bool(signals.caught)) else [])
            if lead and checkpoint is not None and (
                    signals.caught or (checkpoint_every and (t + 1) % checkpoint_every == 0)):
                save_checkpoint(checkpoint, net, state, history, run)
            if signals.caught:
                raise TrainingInterrupted(
                    f"{signals.caught[0]} after iteration {t + 1}; checkpoint written to "
                    f"{os.fspath(checkpoint)} (resume with resume=True)")
            if stopper.update(t) or (callback is not None and callback(t, J, net)):
                break
    if not scanned:  # no epoch ran
        check_finite(X, Y)
    return stopper.finish(history)


def check_schedule_and_stopping(power_t, step_every, step_factor, validation_fraction,
                                n_iter_no_change, tol):
    """The schedule's and early stopping's settings, checked (train and train_many)."""
    power_t = check_scalar(power_t, "power_t", low=0)
    step_every = check_scalar(step_every, "step_every", low=1, integer=True)
    step_factor = check_scalar(step_factor, "step_factor", low=0, low_inclusive=False)
    validation_fraction = check_scalar(validation_fraction, "validation_fraction", low=0)
    if validation_fraction >= 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    n_iter_no_change = check_scalar(n_iter_no_change, "n_iter_no_change", low=1, integer=True)
    tol = check_scalar(tol, "tol", low=0)
    return power_t, step_every, step_factor, validation_fraction, n_iter_no_change, tol


def _check_checkpoint_path(checkpoint):
    """Before any training: the checkpoint can be written where it is asked
    for (a run must not lose its work to a typo at its first checkpoint)."""
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        raise ValueError(f"checkpoint {path!r}: its directory {directory!r} {what}")


def _settings(optimizer, full_batch, **given):
    """The settings that shape an optimizer's trajectory, for the checkpoint's
    run fingerprint: a resume must use the same. Settings the optimizer does
    not use are left out, so changing them never blocks a resume."""
    use = ["learning_rate", "weight_decay", "schedule", "validation_fraction"]
    if given["schedule"] == "invscaling":
        use.append("power_t")
    elif given["schedule"] == "step":
        use += ["step_every", "step_factor"]
    if given["validation_fraction"]:
        use.append("seed")  # the split
    use += ["beta1", "beta2", "adam_epsilon"] if optimizer == "adam" else ["momentum",
                                                                          "nesterov"]
    if not full_batch:
        use += ["batch_size", "shuffle"]
    if given["sparsity_weight"]:
        use += ["sparsity_target", "sparsity_weight"]
    settings = {"optimizer": optimizer}
    for name in use:
        value = given[name]
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (float, np.floating)):
            value = float(value)
        elif not isinstance(value, (bool, str, type(None))):
            value = repr(value)  # a Generator passed as seed
        settings[name] = value
    return settings


class _SignalCatcher:
    """Turns SIGINT/SIGTERM into a flag while active (main thread only), so
    the current iteration finishes and a checkpoint can be written."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, active):
        self.active = active and threading.current_thread() is threading.main_thread()
        self.caught = []
        self._previous = {}

    def _handler(self, signum, frame):
        self.caught.append(signal.Signals(signum).name)

    def __enter__(self):
        if self.active:
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


#: Floating-point operations per compiled block of full-batch steps
#: (:func:`_full_batch_blocks`): ~10–30 ms on one core, so Ctrl-C waits at most
#: about that long. At most BLOCK_STEPS steps a block.
BLOCK_FLOPS = 3.2e8
BLOCK_STEPS = 1024

_ALL_ROWS = np.empty(0, np.int64)  # an empty index array: every row of X, read in place


def _full_batch_blocks(net, X, Y, weight_decay, rho, beta, rate, rule, start, stop, state,
                       learning_rate):
    """Full-batch steps start … stop − 1 in blocks of one compiled call each
    (:func:`fastbp._kernels.full_batch_steps`) — the routines and the order of
    the step-by-step loop in :func:`train`, so the same bits — for a run with
    nothing to do between steps (no callback, checkpoint, early stopping or
    MPI) whose steps are too small for threads. Returns the history; raises
    as the step-by-step loop does, with ``state`` and θ left as it leaves them.
    """
    kind, momentum, beta1, beta2, epsilon, moments, step = rule
    m = X.shape[0]
    per_block = int(min(BLOCK_STEPS, max(1, BLOCK_FLOPS // net._step_flops(m))))
    args = (net._sizes, net._activation_codes, net._products, net._loss_code, X, Y, _ALL_ROWS,
            net.dtype.type(weight_decay), float(rho), float(beta))
    width = net._rows_workspace_width()
    costs = np.empty(min(per_block, stop - start), np.float64)
    history = []
    t = start
    while t < stop:
        n = min(per_block, stop - t)
        # rate(t) in float64, then rounded once to θ's dtype, as the loop's dt(rate(t)).
        rates = np.array([rate(s) for s in range(t, t + n)], np.float64).astype(net.dtype)
        updates_before, status = int(step[0]), K.STEPS_OK
        try:
            with net._pin_blas(m):
                status = K.full_batch_steps(
                    net.theta, *args, rates, kind, momentum, beta1, beta2, epsilon, moments,
                    step, True, CHUNK, MAX_SLOTS, width, costs[:n])[1]
        finally:
            # Steps done, counted by the updates made (each step makes one; a step
            # whose update was undone made one too), so that a KeyboardInterrupt
            # raised as the block returns still leaves state["iteration"] with θ.
            done = int(step[0]) - updates_before - (status == K.NONFINITE_UPDATE)
            history.extend(costs[:done].tolist())
            t += done
            state["iteration"] = t
        if status == K.BAD_SPARSITY:
            raise ValueError(SPARSITY_OUTSIDE)
        if status == K.NONFINITE_GRADIENT:
            raise _diverged_gradient(t, float(costs[done]))
        if status == K.NONFINITE_UPDATE:
            raise _diverged_update("iteration", t, float(costs[done]), learning_rate)
    return history


def _full_batch_step(net, X, Y, weight_decay, rho, beta, grad, rate, rule, t, comm, m_total):
    """J at θ, then one update with the full-batch gradient."""
    J = net._evaluate(net.theta, X, Y, weight_decay, rho, beta, grad, comm, m_total)
    if not (np.isfinite(J) and all_finite(grad)):
        raise _diverged_gradient(t, J)
    kind, momentum, beta1, beta2, eps, moments, step = rule
    K.optimizer_step(net.theta, grad, kind, rate, momentum, beta1, beta2, eps, moments, step)
    return J


def _epoch(net, X, Y, weight_decay, batch_size, shuffle, rng, rate, rule, check):
    """One pass of mini-batch updates; returns the epoch's mean per-example
    cost (1/m) Σ_B |B| J_B (NaN, with ``check``, at a NaN or ±Inf in X or Y)."""
    kind, momentum, beta1, beta2, eps, moments, step = rule
    m = X.shape[0]
    order = rng.permutation(m) if shuffle else np.arange(m)
    return minibatch_epoch(net, X, Y, order, shuffle, batch_size, weight_decay, kind, rate,
                           momentum, beta1, beta2, eps, moments, step, check)


def minibatch_epoch(net, X, Y, order, shuffled, batch_size, weight_decay, kind, rate, momentum,
                    beta1, beta2, eps, moments, step, check=False):
    """One mini-batch epoch of ``net`` over rows ``order`` of X, Y (in that
    order when ``shuffled``, else X's rows in turn; ``order`` then lists
    0 … m−1) with :func:`fastbp._kernels.minibatch_epoch_kernel`, under the
    thread policy; returns the epoch's mean per-example cost. With ``check``
    the batches are checked finite as they are read, and the epoch stops
    with NaN at the first that is not. Shared by :func:`train` and the
    scikit-learn estimators."""
    # A batch is split between threads only when its own work is worth it: the
    # batches follow one another, so every batch is a parallel region.
    parts = net._batch_parts(batch_size)
    threads = _threads.plan(3 * net._forward_flops * batch_size) if parts > 1 else 0
    args = (net.theta, net._sizes, net._activation_codes, net._products, K_LOSSES[net.loss],
            X, Y, order, shuffled, batch_size, parts, net.dtype.type(weight_decay), CHUNK,
            kind, rate, momentum, beta1, beta2, eps, moments, step, check)
    with blas_single_threaded(net._any_blas):
        if threads:
            with _threads.parallel_region(threads):
                return float(K.minibatch_epoch_kernel(*args, True))
        return float(K.minibatch_epoch_kernel(*args, False))


def _rng(state, seed):
    """The shuffling Generator, resumed from ``state`` when it holds one; every
    draw writes its state back to ``state``."""
    if isinstance(seed, int) or (seed is None and "rng" in state):
        # Seeding a Generator costs 12–24 µs (SeedSequence and PCG64's
        # set-up; kernel_choices.py --overhead), about what the kernel of a
        # one-batch epoch costs: an integer seed's first state is computed
        # once and cached, and every draw runs on this thread's PCG64 with
        # ``state["rng"]`` loaded into it.
        return _StateRNG(state, seed)
    rng = np.random.default_rng(seed)
    if "rng" in state:
        rng.bit_generator.state = state["rng"]
    state["rng"] = rng.bit_generator.state
    return _TrackedRNG(rng, state)


@functools.lru_cache(maxsize=64)
def _seeded_state(seed):
    """``np.random.default_rng(seed).bit_generator.state`` (not to be mutated)."""
    return np.random.default_rng(seed).bit_generator.state


class _TrackedRNG:
    """A Generator whose state is written back to ``state`` after each draw."""

    def __init__(self, rng, state):
        self._rng, self._state = rng, state

    def permutation(self, n):
        order = self._rng.permutation(n)
        self._state["rng"] = self._rng.bit_generator.state
        return order


_THREAD = threading.local()


class _StateRNG:
    """Draws as ``np.random.default_rng()`` with ``state["rng"]`` loaded would,
    on this thread's own PCG64, and writes the state back after each draw. The
    generator holds nothing between draws, so a nested ``train`` (from a
    callback) or another thread cannot disturb it."""

    def __init__(self, state, seed):
        self._state = state
        if "rng" not in state:
            state["rng"] = _seeded_state(seed)
        generator = getattr(_THREAD, "generator", None)
        if generator is None:
            generator = _THREAD.generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = state["rng"]  # a state it cannot take fails here
        state["rng"] = generator.bit_generator.state  # the caller's own copy
        self._generator = generator

    def permutation(self, n):
        bits = self._generator.bit_generator
        bits.state = self._state["rng"]
        order = self._generator.permutation(n)
        self._state["rng"] = bits.state
        return order


def _optimizer_arrays(state, net, kind):
    n = net.n_params
    moments = state.get("moments")
    if moments is None or moments.shape != (2, n) or moments.dtype != net.dtype:
        moments = state["moments"] = np.zeros((2, n), net.dtype)
        state["step"] = np.zeros(1, np.int64)
    return moments, state["step"]


def _split_validation(X, Y, fraction, seed, net):
    if fraction == 0:
        return X, Y, None, None
    rng = np.random.default_rng(seed)
    m = X.shape[0]
    n_val = int(round(fraction * m))
    if n_val < 1 or n_val >= m:
        raise ValueError(f"validation_fraction={fraction} of m={m} examples leaves no "
                         f"training or no validation examples")
    order = rng.permutation(m)
    val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[fit], Y[fit], X[val], Y[val]


class StoppingRule:
    """Early stopping's rule, shared by train and train_many: after each
    iteration's validation score, keep the best parameters seen and stop when
    the score has not improved by ``tol`` for ``patience`` iterations."""

    def __init__(self, patience, tol):
        self.patience, self.tol = patience, tol
        self.scores, self.best, self.best_theta, self.best_iteration = [], np.inf, None, None
        self.bad = 0
        self.stopped = False

    def update(self, iteration, score, theta):
        score = float(score)
        self.scores.append(score)
        if score < self.best - self.tol:
            self.best, self.best_theta, self.best_iteration = score, theta.copy(), iteration
            self.bad = 0
        else:
            self.bad += 1
        self.stopped = self.bad >= self.patience
        return self.stopped


class _EarlyStopping(StoppingRule):
    """:class:`StoppingRule` on the validation cost of ``net`` (a no-op
    without validation data)."""

    def __init__(self, net, X_val, Y_val, patience, tol):
        super().__init__(patience, tol)
        self.net, self.X_val, self.Y_val = net, X_val, Y_val

    def update(self, iteration):
        if self.X_val is None:
            return False
        theta = self.net.theta
        score = self.net._evaluate(theta, self.X_val, self.Y_val, 0.0, 0.0, 0.0, None)
        return super().update(iteration, score, theta)

    def finish(self, history):
        if self.best_theta is not None and self.stopped:
            self.net.theta[...] = self.best_theta
        return TrainingHistory.build(history, self.scores if self.X_val is not None else None,
                                     self.stopped, self.best_iteration)


def _train_lbfgs(net, X, Y, weight_decay, iterations, callback, rho, beta, stopper, comm,
                 m_total):
    from scipy.optimize import minimize

    history = []
    grad = np.empty_like(net.theta)

    def fun(theta):
        theta = theta.astype(net.dtype, copy=False)
        J = net._evaluate(theta, X, Y, weight_decay, rho, beta, grad, comm, m_total)
        if not (np.isfinite(J) and all_finite(grad)):
            raise _diverged_gradient(len(history), J)
        return J, grad.astype(np.float64)

    def on_iteration(intermediate_result):
        history.append(float(intermediate_result.fun))
        net.theta[...] = intermediate_result.x
        it = len(history) - 1
        if stopper.update(it) or (callback is not None and callback(it, history[-1], net)):
            raise StopIteration

    if iterations == 0:
        return history
    result = minimize(fun, net.theta.astype(np.float64), jac=True, method="L-BFGS-B",
                      callback=on_iteration, options={"maxiter": iterations})
    if not stopper.stopped and result.x is not None and np.all(np.isfinite(result.x)):
        net.theta[...] = result.x
    return history
