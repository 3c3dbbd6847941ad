"""Momentum, Nesterov, Adam, schedules, early stopping and resumable state,
against plain numpy transcriptions of each rule."""

import numpy as np
import pytest

import fastbp
import naive
from helpers import make_data, net_for

SIZES = (6, 5, 4)


def numpy_training(net, X, Y, lam, epochs, batch, orders, rule, lr_at):
    """Mini-batch training with the update rule ``rule(theta, g, t, lr)``."""
    theta = net.theta.astype(np.float64).copy()
    t = 0
    for epoch in range(epochs):
        for start in range(0, len(X), batch):
            rows = orders[epoch][start:start + batch]
            W, b = net.astype(np.float64).unflatten(theta)
            _, gW, gb = naive.cost_and_gradient(list(W), list(b), net.activations, X[rows],
                                                Y[rows], lam)
            g = np.concatenate([np.concatenate([w.ravel(), c]) for w, c in zip(gW, gb)])
            t += 1
            rule(theta, g, t, lr_at(epoch))
    return theta


def momentum_rule(mu, nesterov):
    v = {}

    def rule(theta, g, t, lr):
        v.setdefault("v", np.zeros_like(theta))
        v["v"] = mu * v["v"] - lr * g
        theta += mu * v["v"] - lr * g if nesterov else v["v"]
    return rule


def adam_rule(b1, b2, eps):
    s = {}

    def rule(theta, g, t, lr):
        s.setdefault("m", np.zeros_like(theta)); s.setdefault("v", np.zeros_like(theta))
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        theta -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * s["m"] / (np.sqrt(s["v"]) + eps)
    return rule


@pytest.mark.parametrize("optimizer,kw,rule", [
    ("sgd", dict(momentum=0.9), momentum_rule(0.9, False)),
    ("sgd", dict(momentum=0.9, nesterov=True), momentum_rule(0.9, True)),
    ("adam", dict(beta1=0.8, beta2=0.99, adam_epsilon=1e-7), adam_rule(0.8, 0.99, 1e-7)),
])
def test_update_rules_match_numpy(optimizer, kw, rule):
    net = net_for(SIZES, "tanh", epsilon=0.3)
    X, Y = make_data(SIZES, 100)
    orders = [np.arange(100)] * 3
    expected = numpy_training(net, X, Y, 1e-3, 3, 16, orders, rule, lambda e: 0.05)
    fastbp.train(net, X, Y, learning_rate=0.05, weight_decay=1e-3, iterations=3,
                 optimizer=optimizer, batch_size=16, shuffle=False, **kw)
    np.testing.assert_allclose(net.theta, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("schedule,lr_at", [
    ("invscaling", lambda e: 0.2 / (e + 1) ** 0.5),
    ("step", lambda e: 0.2 * 0.5 ** (e // 2)),
])
def test_schedules(schedule, lr_at):
    net = net_for(SIZES, epsilon=0.3)
    X, Y = make_data(SIZES, 64)
    orders = [np.arange(64)] * 5
    expected = numpy_training(net, X, Y, 0.0, 5, 64, orders,
                              lambda th, g, t, lr: th.__isub__(lr * g), lr_at)
    fastbp.train(net, X, Y, learning_rate=0.2, iterations=5, optimizer="sgd", batch_size=64,
                 shuffle=False, schedule=schedule, step_every=2, step_factor=0.5)
    np.testing.assert_allclose(net.theta, expected, rtol=1e-10)


def test_full_batch_momentum_and_adam_beat_plain_gradient_descent():
    X, Y = make_data(SIZES, 200)
    plain = fastbp.train(net_for(SIZES, epsilon=0.1), X, Y, learning_rate=0.05, iterations=100)
    for kw in (dict(optimizer="gd", momentum=0.9), dict(optimizer="adam", batch_size=None)):
        history = fastbp.train(net_for(SIZES, epsilon=0.1), X, Y, learning_rate=0.05,
                               iterations=100, **kw)
        assert history[-1] < plain[-1] < history[0], kw


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "gd"])
def test_state_resumes_bit_identically(optimizer):
    X, Y = make_data(SIZES, 97)
    kw = dict(optimizer=optimizer, learning_rate=0.05, weight_decay=1e-3, batch_size=10,
              momentum=0.9 if optimizer != "adam" else 0.0, seed=3, schedule="invscaling")
    whole = net_for(SIZES)
    h_whole = fastbp.train(whole, X, Y, iterations=6, **kw)
    parts = net_for(SIZES)
    state = {}
    h1 = fastbp.train(parts, X, Y, iterations=2, state=state, **kw)
    h2 = fastbp.train(parts, X, Y, iterations=4, state=state, **kw)
    np.testing.assert_array_equal(parts.theta, whole.theta)
    np.testing.assert_array_equal(np.concatenate([h1, h2]), h_whole)


def test_early_stopping_restores_the_best_parameters():
    # Few examples, a big network: the validation cost soon rises.
    rng = np.random.default_rng(0)
    X = rng.random((60, 5)); Y = rng.random((60, 2))
    net = fastbp.Network([5, 40, 2], epsilon=0.5, seed=1)
    history = fastbp.train(net, X, Y, learning_rate=0.05, iterations=3000, optimizer="adam",
                           batch_size=8, validation_fraction=0.3, n_iter_no_change=5, seed=0)
    assert history.stopped_early and len(history) < 3000
    assert len(history.validation) == len(history)
    best = history.best_iteration
    assert history.validation[best] == history.validation.min()
    held_out = np.sort(np.random.default_rng(0).permutation(60)[:18])
    assert net.cost(X[held_out], Y[held_out]) == pytest.approx(history.validation[best], rel=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(momentum=1.0), "momentum must be in"),
    (dict(nesterov=True), "nesterov=True needs momentum"),
    (dict(optimizer="adam", beta1=1.0), "beta1 must be in"),
    (dict(schedule="cosine"), "schedule must be one of"),
    (dict(validation_fraction=1.0), "validation_fraction must be in"),
    (dict(state=[1]), "state must be a dict"),
    (dict(optimizer="sgd", sparsity_weight=1.0, sparsity_target=0.1), "sparsity needs the full batch"),
])
def test_bad_optimizer_arguments(kwargs, match):
    net = net_for(SIZES)
    X, Y = make_data(SIZES, 20)
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.train(net, X, Y, **kwargs)
