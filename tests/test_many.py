"""train_many: every network bit-identical to its own fastbp.train call.

Each test trains copies of the same networks twice — once with train_many,
once with one fastbp.train call per network (on X[rows[i]] where the network
has its own rows) — and compares θ and the histories with ==, never with a
tolerance and never with stored numbers, so any later change to the shared
kernels keeps the two paths honest.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from helpers import make_data, net_for


def nets_for(sizes, n, dtype=np.float64, **kw):
    return [net_for(sizes, dtype=dtype, seed=s, **kw) for s in range(n)]


def per(values, i):
    return values[i] if isinstance(values, list) else values


def assert_same_as_train(sizes, m, n=3, rows=None, dtype=np.float64, loss="squared",
                         activations="sigmoid", per_network=None, **options):
    """train_many on n networks == n train calls, to the bit (θ and history)."""
    X, Y = make_data(sizes, m, dtype, loss=loss)
    nets = nets_for(sizes, n, dtype, loss=loss, activations=activations)
    alone = [net.copy() for net in nets]
    per_network = per_network or {}
    histories = fastbp.train_many(nets, X, Y, rows=rows, **per_network, **options)
    assert len(histories) == n
    for i in range(n):
        X_i, Y_i = (X, Y) if rows is None or rows[i] is None else (X[rows[i]], Y[rows[i]])
        own = {k: per(v, i) for k, v in per_network.items()}
        # train's step-by-step loop (a callback forces it): an independent path,
        # not the compiled steps train_many shares with train's small full-batch runs
        loop = {} if "callback" in options else {"callback": lambda t, J, net: None}
        expected = fastbp.train(alone[i], X_i, Y_i, **own, **options, **loop)
        assert isinstance(histories[i], fastbp.TrainingHistory)
        np.testing.assert_array_equal(histories[i], expected, err_msg=f"history of net {i}")
        assert histories[i].shape == expected.shape
        np.testing.assert_array_equal(nets[i].theta, alone[i].theta, err_msg=f"θ of net {i}")
        assert nets[i].theta.dtype == dtype
        if expected.validation is not None:
            np.testing.assert_array_equal(histories[i].validation, expected.validation)
        assert histories[i].stopped_early == expected.stopped_early
        assert histories[i].best_iteration == expected.best_iteration
    return nets, histories


SWEEP = {"learning_rate": [0.3, 1.0, 2.5], "weight_decay": [0.0, 1e-3, 3e-2]}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [40, 600])  # one chunk (serial driver) and three slots
def test_gradient_descent_sweep_is_bit_identical(dtype, m):
    assert_same_as_train([3, 5, 2], m, dtype=dtype, per_network=SWEEP, iterations=6)


@pytest.mark.parametrize("options", [
    {"momentum": [0.5, 0.9, 0.0]},
    {"momentum": [0.5, 0.9, 0.3], "nesterov": True},
    {"schedule": "invscaling", "power_t": 0.25},
    {"schedule": "step", "step_every": 2, "step_factor": 0.5},
    {"optimizer": "adam", "batch_size": None, "beta1": [0.9, 0.5, 0.0]},
], ids=["momentum", "nesterov", "invscaling", "step", "adam-full-batch"])
def test_full_batch_options_are_bit_identical(options):
    per_network = dict(SWEEP)
    per_network.update({k: v for k, v in options.items() if isinstance(v, list)})
    shared = {k: v for k, v in options.items() if not isinstance(v, list)}
    assert_same_as_train([3, 5, 2], 300, per_network=per_network, iterations=5, **shared)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [
    {"optimizer": "sgd", "batch_size": 16},
    {"optimizer": "sgd", "batch_size": 16, "shuffle": False, "momentum": 0.9},
    {"optimizer": "sgd", "batch_size": 3},  # one part per batch
    {"optimizer": "adam", "batch_size": 32, "schedule": "invscaling"},
], ids=["sgd", "sgd-momentum-in-order", "sgd-tiny-batches", "adam"])
def test_minibatch_is_bit_identical(dtype, options):
    assert_same_as_train([4, 6, 3], 100, dtype=dtype, iterations=3,
                         per_network={**SWEEP, "seed": [0, 7, 3]},
                         **options)


def test_cross_entropy_softmax_networks():
    assert_same_as_train([4, 5, 3], 80, loss="cross_entropy", activations=["tanh", "softmax"],
                         per_network=SWEEP, iterations=4)
    assert_same_as_train([4, 5, 3], 80, loss="cross_entropy", activations=["tanh", "softmax"],
                         per_network=SWEEP, iterations=2, optimizer="sgd", batch_size=10)


def k_fold(m, k):
    folds = np.array_split(np.random.default_rng(1).permutation(m), k)
    return [np.sort(np.concatenate(folds[:j] + folds[j + 1:])) for j in range(k)]


@pytest.mark.parametrize("options", [
    {"iterations": 4},
    {"iterations": 2, "optimizer": "sgd", "batch_size": 20},
    {"iterations": 2, "optimizer": "sgd", "batch_size": 20, "shuffle": False},
], ids=["gd", "sgd", "sgd-in-order"])
def test_own_rows_match_train_on_the_copied_rows(options):
    m = 700
    boot = np.random.default_rng(5).integers(0, m, m)  # bootstrap: repeated rows
    rows = k_fold(m, 3)[:2] + [boot]
    assert_same_as_train([3, 4, 2], m, rows=rows, per_network=SWEEP, **options)
    # None means "all rows", next to networks with their own rows
    assert_same_as_train([3, 4, 2], m, rows=[rows[0], None, boot], per_network=SWEEP,
                         **options)


@pytest.mark.parametrize("rows", [None, "folds"])
def test_sparse_autoencoders_with_their_own_rho_and_beta(rows):
    m = 400
    own_rows = None if rows is None else k_fold(m, 3)
    assert_same_as_train([6, 4, 6], m, rows=own_rows, iterations=4, per_network={
        "sparsity_target": [0.05, 0.1, 0.2], "sparsity_weight": [3.0, 0.0, 0.5],
        "weight_decay": [1e-4, 0.0, 1e-3]})


def test_early_stopping_per_network():
    nets, histories = assert_same_as_train(
        [3, 4, 2], 300, iterations=40, validation_fraction=0.2, n_iter_no_change=3,
        tol=1e-3, per_network={"learning_rate": [0.5, 3.0, 10.0], "seed": [0, 1, 2]})
    assert any(h.stopped_early for h in histories)  # the comparison covered a stop
    assert_same_as_train([3, 4, 2], 300, iterations=6, validation_fraction=0.25,
                         optimizer="sgd", batch_size=25, rows=[None] + k_fold(300, 2))


def test_callback_gets_the_network_index_and_can_stop_one_network():
    X, Y = make_data([3, 4, 2], 50)
    nets = nets_for([3, 4, 2], 3)
    alone = [net.copy() for net in nets]
    seen = []

    def callback(index, iteration, J, net):
        assert net is nets[index]
        # the network it receives holds θ after this iteration
        seen.append((index, iteration, J, net.theta.copy()))
        return index == 1 and iteration == 2

    histories = fastbp.train_many(nets, X, Y, iterations=5, callback=callback, **SWEEP)
    assert [(i, t) for i, t, _, _ in seen] == (
        [(i, t) for t in range(3) for i in range(3)] + [(i, t) for t in (3, 4) for i in (0, 2)])
    assert [len(h) for h in histories] == [5, 3, 5]
    for i in range(3):
        own_seen = []
        expected = fastbp.train(alone[i], X, Y, iterations=5, learning_rate=SWEEP[
            "learning_rate"][i], weight_decay=SWEEP["weight_decay"][i],
            callback=lambda t, J, net: own_seen.append((t, J, net.theta.copy())) or (
                i == 1 and t == 2))
        np.testing.assert_array_equal(histories[i], expected)
        np.testing.assert_array_equal(nets[i].theta, alone[i].theta)
        mine = [(t, J, th) for j, t, J, th in seen if j == i]
        assert len(mine) == len(own_seen)
        for (t, J, th), (t2, J2, th2) in zip(mine, own_seen):
            assert (t, J) == (t2, J2)
            np.testing.assert_array_equal(th, th2)


def test_lbfgs_runs_train_per_network():
    assert_same_as_train([3, 4, 2], 60, iterations=5, optimizer="lbfgs",
                         per_network={"weight_decay": [0.0, 1e-3, 1e-2]},
                         rows=[None] + k_fold(60, 2))


def test_a_diverging_network_is_reported_and_the_others_finish():
    X, Y = make_data([3, 4, 2], 30)
    nets = nets_for([3, 4, 2], 3)
    alone = [net.copy() for net in nets]
    rates = [0.5, 1e308, 1.0]
    with pytest.raises(fastbp.DivergenceError, match=r"network 1 at iteration \d") as info:
        fastbp.train_many(nets, X, Y, iterations=4, learning_rate=rates, weight_decay=1.0)
    assert info.value.networks == [1]
    for i in range(3):
        try:
            expected = fastbp.train(alone[i], X, Y, iterations=4, learning_rate=rates[i],
                                    weight_decay=1.0, callback=lambda t, J, net: None)
        except fastbp.DivergenceError:
            assert i == 1
            expected = None
        else:
            np.testing.assert_array_equal(info.value.histories[i], expected)
        # the diverged network keeps its last finite θ, exactly as train leaves it
        np.testing.assert_array_equal(nets[i].theta, alone[i].theta)
    assert np.all(np.isfinite(nets[1].theta))


def test_a_cost_overflowing_to_inf_with_a_finite_gradient_stops_that_network():
    """θ grows to ~6e307 in the first step; the second step's J overflows to
    inf while its gradient is still finite. train stops there; so must
    train_many, leaving θ as train does (not take the step and record inf)."""
    X, Y = make_data([3, 4, 2], 30)
    nets = nets_for([3, 4, 2], 2)
    alone = nets[1].copy()
    with pytest.raises(fastbp.DivergenceError, match=r"network 1 at iteration 1 ") as info:
        fastbp.train_many(nets, X, Y, iterations=4, learning_rate=[0.5, 1e308],
                          weight_decay=1.0, momentum=0.5)
    with pytest.raises(fastbp.DivergenceError, match=r"^iteration 1: the cost or gradient"):
        fastbp.train(alone, X, Y, iterations=4, learning_rate=1e308, weight_decay=1.0,
                     momentum=0.5, callback=lambda t, J, net: None)
    np.testing.assert_array_equal(nets[1].theta, alone.theta)
    assert info.value.histories[1].tolist() == [info.value.histories[1][0]]


THREADS = """
import json, sys
import numpy as np, fastbp
sys.path.insert(0, {tests!r})
from helpers import make_data, net_for
X, Y = make_data([3, 5, 2], 600)
nets = [net_for([3, 5, 2], seed=s) for s in range(5)]
rows = [None, np.arange(0, 600, 2), None, np.arange(100, 500), None]
h1 = fastbp.train_many(nets, X, Y, iterations=3, learning_rate=[0.1, 0.5, 1, 2, 3], rows=rows)
h2 = fastbp.train_many(nets, X, Y, iterations=2, optimizer="sgd", batch_size=40, rows=rows,
                       seed=[1, 2, 3, 4, 5])
