"""The trainer: iteration, bookkeeping and stopping. It holds no math — every
cost, gradient and parameter update is computed by a kernel."""

import numpy as np

from . import _kernels as K
from ._compiler import CHUNK
from ._threads import blas_single_threaded
from ._validation import all_finite, check_scalar

OPTIMIZERS = ("gd", "sgd", "lbfgs")


class DivergenceError(FloatingPointError):
    """Training produced a non-finite cost or gradient. The network keeps the
    last finite parameters."""


def train(net, X, Y, learning_rate=0.1, weight_decay=0.0, iterations=100, callback=None, *,
          optimizer="gd", batch_size=32, shuffle=True, seed=0,
          sparsity_target=None, sparsity_weight=0.0):
    """Train ``net`` in place and return the cost history.

    Parameters
    ----------
    net : fastbp.Network
    X : array-like of shape (m, s_1)
    Y : array-like of shape (m, s_{n_l})
    learning_rate : float, default 0.1
        α > 0 (gd and sgd).
    weight_decay : float, default 0
        λ ≥ 0.
    iterations : int, default 100
        gd: gradient steps over the full batch; sgd: epochs (passes over the
        data); lbfgs: L-BFGS iterations.
    callback : callable, optional
        ``callback(iteration, J, net)`` after every iteration; returning True
        stops training.
    optimizer : {"gd", "sgd", "lbfgs"}, default "gd"
        "gd" is the seed's batch gradient descent; "sgd" mini-batch gradient
        descent with the same update on batches of ``batch_size``; "lbfgs"
        runs ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on the
        flat θ (the UFLDL minFunc workflow).
    batch_size : int, default 32
        Examples per mini-batch (sgd).
    shuffle : bool, default True
        Visit the examples in a new random order each epoch (sgd).
    seed : int or None, default 0
        Seed of the Generator that shuffles.
    sparsity_target, sparsity_weight : float, optional
        ρ and β of the sparse autoencoder (gd and lbfgs).

    Returns
    -------
    ndarray of shape (n_iterations,)
        gd: J before each step; sgd: the mean mini-batch J of each epoch;
        lbfgs: J after each iteration.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    iterations = check_scalar(iterations, "iterations", low=0, integer=True)
    if optimizer != "lbfgs":
        learning_rate = check_scalar(learning_rate, "learning_rate", low=0, low_inclusive=False)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    X, Y, weight_decay, rho, beta = net._prepare(X, Y, weight_decay, sparsity_target,
                                                 sparsity_weight)
    if optimizer == "sgd":
        batch_size = check_scalar(batch_size, "batch_size", low=1, integer=True)
        if beta:
            raise ValueError("sparsity needs the full batch for ρ̂: use optimizer='gd' or 'lbfgs'")
        return _train_sgd(net, X, Y, learning_rate, weight_decay, iterations, callback,
                          batch_size, bool(shuffle), seed)
    if optimizer == "lbfgs":
        return _train_lbfgs(net, X, Y, weight_decay, iterations, callback, rho, beta)
    return _train_gd(net, X, Y, learning_rate, weight_decay, iterations, callback, rho, beta)


def _train_gd(net, X, Y, learning_rate, weight_decay, iterations, callback, rho, beta):
    theta = net.theta
    grad = np.empty_like(theta)
    previous = np.empty_like(theta)
    step = net.dtype.type(-learning_rate)
    history = []
    for it in range(iterations):
        J = net._evaluate(theta, X, Y, weight_decay, rho, beta, grad)
        _check_finite(J, grad, it)
        history.append(J)
        # W := W − α[(1/m)ΔW + λW],  b := b − α(1/m)Δb  (grad holds the brackets)
        previous[...] = theta
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(grad, step, out=grad)
            theta += grad
        if not all_finite(theta):
            theta[...] = previous
            raise DivergenceError(f"the update of iteration {it} overflowed θ; the network "
                                  f"keeps the parameters from before it; lower learning_rate "
                                  f"(α = {learning_rate})")
        if callback is not None and callback(it, J, net):
            break
    return np.array(history)


def _train_sgd(net, X, Y, learning_rate, weight_decay, iterations, callback, batch_size,
               shuffle, seed):
    rng = np.random.default_rng(seed)
    theta = net.theta
    dt = net.dtype.type
    previous = np.empty_like(theta)
    history = []
    m = X.shape[0]
    for epoch in range(iterations):
        order = rng.permutation(m) if shuffle else np.arange(m)
        previous[...] = theta
        with blas_single_threaded(net._use_blas.any()):
            J = float(K.sgd_epoch_kernel(
                theta, net._sizes, net._activation_codes, net._use_blas,
                K.SQUARED if net.loss == "squared" else K.CROSS_ENTROPY, X, Y, order, shuffle,
                batch_size, dt(learning_rate), dt(weight_decay), CHUNK))
        if not (np.isfinite(J) and all_finite(theta)):
            theta[...] = previous
            raise DivergenceError(f"epoch {epoch} produced a non-finite cost or parameters; "
                                  f"the network keeps the parameters from before it; "
                                  f"lower learning_rate (α = {learning_rate})")
        history.append(J)
        if callback is not None and callback(epoch, J, net):
            break
    return np.array(history)


def _train_lbfgs(net, X, Y, weight_decay, iterations, callback, rho, beta):
    from scipy.optimize import minimize

    history = []
    grad = np.empty_like(net.theta)

    def fun(theta):
        theta = theta.astype(net.dtype, copy=False)
        J = net._evaluate(theta, X, Y, weight_decay, rho, beta, grad)
        _check_finite(J, grad, len(history))
        return J, grad.astype(np.float64)

    class _Stop(Exception):
        pass

    def on_iteration(intermediate_result):
        history.append(float(intermediate_result.fun))
        net.theta[...] = intermediate_result.x
        if callback is not None and callback(len(history) - 1, history[-1], net):
            raise StopIteration

    if iterations == 0:
        return np.array(history)
    result = minimize(fun, net.theta.astype(np.float64), jac=True, method="L-BFGS-B",
                      callback=on_iteration, options={"maxiter": iterations})
    if result.x is not None and np.all(np.isfinite(result.x)):
        net.theta[...] = result.x
    return np.array(history)


def _check_finite(J, grad, iteration):
    if not np.isfinite(J) or not all_finite(grad):
        raise DivergenceError(
            f"iteration {iteration}: the cost or gradient is not finite (J = {J}); "
            f"the network keeps the last finite parameters")
