"""UFLDL gradient checking: the kernels' gradient against central differences."""

import numpy as np

from ._validation import check_data, check_scalar


def numerical_gradient(cost, theta, epsilon=1e-4):
    """g_i ≈ (J(θ + ε e_i) − J(θ − ε e_i)) / (2ε) for every component i."""
    theta = np.array(theta, dtype=np.float64)
    g = np.empty_like(theta)
    for i in range(theta.size):
        keep = theta[i]
        theta[i] = keep + epsilon
        plus = cost(theta)
        theta[i] = keep - epsilon
        minus = cost(theta)
        theta[i] = keep
        g[i] = (plus - minus) / (2 * epsilon)
    return g


def check_gradient(net, X, Y, weight_decay=0.0, epsilon=1e-4, **sparsity):
    """‖g_num − g‖ / ‖g_num + g‖ at the network's current parameters.

    ``g`` is the kernels' gradient in the network's own dtype; ``g_num`` is
    the central-difference gradient, always evaluated in float64 (so a
    float32 network is checked against an accurate reference, not against
    float32 rounding noise). Costs 2·n_params cost evaluations: use a small
    network and a few examples. A correct float64 implementation gives well
    under 1e-9.

    Parameters
    ----------
    net : fastbp.Network
    X, Y : array-like of shape (m, s_1), (m, s_{n_l})
    weight_decay : float, default 0
    epsilon : float, default 1e-4
        ε of the central differences.
    **sparsity : sparsity_target=ρ, sparsity_weight=β, passed to the cost.

    Returns
    -------
    float
    """
    epsilon = check_scalar(epsilon, "epsilon", low=0, low_inclusive=False)
    X, Y = check_data(X, Y, net.layer_sizes, net.dtype)
    _, grad = net.cost_and_gradient_flat(net.theta, X, Y, weight_decay, **sparsity)

    reference = net.astype(np.float64)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)

    def cost(theta):
        return reference.cost_and_gradient_flat(theta, X64, Y64, weight_decay, **sparsity)[0]

    numeric = numerical_gradient(cost, net.theta, epsilon)
    return float(np.linalg.norm(numeric - grad) / np.linalg.norm(numeric + grad))

