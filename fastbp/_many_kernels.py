"""Many networks at once: one ``prange`` over networks, nothing shared.

Each network is trained by one thread, start to finish, with exactly the
routines :func:`fastbp.train` runs for it — :func:`~fastbp._kernels.
full_batch_steps` (ρ̂, the gradient and the update, step after step) and
:func:`~fastbp._kernels.minibatch_epoch` — called with ``parallel=False``:
the same slots, chunks and batch parts, summed in the same order, only run in
turn on the network's thread instead of spread over the pool. Nothing crosses
between networks (no reduction, no lock), so every network's θ and history
are bit-identical to a ``train`` call of its own, for any thread count.

Memory: the parameters and optimizer moments of every network (what ``train``
would hold for each), and per *running* network (at most one per thread) its
slot workspace — never a copy of X. A network that trains on its own rows of
X (``order``: k-fold, bootstrap) reads them in place, gathering one chunk at
a time into its workspace.

Per network status codes (``status``): OK; NONFINITE_GRADIENT (J or ∇J not
finite at the start of a step: θ and moments untouched, as ``train`` leaves
them); NONFINITE_UPDATE (the update made θ or J non-finite: θ and moments
restored to before it); BAD_SPARSITY (some ρ̂_j outside (0, 1)); STOPPED (the
caller stopped it: early stopping or a callback).
"""

import numpy as np
from numba import prange

from . import _kernels as K
from ._compiler import kernel

OK, NONFINITE_GRADIENT, NONFINITE_UPDATE, BAD_SPARSITY = (
    K.STEPS_OK, K.NONFINITE_GRADIENT, K.NONFINITE_UPDATE, K.BAD_SPARSITY)
STOPPED = 4


@kernel()
def rows_of(orders, starts, stops, i):
    """Network i's index array (empty: all rows of X, read as they lie)."""
    return orders[starts[i]:stops[i]]


@kernel(parallel=True)
def full_batch_many(thetas, sizes, activations, products, loss, X, Y, orders, starts, stops,
                    weight_decays, rhos, betas, rates, kinds, momenta, beta1s, beta2s,
                    epsilons, moments, steps, want_gradient, chunk, max_slots, width, active,
                    costs, done, status):
    """``rates.shape[1]`` full-batch steps of every active network.

    thetas : (n_nets, n_params)  moments : (n_nets, 2, n_params)  steps : (n_nets, 1)
    rates : (n_nets, n_steps), the step size of each network at each step
    want_gradient : True, passed in (as train passes it) rather than written as a constant
    weight_decays, momenta, beta1s, beta2s, epsilons : (n_nets,) in θ's dtype
    rhos, betas : (n_nets,) float64 (β = 0: no sparsity term)
    costs : (n_nets, n_steps) float64 out, J before each step (as ``train``'s history)
    done : (n_nets,) steps completed; status : (n_nets,) see the module docstring

    Each network's steps are :func:`fastbp._kernels.full_batch_steps`, the
    routine ``train`` runs for a network whose steps are too small for threads.
    """
    n_nets = thetas.shape[0]
    for i in prange(n_nets):
        if not active[i]:
            continue
        done[i], status[i] = K.full_batch_steps(
            thetas[i], sizes, activations, products, loss, X, Y,
            rows_of(orders, starts, stops, i), weight_decays[i], rhos[i], betas[i], rates[i],
            kinds[i], momenta[i], beta1s[i], beta2s[i], epsilons[i], moments[i], steps[i],
            want_gradient, chunk, max_slots, width, costs[i])


@kernel(parallel=True)
def epoch_many(thetas, sizes, activations, products, loss, X, Y, orders, starts, stops,
               shuffled, batch_size, parts, weight_decays, rates, kinds, momenta, beta1s,
               beta2s, epsilons, moments, steps, chunk, active, costs, status):
    """One mini-batch epoch of every active network, each over its own
    ``order`` (a permutation of its rows, or its rows in order); ``rates``
    (n_nets,) and ``costs`` (n_nets,) float64 out, the epoch's J."""
    n_nets = thetas.shape[0]
    for i in prange(n_nets):
        if not active[i]:
            continue
        theta = thetas[i]
        previous = theta.copy()
        previous_moments = moments[i].copy()
        J = np.float64(K.minibatch_epoch(
            theta, sizes, activations, products, loss, X, Y, rows_of(orders, starts, stops, i),
            shuffled, batch_size, parts, weight_decays[i], chunk, kinds[i], rates[i], momenta[i],
            beta1s[i], beta2s[i], epsilons[i], moments[i], steps[i], False, False))
        if not (K.finite_float(J) and K.all_finite_1d(theta)):
            theta[:] = previous
            moments[i][:] = previous_moments
            status[i] = NONFINITE_UPDATE
        costs[i] = J


@kernel(parallel=True)
def cost_many(thetas, sizes, activations, products, loss, X, Y, orders, starts, stops,
              weight_decay, want_gradient, chunk, max_slots, width, active, costs):
    """J (data term only: ``weight_decay`` 0, no sparsity, ``want_gradient``
    False) of every active network on its rows — the validation cost
    ``train``'s early stopping computes. λ and want_gradient arrive as
    arguments, as they do in train's call, not as constants the compiler
    could fold (which changed the rounding of the cost sum)."""
    n_nets = thetas.shape[0]
    dtype = thetas.dtype
    no_gradient = np.empty(0, dtype)
    for i in prange(n_nets):
        if not active[i]:
            continue
        order = rows_of(orders, starts, stops, i)
        m = K.n_examples(X, order)
        workspace = np.empty((min(max_slots, (m + chunk - 1) // chunk), width), dtype)
        costs[i] = np.float64(K.cost_and_gradient_rows(
            thetas[i], sizes, activations, products, loss, X, Y, order, weight_decay,
            np.empty(0, dtype), want_gradient, False, m, chunk, max_slots, 0, workspace,
            no_gradient))
