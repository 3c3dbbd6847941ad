"""UFLDL gradient checking: kernels against central differences (ε = 1e-4)."""

import numpy as np
import pytest

import fastbp
import naive
from helpers import make_data, net_for

ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
# 1 to 4 hidden layers, and the network without a hidden layer.
SHAPES = [(3, 2), (3, 4, 2), (3, 4, 5, 2), (2, 3, 4, 3, 2), (3, 4, 3, 4, 3, 2)]


def away_from_kinks(net, X, Y, margin=1e-2):
    """The examples at which J is differentiable with room to spare.

    relu is not differentiable at z = 0: a central difference straddling the
    kink measures a slope the true gradient does not have. Keep only the
    examples whose every hidden pre-activation is at least ``margin`` from 0
    (no-op for smooth activations)."""
    if "relu" not in net.activations:
        return X, Y
    z, _ = naive.forward(list(net.weights), list(net.biases), net.activations, X)
    keep = np.ones(len(X), bool)
    for zl, name in zip(z[1:], net.activations):
        if name == "relu":
            keep &= np.all(np.abs(zl) > margin, axis=1)
    assert keep.sum() >= 9
    return X[keep], Y[keep]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_check_gradient_float64(sizes, activation):
    net = net_for(sizes, activation, seed=len(sizes))
    X, Y = make_data(sizes, 40, seed=1)
    X, Y = away_from_kinks(net, X, Y)
    X, Y = X[:9], Y[:9]
    rel = fastbp.check_gradient(net, X, Y, weight_decay=1e-3)
    assert rel < 1e-9, rel


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_ufldl_three_point_check_is_limited_by_truncation(activation):
    # UFLDL's (J(θ+ε) − J(θ−ε))/2ε: its error is the O(ε²) truncation term,
    # so it shrinks ~100× when ε shrinks 10× (until rounding, ~1e-11, takes
    # over). The kernels are not the limit.
    sizes = (3, 4, 2)
    net = net_for(sizes, activation)
    X, Y = make_data(sizes, 9, seed=1)
    coarse = fastbp.check_gradient(net, X, Y, 1e-3, epsilon=1e-4, points=3)
    fine = fastbp.check_gradient(net, X, Y, 1e-3, epsilon=1e-5, points=3)
    assert coarse < 1e-8
    assert fine < coarse / 10


@pytest.mark.parametrize("sizes", SHAPES[1:3], ids=lambda s: "-".join(map(str, s)))
def test_check_gradient_cross_entropy(sizes):
    net = net_for(sizes, "tanh", loss="cross_entropy", seed=3)
    X, Y = make_data(sizes, 9, seed=2, loss="cross_entropy")
    assert fastbp.check_gradient(net, X, Y, weight_decay=1e-3) < 1e-9


def test_check_gradient_cross_entropy_soft_targets():
    # δ = a Σy − y is exact for targets that do not sum to 1 as well.
    net = net_for((3, 4, 3), "sigmoid", loss="cross_entropy")
    X, _ = make_data((3, 4, 3), 7)
    Y = np.random.default_rng(5).random((7, 3))
    assert fastbp.check_gradient(net, X, Y, weight_decay=1e-3) < 1e-9


def test_check_gradient_sparse_autoencoder():
    sizes = (6, 4, 6)
    net = net_for(sizes, "sigmoid", epsilon=0.3)
    X, _ = make_data(sizes, 11)
    rel = fastbp.check_gradient(net, X, X, weight_decay=1e-4, sparsity_target=0.1,
                                sparsity_weight=3.0)
    assert rel < 1e-9


def test_check_gradient_float32_network_is_checked_in_its_own_precision():
    net = net_for((4, 5, 3), "sigmoid", dtype=np.float32)
    X, Y = make_data((4, 5, 3), 8, dtype=np.float32)
    rel = fastbp.check_gradient(net, X, Y, weight_decay=1e-3)
    assert rel < 1e-5  # float32 gradient vs a float64 numeric reference
    assert net.theta.dtype == np.float32


def test_check_gradient_detects_a_wrong_gradient(monkeypatch):
    # The check must be able to fail: corrupt one gradient entry.
    net = net_for((3, 4, 2))
    X, Y = make_data((3, 4, 2), 5)
    original = fastbp.Network.cost_and_gradient_flat

    def broken(self, theta, *args, **kw):
        J, g = original(self, theta, *args, **kw)
        g = g.copy()
        g[3] *= 1.01
        return J, g

    monkeypatch.setattr(fastbp.Network, "cost_and_gradient_flat", broken)
    assert fastbp.check_gradient(net, X, Y) > 1e-4


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "poisson"])
@pytest.mark.parametrize("sizes", [(3, 4, 2), (9, 12, 3)], ids=["unit-major", "rows"])
def test_check_gradient_elementwise_losses(sizes, loss):
    # δ = a − y on a logistic or exp output, in both chunk layouts.
    net = net_for(sizes, "tanh", loss=loss, seed=4, epsilon=0.3)
    X, Y = make_data(sizes, 9, seed=3)
    if loss == "binary_cross_entropy":
        Y = np.round(Y)
    assert fastbp.check_gradient(net, X, Y, weight_decay=1e-3) < 1e-9
