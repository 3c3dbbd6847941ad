"""train_many: many networks of one architecture trained in one parallel call.

The wrapper validates everything once, spreads the per-network options into
arrays, and calls one kernel (:mod:`fastbp._many_kernels`) that trains each
network on its own thread with exactly the routines :func:`fastbp.train` runs,
so each network ends bit-identical to a ``train`` call of its own.
"""

import numbers

import numpy as np

from . import _kernels as K
from . import _many_kernels as MK
from ._compiler import CHUNK, MAX_SLOTS
from ._threads import blas_single_threaded
from ._validation import check_data, check_scalar
from .network import LOSSES, Network
from .training import (OPTIMIZERS, SCHEDULES, DivergenceError, StoppingRule,
                       TrainingHistory, check_schedule_and_stopping, train)

#: Options that may be given one value per network (a sequence of n_nets).
PER_NETWORK = ("learning_rate", "weight_decay", "momentum", "beta1", "beta2", "adam_epsilon",
               "sparsity_target", "sparsity_weight", "seed")


def train_many(nets, X, Y, learning_rate=0.1, weight_decay=0.0, iterations=100, callback=None,
               *, rows=None, optimizer="gd", batch_size=32, shuffle=True, seed=0,
               momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999, adam_epsilon=1e-8,
               schedule="constant", power_t=0.5, step_every=10, step_factor=0.5,
               validation_fraction=0.0, n_iter_no_change=10, tol=1e-4, sparsity_target=None,
               sparsity_weight=0.0, state=None, checkpoint=None, checkpoint_every=0,
               resume=False, comm=None):
    """Train many networks of one architecture at once, one network per thread.

    Every network ends exactly — to the bit, θ and history — where
    ``fastbp.train(nets[i], X[rows[i]], Y[rows[i]], <its options>)`` would
    leave it, for any thread count: each thread runs the very routines
    ``train`` runs for one network, and nothing is shared between networks.
    Use it for sweeps (λ, α, ρ, β), seeds, ensembles and cross-validation folds:
    the parallelism is across networks, so it pays with at least as many
    networks as threads (a single large network is faster with ``train``,
    which spreads its examples over the threads).

    Parameters
    ----------
    nets : sequence of fastbp.Network
        Distinct networks with the same layer sizes, activations, loss and
        dtype (their parameters may differ). Trained in place.
    X : array-like of shape (m, s_1)
    Y : array-like of shape (m, s_{n_l})
        Validated and converted once, shared by every network, never copied
        per network.
    learning_rate, weight_decay, momentum, beta1, beta2, adam_epsilon, sparsity_target, sparsity_weight, seed
        As in :func:`fastbp.train`; each is either one value for every
        network or a sequence of ``len(nets)`` values, one per network.
    iterations, callback
        ``iterations`` as in ``train`` (the same for every network).
        ``callback(index, iteration, J, net)`` after each iteration of each
        network (networks in index order within an iteration), with ``net``
        holding that network's current θ; returning True stops that network.
    rows : sequence of ``len(nets)`` 1-D integer arrays (or None entries), optional
        Network i trains on rows ``rows[i]`` of X and Y (a fold, a bootstrap
        sample; repeats allowed), read in place — X is never copied. None (or a
        None entry): all m rows.
    optimizer, batch_size, shuffle, nesterov, schedule, power_t, step_every, step_factor, validation_fraction, n_iter_no_change, tol
        As in ``train``, the same for every network. ``seed`` (per network)
        drives each network's shuffling and validation split exactly as in
        ``train``. ``optimizer="lbfgs"`` runs scipy's L-BFGS-B (Python) one
        network after another through ``train`` (rows are then copied per
        network); gd, sgd and adam run in parallel.
    state, checkpoint, checkpoint_every, resume, comm
        Not supported (a clear ValueError): train such networks with ``train``.

    Returns
    -------
    list of TrainingHistory
        One per network, as ``train`` returns it.

    Raises
    ------
    DivergenceError
        After every other network finished, when some diverged; each of those
        keeps its last finite parameters (as with ``train``). The exception's
        ``histories`` holds every network's history (the diverged ones up to
        their last finite iteration) and ``networks`` the indices that diverged.
    """
    nets = _check_nets(nets)
    n_nets = len(nets)
    net0 = nets[0]
    for name, value in (("state", state), ("checkpoint", checkpoint), ("comm", comm)):
        if value is not None:
            raise ValueError(f"{name} is not supported by train_many; train such networks one "
                             f"by one with fastbp.train")
    if resume:
        raise ValueError("resume is not supported by train_many (it has no checkpoints); "
                         "use fastbp.train")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    iterations = check_scalar(iterations, "iterations", low=0, integer=True)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    power_t, step_every, step_factor, validation_fraction, n_iter_no_change, tol = \
        check_schedule_and_stopping(power_t, step_every, step_factor, validation_fraction,
                                    n_iter_no_change, tol)

    options = {name: _per_network(name, value, n_nets) for name, value in (
        ("learning_rate", learning_rate), ("weight_decay", weight_decay),
        ("momentum", momentum), ("beta1", beta1), ("beta2", beta2),
        ("adam_epsilon", adam_epsilon), ("sparsity_target", sparsity_target),
        ("sparsity_weight", sparsity_weight), ("seed", seed))}
    lr, lam, mu = options["learning_rate"], options["weight_decay"], options["momentum"]
    b1, b2, eps = options["beta1"], options["beta2"], options["adam_epsilon"]
    seeds = options["seed"]
    rho, beta = [], []
    for i in range(n_nets):
        where = _where(i, n_nets)
        if optimizer != "lbfgs":
            lr[i] = check_scalar(lr[i], "learning_rate" + where, low=0, low_inclusive=False)
        lam[i] = check_scalar(lam[i], "weight_decay" + where, low=0)
        mu[i] = check_scalar(mu[i], "momentum" + where, low=0)
        if mu[i] >= 1:
            raise ValueError(f"momentum{where} must be in [0, 1), got {mu[i]!r}")
        if nesterov and mu[i] == 0:
            raise ValueError(f"nesterov=True needs momentum > 0 (momentum{where} is 0)")
        for name, values in (("beta1", b1), ("beta2", b2)):
            values[i] = check_scalar(values[i], name + where, low=0)
            if values[i] >= 1:
                raise ValueError(f"{name}{where} must be in [0, 1), got {values[i]!r}")
        eps[i] = check_scalar(eps[i], "adam_epsilon" + where, low=0, low_inclusive=False)
        if seeds[i] is not None and (isinstance(seeds[i], bool) or
                                     not isinstance(seeds[i], numbers.Integral)):
            raise TypeError(f"seed{where} must be an integer or None, got {seeds[i]!r}")
        try:
            r, b = net0._check_sparsity(options["sparsity_target"][i],
                                        options["sparsity_weight"][i])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc}{' (network ' + str(i) + ')' if n_nets > 1 else ''}") \
                from None
        rho.append(r)
        beta.append(b)

    X, Y = check_data(X, Y, net0.layer_sizes, net0.dtype)
    m = X.shape[0]
    base = _check_rows(rows, n_nets, m)

    full_batch = optimizer in ("gd", "lbfgs") or batch_size is None
    if not full_batch:
        batch_size = check_scalar(batch_size, "batch_size", low=1, integer=True)
        if any(beta):
            raise ValueError("sparsity needs the full batch for ρ̂: use optimizer 'gd' or "
                             "'lbfgs', or batch_size=None")

    if optimizer == "lbfgs":
        return _lbfgs_one_by_one(nets, X, Y, base, lam, iterations, callback, seeds,
                                 validation_fraction, n_iter_no_change, tol, rho, beta)

    # Each network's training rows (and validation rows), split like train does.
    fit, val = [], []
    for i in range(n_nets):
        if validation_fraction == 0:
            fit.append(base[i])
            val.append(None)
            continue
        own = base[i] if base[i] is not None else np.arange(m)
        m_i = own.shape[0]
        n_val = int(round(validation_fraction * m_i))
        if n_val < 1 or n_val >= m_i:
            raise ValueError(f"validation_fraction={validation_fraction} of m={m_i} examples "
                             f"leaves no training or no validation examples{_where(i, n_nets)}")
        order = np.random.default_rng(seeds[i]).permutation(m_i)
        val.append(own[np.sort(order[:n_val])])
        fit.append(own[np.sort(order[n_val:])])

    dt = net0.dtype.type
    dtype = net0.dtype
    kinds = np.array([K.ADAM if optimizer == "adam" else K.NESTEROV if nesterov else
                      K.MOMENTUM if mu[i] else K.PLAIN for i in range(n_nets)], np.int64)
    thetas = np.stack([net._theta for net in nets])
    moments = np.zeros((n_nets, 2, net0.n_params), dtype)
    steps = np.zeros((n_nets, 1), np.int64)
    lam_d, mu_d, b1_d, b2_d, eps_d = (np.array([dt(v) for v in values], dtype)
                                      for values in (lam, mu, b1, b2, eps))
    lr_arr = np.array(lr, np.float64)
    rho_arr, beta_arr = np.array(rho, np.float64), np.array(beta, np.float64)
    net_args = (net0._sizes, net0._activation_codes, net0._products, LOSSES[net0.loss])
    # Per running network: the slot rows of train's workspace plus one gathered chunk of X, Y.
    width = net0._rows_workspace_width()

    def rates(t):
        # train's rate(t) in float64, then cast: the same numbers to the bit.
        if schedule == "invscaling":
            r = lr_arr / (t + 1) ** power_t
        elif schedule == "step":
            r = lr_arr * step_factor ** (t // step_every)
        else:
            r = lr_arr
        return r.astype(dtype)

    fit_orders, fit_starts, fit_stops = _flatten(fit)
    stoppers = None
    if validation_fraction:
        val_orders, val_starts, val_stops = _flatten(val)
        stoppers = [StoppingRule(n_iter_no_change, tol) for _ in range(n_nets)]
    histories = [[] for _ in range(n_nets)]
    status = np.zeros(n_nets, np.int64)
    failed_at = np.full(n_nets, -1, np.int64)
    active = np.ones(n_nets, np.bool_)
    # Full-batch steps per kernel call: all of them (in blocks that bound the rate and
    # cost arrays) unless a callback or early stopping must look after every iteration.
    per_call = 1 if (callback is not None or stoppers is not None or not full_batch) \
        else 1024
    shuffle_rngs = [np.random.default_rng(s) for s in seeds] if not full_batch else None
    sizes_fit = [(f.shape[0] if f is not None else m) for f in fit]

    t = 0
    while t < iterations and active.any():
        n = min(per_call, iterations - t)
        if full_batch:
            rate = np.stack([rates(t + k) for k in range(n)], axis=1)
            costs = np.zeros((n_nets, n), np.float64)
            done = np.zeros(n_nets, np.int64)
            with blas_single_threaded(net0._any_blas):
                MK.full_batch_many(
                    thetas, *net_args, X, Y, fit_orders, fit_starts, fit_stops, lam_d,
                    rho_arr, beta_arr, rate, kinds, mu_d, b1_d, b2_d, eps_d, moments, steps,
                    True, CHUNK, MAX_SLOTS, width, active, costs, done, status)
        else:
            orders, starts, stops, shuffled = _epoch_orders(
                fit, sizes_fit, shuffle, shuffle_rngs, active, m)
            costs = np.zeros((n_nets, 1), np.float64)
            with blas_single_threaded(net0._any_blas):
                MK.epoch_many(
                    thetas, *net_args, X, Y, orders, starts, stops, shuffled, batch_size,
                    net0._batch_parts(batch_size), lam_d, rates(t), kinds, mu_d, b1_d, b2_d, eps_d, moments, steps, CHUNK,
                    active, costs[:, 0], status)
            done = np.where(status == MK.OK, 1, 0)
        val_costs = None
        if stoppers is not None:
            val_costs = np.zeros(n_nets, np.float64)
            with blas_single_threaded(net0._any_blas):
                MK.cost_many(
                    thetas, *net_args, X, Y, val_orders, val_starts, val_stops, dt(0.0),
                    False, CHUNK, MAX_SLOTS, width, active & (status == MK.OK), val_costs)
        for i in np.flatnonzero(active):
            histories[i].extend(costs[i, :done[i]].tolist())
            if status[i] != MK.OK:
                failed_at[i] = t + done[i]
                active[i] = False
                continue
            if stoppers is not None and stoppers[i].update(t, val_costs[i], thetas[i]):
                active[i] = False
                continue
            if callback is not None:
                net = nets[i]
                net._theta[...] = thetas[i]
                stop = callback(i, t, histories[i][-1], net)
                thetas[i] = net._theta  # a callback may change θ, as with train
                if stop:
                    active[i] = False
        t += n

    results = []
    for i, net in enumerate(nets):
        s = stoppers[i] if stoppers is not None else None
        if s is not None and s.stopped and s.best_theta is not None:
            thetas[i] = s.best_theta
        net._theta[...] = thetas[i]
        results.append(TrainingHistory.build(
            histories[i], None if s is None else s.scores, False if s is None else s.stopped,
            None if s is None else s.best_iteration))
    _raise_failures(status, failed_at, results, full_batch, lr)
    return results


def _raise_failures(status, failed_at, histories, full_batch, learning_rate):
    bad_sparsity = np.flatnonzero(status == MK.BAD_SPARSITY)
    if bad_sparsity.size:
        raise ValueError(
            f"network(s) {bad_sparsity.tolist()}: sparsity needs mean hidden activations "
            f"strictly inside (0, 1); use a sigmoid first hidden layer")
    diverged = np.flatnonzero((status == MK.NONFINITE_GRADIENT) |
                              (status == MK.NONFINITE_UPDATE))
    if diverged.size:
        what = "iteration" if full_batch else "epoch"
        detail = "; ".join(
            f"network {i} at {what} {failed_at[i]} (α = {learning_rate[i]})"
            for i in diverged[:10])
        more = f" and {diverged.size - 10} more" if diverged.size > 10 else ""
        exc = DivergenceError(
            f"{diverged.size} network(s) diverged — the cost, gradient or updated parameters "
            f"were not finite: {detail}{more}. Each keeps its last finite parameters; the "
            f"other networks finished (their histories are in .histories) — lower "
            f"learning_rate for these")
        exc.histories = histories
        exc.networks = diverged.tolist()
        raise exc


def _lbfgs_one_by_one(nets, X, Y, base, lam, iterations, callback, seeds,
                      validation_fraction, n_iter_no_change, tol, rho, beta):
    """scipy's L-BFGS-B is Python: one ``train`` call per network, in turn."""
    histories = []
    for i, net in enumerate(nets):
        X_i, Y_i = (X, Y) if base[i] is None else (X[base[i]], Y[base[i]])
        cb = None if callback is None else (
            lambda it, J, n, i=i: callback(i, it, J, n))
        histories.append(train(
            net, X_i, Y_i, weight_decay=lam[i], iterations=iterations, callback=cb,
            optimizer="lbfgs", seed=seeds[i], validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol,
            sparsity_target=rho[i] if beta[i] else None, sparsity_weight=beta[i]))
    return histories


def _epoch_orders(fit, sizes, shuffle, rngs, active, m):
    """Each network's visiting order for one epoch, drawn exactly as train's
    Generator(seed).permutation(m) would; concatenated for the kernel."""
    gathered = any(f is not None for f in fit)
    if not shuffle and not gathered:
        order = np.arange(m)
        n = len(fit)
        return order, np.zeros(n, np.int64), np.full(n, m, np.int64), False
    parts = []
    for i, own in enumerate(fit):
        if not active[i]:
            parts.append(np.empty(0, np.int64))
        elif shuffle:
            perm = rngs[i].permutation(sizes[i])
            parts.append(perm if own is None else own[perm])
        else:
            parts.append(own if own is not None else np.arange(m))
    orders, starts, stops = _flatten(parts)
    return orders, starts, stops, True


def _flatten(arrays):
    """One int64 array holding each network's rows, with [start, stop) per
    network (an empty range: all rows of X, read in place)."""
    lengths = np.array([0 if a is None else a.shape[0] for a in arrays], np.int64)
    stops = np.cumsum(lengths)
    starts = stops - lengths
    flat = np.empty(int(stops[-1]) if len(stops) else 0, np.int64)
    for a, lo, hi in zip(arrays, starts, stops):
        if a is not None:
            flat[lo:hi] = a
    return flat, starts, stops


def _where(i, n):
    return f"[{i}]" if n > 1 else ""


def _check_nets(nets):
    if isinstance(nets, Network):
        raise TypeError("nets must be a sequence of fastbp.Network, got one Network; "
                        "use fastbp.train, or pass [net]")
    try:
        nets = list(nets)
    except TypeError:
        raise TypeError(f"nets must be a sequence of fastbp.Network, got "
                        f"{type(nets).__name__}") from None
    if not nets:
        raise ValueError("nets is empty; expected at least one fastbp.Network")
    seen = set()
    for i, net in enumerate(nets):
        if not isinstance(net, Network):
            raise TypeError(f"nets[{i}] must be a fastbp.Network, got {type(net).__name__}")
        if id(net) in seen:
            raise ValueError(f"nets[{i}] is the same Network object as an earlier entry; "
                             f"each entry must be its own network (use net.copy())")
        seen.add(id(net))
        ref = nets[0]
        for attr in ("layer_sizes", "activations", "loss", "dtype"):
            if getattr(net, attr) != getattr(ref, attr):
                raise ValueError(f"nets[{i}] has {attr} {getattr(net, attr)!r} but nets[0] has "
                                 f"{getattr(ref, attr)!r}; all networks must share one "
                                 f"architecture and dtype")
        if not np.all(np.isfinite(net._theta)):
            raise ValueError(f"nets[{i}].theta contains NaN or Inf; every parameter must be "
                             f"finite")
    return nets


def _per_network(name, value, n_nets):
    """One value per network: a scalar is repeated, a sequence must have n_nets."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else \
            list(value)
        if np.ndim(value) != 1:
            raise ValueError(f"{name} must be one value or a 1-D sequence of {n_nets} "
                             f"(one per network), got shape {np.shape(value)}")
        if len(values) != n_nets:
            raise ValueError(f"{name} has {len(values)} values; expected one value or "
                             f"{n_nets} (one per network)")
        return values
    return [value] * n_nets


def _check_rows(rows, n_nets, m):
    if rows is None:
        return [None] * n_nets
    if isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype.kind in "iu":
        rows = list(rows)
    try:
        rows = list(rows)
    except TypeError:
        raise TypeError(f"rows must be a sequence of {n_nets} index arrays (one per network), "
                        f"got {type(rows).__name__}") from None
    if len(rows) != n_nets:
        raise ValueError(f"rows has {len(rows)} entries; expected {n_nets} (one index array "
                         f"per network)")
    out = []
    for i, r in enumerate(rows):
        if r is None:
            out.append(None)
            continue
        a = np.asarray(r)
        if a.dtype.kind == "b":
            raise TypeError(f"rows[{i}] is a boolean mask; expected integer row indices "
                            f"(use np.flatnonzero(mask))")
        if a.dtype.kind not in "iu":
            raise TypeError(f"rows[{i}] has dtype {a.dtype}; expected integer row indices")
        if a.ndim != 1:
            raise ValueError(f"rows[{i}] must be 1-D, got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"rows[{i}] is empty; expected at least one row index")
        if a.min() < 0 or a.max() >= m:
            raise ValueError(f"rows[{i}] holds indices outside [0, {m}) (X has {m} rows)")
        out.append(np.ascontiguousarray(a, dtype=np.int64))
    return out
