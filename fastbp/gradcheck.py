"""UFLDL gradient checking: the kernels' gradient against central differences."""

import numpy as np

from ._validation import check_data, check_scalar


#: Central-difference stencils: offsets k (in units of ε) and weights w_k,
#: g_i ≈ Σ_k w_k J(θ + kε e_i) / ε.
STENCILS = {
    # UFLDL's (J(θ+ε) − J(θ−ε)) / 2ε; truncation error ε²/6 · ∂³J/∂θ_i³.
    3: ((-1, -0.5), (1, 0.5)),
    # The five-point stencil; truncation error O(ε⁴).
    5: ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12)),
}


def numerical_gradient(cost, theta, epsilon=1e-4, points=5):
    """Central-difference gradient of ``cost`` at ``theta``, component by component."""
    theta = np.array(theta, dtype=np.float64)
    g = np.zeros_like(theta)
    for i in range(theta.size):
        keep = theta[i]
        for k, w in STENCILS[points]:
            theta[i] = keep + k * epsilon
            g[i] += w * cost(theta)
        theta[i] = keep
    return g / epsilon


def check_gradient(net, X, Y, weight_decay=0.0, epsilon=1e-4, points=5, **sparsity):
    """‖g_num − g‖ / ‖g_num + g‖ at the network's current parameters.

    ``g`` is the kernels' gradient in the network's own dtype; ``g_num`` is
    the central-difference gradient, always evaluated in float64 (so a
    float32 network is checked against an accurate reference, not against
    float32 rounding noise).

    With ``points=3`` this is exactly UFLDL's check,
    g_i ≈ (J(θ + ε e_i) − J(θ − ε e_i)) / 2ε. Its truncation error,
    ε²/6 · ∂³J/∂θ_i³, is about 1e-9 relative for a sigmoid network at
    ε = 1e-4 — as large as the errors one hopes to catch. The default
    ``points=5`` uses the five-point stencil, whose O(ε⁴) truncation error
    leaves only rounding: a correct float64 implementation gives ~1e-11.
    Costs ``points − 1`` cost evaluations per parameter: use a small network
    and a few examples.

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
    if points not in STENCILS:
        raise ValueError(f"points must be 3 (UFLDL's central difference) or 5, got {points!r}")
    X, Y = check_data(X, Y, net.layer_sizes, net.dtype)
    _, grad = net.cost_and_gradient_flat(net.theta, X, Y, weight_decay, **sparsity)

    reference = net.astype(np.float64)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)

    def cost(theta):
        return reference.cost_and_gradient_flat(theta, X64, Y64, weight_decay, **sparsity)[0]

    numeric = numerical_gradient(cost, net.theta, epsilon, points)
    return float(np.linalg.norm(numeric - grad) / np.linalg.norm(numeric + grad))

