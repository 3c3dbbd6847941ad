"""Issue 10, item 15: the loss an SGD/Adam epoch reports is the mean
per-example cost over the epoch, (1/m) Σ_B |B| J_B, each batch's J weighted by
its size (it was the unweighted mean over batches, over-weighting a short last
batch)."""

import numpy as np
import pytest

import fastbp

from naive import cost_and_gradient as naive_cost_and_gradient


def naive_epoch_costs(net, X, Y, learning_rate, weight_decay, batch_size):
    """Plain SGD over consecutive rows; returns each batch's (|B|, J_B) at θ
    before its update."""
    weights = [W.copy() for W in net.weights]
    biases = [b.copy() for b in net.biases]
    out = []
    for start in range(0, X.shape[0], batch_size):
        xb, yb = X[start:start + batch_size], Y[start:start + batch_size]
        J, gW, gb = naive_cost_and_gradient(weights, biases, net.activations, xb, yb,
                                            weight_decay)
        out.append((xb.shape[0], J))
        for l in range(len(weights)):
            weights[l] -= learning_rate * gW[l]
            biases[l] -= learning_rate * gb[l]
    return out


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("m, batch_size", [(10, 4), (21, 10), (9, 2), (8, 4), (300, 64)])
def test_epoch_loss_is_mean_per_example_cost(optimizer, m, batch_size):
    """The epoch loss is (1/m) Σ_B |B| J_B. The last batch holds outliers,
    so the unweighted mean over batches (the old report) is far off."""
    rng = np.random.default_rng(4)
    X = rng.random((m, 3))
    Y = rng.random((m, 2))
    Y[-1] = 40.0  # one outlier, always in the (possibly short) last batch
    net = fastbp.Network([3, 4, 2], seed=5, epsilon=0.3)
    start = net.copy()
    history = fastbp.train(net, X, Y, learning_rate=1e-3, weight_decay=0.01, iterations=1,
                           optimizer=optimizer, batch_size=batch_size, shuffle=False)
    if optimizer == "sgd":
        batches = naive_epoch_costs(start, X, Y, 1e-3, 0.01, batch_size)
        weighted = sum(size * J for size, J in batches) / m
        assert history[0] == pytest.approx(weighted, rel=1e-12)
        if m % batch_size:
            unweighted = np.mean([J for _, J in batches])
            assert abs(unweighted - weighted) > 0.1 * weighted
    # With a tiny step the epoch loss is close to the data's J at the start
    # (the per-example mean), whatever the batch sizes.
    assert history[0] == pytest.approx(start.cost(X, Y, 0.01), rel=0.05)


def test_epoch_loss_float32_stays_float32_and_weighted():
    rng = np.random.default_rng(6)
    X = rng.random((10, 3)).astype(np.float32)
    Y = rng.random((10, 2)).astype(np.float32)
    Y[-1] = 40
    net = fastbp.Network([3, 2], seed=5, dtype=np.float32)
    J0 = net.cost(X, Y)
    history = fastbp.train(net, X, Y, learning_rate=1e-4, iterations=1, optimizer="sgd",
                           batch_size=4, shuffle=False)
    assert history[0] == pytest.approx(J0, rel=1e-2)
