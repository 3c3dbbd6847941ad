"""Issue 10, item 14: the cross-entropy cost is −y·(z − logsumexp z), exact
however large the logit gaps (it used to be capped at −log(tiny): 708 in
float64, 87 in float32, while the gradient was right)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
from fastbp._compiler import CHUNK

from naive import cost_and_gradient as naive_cost_and_gradient, forward


def reference_cross_entropy(net, X, Y):
    """(1/m) Σ_k −y·(z − logsumexp z) in float64 from the network's parameters."""
    weights = [W.astype(np.float64) for W in net.weights]
    biases = [b.astype(np.float64) for b in net.biases]
    z, a = forward(weights[:-1], biases[:-1], net.activations[:-1], X.astype(np.float64))
    logits = a[-1] @ weights[-1].T + biases[-1]
    top = logits.max(axis=1, keepdims=True)
    log_softmax = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return float(-(Y * log_softmax).sum() / X.shape[0])


def confident_wrong_net(sizes, gap, dtype):
    """A cross-entropy network whose output logits favour the last class by
    about ``gap`` over the first (the class the targets below ask for)."""
    net = fastbp.Network(sizes, loss="cross_entropy", dtype=dtype, seed=1, epsilon=0.1,
                         activations=["tanh"] * (len(sizes) - 2) + ["softmax"])
    net.biases[-1][...] = 0
    net.biases[-1][-1] = gap
    return net


@pytest.mark.parametrize("dtype, gap", [(np.float64, 800.0), (np.float64, 1e4),
                                        (np.float32, 100.0), (np.float32, 1e3)])
@pytest.mark.parametrize("sizes", [[3, 4], [3, 5, 4], [10, 12, 8]])  # 8·12: the BLAS layer path
@pytest.mark.parametrize("m", [5, 3 * CHUNK + 7])                   # one slot and several
def test_cross_entropy_cost_does_not_saturate(dtype, gap, sizes, m):
    rng = np.random.default_rng(0)
    X = rng.random((m, sizes[0])).astype(dtype)
    Y = np.zeros((m, sizes[-1]), dtype)
    Y[:, 0] = 1  # every target is the class the network rules out
    net = confident_wrong_net(sizes, gap, dtype)
    expected = reference_cross_entropy(net, X, Y)
    assert expected > 0.95 * gap  # the probe itself: the true cost is about the gap
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert net.cost(X, Y) == pytest.approx(expected, rel=rtol)
    J, _, _ = net.cost_and_gradient(X, Y)
    assert J == pytest.approx(expected, rel=rtol)


def test_cross_entropy_cost_agrees_with_its_gradient_when_saturated():
    """Central differences of J along the true class's bias equal ∂J/∂b there
    (−1 per example when its probability is ~0); the capped cost gave 0."""
    X = np.random.default_rng(1).random((6, 3))
    Y = np.zeros((6, 4))
    Y[:, 0] = 1
    net = confident_wrong_net([3, 5, 4], 800.0, np.float64)
    _, _, grad_b = net.cost_and_gradient(X, Y)
    h = 1e-3
    b = net.biases[-1]
    b[0] += h
    plus = net.cost(X, Y)
    b[0] -= 2 * h
    minus = net.cost(X, Y)
    b[0] += h
    assert (plus - minus) / (2 * h) == pytest.approx(grad_b[-1][0], rel=1e-6)
    assert grad_b[-1][0] == pytest.approx(-1.0, rel=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.floats(0.0, 3000.0), seed=st.integers(0, 2 ** 16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_cross_entropy_matches_logsumexp_reference(scale, seed, dtype):
    """Property: for any logit scale the cost equals −y·log_softmax(z) computed
    in float64 — small logits (where the old and new formulas agree) and huge
    ones alike; soft targets included."""
    rng = np.random.default_rng(seed)
    net = fastbp.Network([4, 6], loss="cross_entropy", dtype=dtype, seed=seed)
    net.theta = (rng.standard_normal(net.n_params) * scale / 4).astype(dtype)
    X = rng.random((9, 4)).astype(dtype)
    Y = rng.dirichlet(np.ones(6), size=9).astype(dtype)
    expected = reference_cross_entropy(net, X, Y)
    tol = dict(rel=2e-5, abs=1e-5) if dtype == np.float32 else dict(rel=1e-10, abs=1e-12)
    assert net.cost(X, Y) == pytest.approx(expected, **tol)
    assert net.cost_and_gradient(X, Y)[0] == pytest.approx(expected, **tol)


def test_cross_entropy_small_logits_unchanged_against_naive():
    """Where nothing saturates the cost is still the seed's −Σ y log a."""
    rng = np.random.default_rng(3)
    net = fastbp.Network([5, 7, 3], loss="cross_entropy", seed=2, epsilon=0.5)
    X = rng.random((40, 5))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    J_ref, _, _ = naive_cost_and_gradient(net.weights, net.biases, net.activations, X, Y,
                                          loss="cross_entropy")
    assert net.cost(X, Y) == pytest.approx(J_ref, rel=1e-12)

