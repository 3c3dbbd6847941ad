"""Issue 10, item 7: one Network used from several Python threads at once.

The kernels run without the GIL; they used to share the network's workspace,
and concurrent calls returned wrong gradients silently. Every concurrent
result must equal the one computed alone (bit for bit: the kernels are
deterministic)."""

import copy
import pickle
import threading

import numpy as np
import pytest

import fastbp
from fastbp._compiler import CHUNK


def run_in_threads(n_threads, work):
    """Run ``work(k)`` in n_threads threads started together; re-raise errors."""
    barrier = threading.Barrier(n_threads)
    errors = []

    def body(k):
        try:
            barrier.wait()
            work(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("m", [CHUNK - 6, 3 * CHUNK + 5])  # single-slot and multi-slot paths
@pytest.mark.parametrize("sizes", [[6, 9, 3], [20, 30, 5]])  # loop and BLAS layers
def test_concurrent_gradients_are_correct(m, sizes):
    net = fastbp.Network(sizes, seed=0, epsilon=0.5)
    rng = np.random.default_rng(1)
    n_threads, calls = 6, 12
    data = [(rng.random((m, sizes[0])), rng.random((m, sizes[-1]))) for _ in range(n_threads)]
    expected = [net.cost_and_gradient(X, Y, 0.01) for X, Y in data]
    wrong = []

    def work(k):
        X, Y = data[k]
        J0, gW0, gb0 = expected[k]
        for _ in range(calls):
            J, gW, gb = net.cost_and_gradient(X, Y, 0.01)
            if J != J0 or any(not np.array_equal(a, b) for a, b in zip(gW + gb, gW0 + gb0)):
                wrong.append(k)

    run_in_threads(n_threads, work)
    assert wrong == [], f"{len(wrong)} of {n_threads * calls} concurrent results were wrong"


def test_concurrent_flat_gradients_and_costs_mixed():
    """cost, cost_and_gradient_flat at other θ, predict and the mean hidden
    activation interleaved on one network."""
    net = fastbp.Network([8, 12, 4], seed=2, epsilon=0.5)
    rng = np.random.default_rng(3)
    X, Y = rng.random((2 * CHUNK + 9, 8)), rng.random((2 * CHUNK + 9, 4))
    thetas = [rng.standard_normal(net.n_params) * 0.3 for _ in range(4)]
    expected_flat = [net.cost_and_gradient_flat(t, X, Y) for t in thetas]
    expected_cost = net.cost(X, Y)
    expected_pred = net.predict(X)
    expected_rho = net.mean_hidden_activation(X)
    wrong = []

    def work(k):
        for _ in range(10):
            if k < 4:
                J, g = net.cost_and_gradient_flat(thetas[k], X, Y)
                if J != expected_flat[k][0] or not np.array_equal(g, expected_flat[k][1]):
                    wrong.append(("flat", k))
            elif k == 4:
                if net.cost(X, Y) != expected_cost:
                    wrong.append(("cost", k))
            else:
                if not np.array_equal(net.predict(X), expected_pred):
                    wrong.append(("predict", k))
                if not np.array_equal(net.mean_hidden_activation(X), expected_rho):
                    wrong.append(("rho", k))

    run_in_threads(6, work)
    assert wrong == []


def test_network_with_used_workspace_still_copies_and_pickles():
    """The workspace lock is never pickled or shared between copies."""
    net = fastbp.Network([3, 4, 2], seed=0)
    X, Y = np.ones((5, 3)), np.ones((5, 2))
    J = net.cost(X, Y)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net), net.copy(),
                  net.astype(np.float32)):
        lock = other.__dict__.get("_work_lock")
        assert lock is None or lock is not net.__dict__.get("_work_lock")
        assert other.cost(X, Y) == pytest.approx(J, rel=1e-6)