print(json.dumps([fastbp.get_num_threads(), [net.theta.tobytes().hex() for net in nets],
                  [h.tolist() for h in h1 + h2]]))
"""


def test_bit_identical_for_any_thread_count():
    script = THREADS.format(tests=os.path.dirname(__file__))
    results = []
    for threads in ("1", "2", "3"):
        # FASTBP_NUM_THREADS: more threads than this machine's cores on purpose
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, FASTBP_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert [r[0] for r in results] == [1, 2, 3]
    assert results[0][1:] == results[1][1:] == results[2][1:]


def test_X_is_never_copied_per_network(monkeypatch):
    # The kernel receives the caller's X itself (already C-contiguous, right dtype).
    from fastbp import _many_kernels as MK
    X, Y = make_data([3, 4, 2], 50)
    seen = []
    real = MK.full_batch_many

    def spy(thetas, sizes, acts, blas, loss, X_k, *rest):
        seen.append(X_k)
        return real(thetas, sizes, acts, blas, loss, X_k, *rest)

    monkeypatch.setattr(MK, "full_batch_many", spy)
    fastbp.train_many(nets_for([3, 4, 2], 4), X, Y, iterations=2,
                      rows=[np.arange(10), None, np.arange(20, 50), np.arange(5)])
    assert seen and all(x is X for x in seen)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"learning_rate": [0.1, 0.2]}, ValueError, r"learning_rate has 2 values; expected one "
                                                r"value or 3"),
    ({"learning_rate": [0.1, -1, 0.2]}, ValueError, r"learning_rate\[1\] must be > 0"),
    ({"momentum": [0.1, 1.0, 0.2]}, ValueError, r"momentum\[1\] must be in \[0, 1\)"),
    ({"momentum": [0.1, 0.0, 0.2], "nesterov": True}, ValueError, r"momentum\[1\] is 0"),
    ({"weight_decay": [[0.1]] * 3}, ValueError, "weight_decay must be one value or a 1-D"),
    ({"sparsity_weight": [1.0, 0, 0]}, ValueError, r"sparsity_target.*\(network 0\)"),
    ({"seed": [0, 1.5, 2]}, TypeError, r"seed\[1\] must be an integer or None"),
    ({"rows": [np.arange(3)] * 2}, ValueError, "rows has 2 entries; expected 3"),
    ({"rows": [np.ones(40, bool)] * 3}, TypeError, r"rows\[0\] is a boolean mask"),
    ({"rows": [np.arange(3), np.array([0, 40]), None]}, ValueError,
     r"rows\[1\] holds indices outside \[0, 40\)"),
    ({"rows": [np.arange(3), np.array([], int), None]}, ValueError, r"rows\[1\] is empty"),
    ({"rows": [np.arange(3), np.array([0.5]), None]}, TypeError, r"rows\[1\] has dtype"),
    ({"state": {}}, ValueError, "state is not supported by train_many"),
    ({"checkpoint": "x.ckpt"}, ValueError, "checkpoint is not supported by train_many"),
    ({"resume": True}, ValueError, "resume is not supported by train_many"),
    ({"comm": object()}, ValueError, "comm is not supported by train_many"),
    ({"optimizer": "sgd", "sparsity_target": 0.1, "sparsity_weight": 1.0}, ValueError,
     "sparsity needs the full batch"),
    ({"optimizer": "newton"}, ValueError, "optimizer must be one of"),
    ({"callback": 3}, TypeError, "callback must be callable"),
    ({"validation_fraction": 0.001}, ValueError, "leaves no training or no validation"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    X, Y = make_data([3, 4, 2], 40)
    nets = nets_for([3, 4, 2], 3)
    before = [net.theta.copy() for net in nets]
    with pytest.raises(error, match=match):
        fastbp.train_many(nets, X, Y, iterations=1, **kwargs)
    for net, theta in zip(nets, before):  # nothing was trained
        np.testing.assert_array_equal(net.theta, theta)


def test_bad_network_lists_are_named():
    X, Y = make_data([3, 4, 2], 20)
    net = net_for([3, 4, 2])
    with pytest.raises(TypeError, match="got one Network"):
        fastbp.train_many(net, X, Y)
    with pytest.raises(ValueError, match="nets is empty"):
        fastbp.train_many([], X, Y)
    with pytest.raises(TypeError, match=r"nets\[1\] must be a fastbp.Network"):
        fastbp.train_many([net, "net"], X, Y)
    with pytest.raises(ValueError, match=r"nets\[1\] is the same Network object"):
        fastbp.train_many([net, net], X, Y)
    with pytest.raises(ValueError, match=r"nets\[1\] has layer_sizes \(3, 5, 2\)"):
        fastbp.train_many([net, net_for([3, 5, 2])], X, Y)
    with pytest.raises(ValueError, match=r"nets\[1\] has dtype"):
        fastbp.train_many([net, net_for([3, 4, 2], dtype=np.float32)], X, Y)
    with pytest.raises(ValueError, match="X has 2 columns, the network expects 3"):
        fastbp.train_many([net], X[:, :2], Y)
