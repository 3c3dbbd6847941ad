"""The trainer: symmetry breaking, descent, XOR, SGD and L-BFGS."""

import numpy as np
import pytest
from scipy.optimize import minimize

import fastbp
import naive
from helpers import make_data, net_for

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def test_all_equal_initialisation_keeps_hidden_units_identical():
    net = fastbp.Network([2, 3, 1])
    net.theta = np.full(net.n_params, 0.1)
    fastbp.train(net, XOR_X, XOR_Y, learning_rate=0.5, iterations=50)
    W1, b1, W2 = net.weights[0], net.biases[0], net.weights[1]
    # Every hidden unit received the same update: rows of W1, b1 and the
    # columns of W2 are still all equal — the symmetry is never broken.
    np.testing.assert_array_equal(W1, np.broadcast_to(W1[0], W1.shape))
    np.testing.assert_array_equal(b1, np.full_like(b1, b1[0]))
    np.testing.assert_array_equal(W2, np.full_like(W2, W2[0, 0]))
    assert not np.allclose(net.theta, 0.1)  # it did train


def test_normal_initialisation_breaks_the_symmetry():
    net = fastbp.Network([2, 3, 1], init="normal", epsilon=0.01, seed=0)
    assert np.std(net.theta) == pytest.approx(0.01, rel=0.5)
    assert len(np.unique(net.theta)) == net.n_params
    fastbp.train(net, XOR_X, XOR_Y, learning_rate=0.5, iterations=50)
    W1 = net.weights[0]
    assert np.min(np.abs(W1[0] - W1[1])) > 0 and np.min(np.abs(W1[1] - W1[2])) > 0


def test_initialisation_rules():
    net = fastbp.Network([400, 300, 10], init="normal", epsilon=0.01, seed=1)
    assert abs(net.theta.mean()) < 1e-4
    assert net.theta.std() == pytest.approx(0.01, rel=0.01)
    net = fastbp.Network([400, 300, 10], init="uniform", seed=1)
    r = np.sqrt(6) / np.sqrt(400 + 300 + 1)
    assert np.abs(net.weights[0]).max() <= r and np.abs(net.weights[0]).max() > 0.99 * r
    assert np.all(net.biases[0] == 0) and np.all(net.biases[1] == 0)
    same = fastbp.Network([400, 300, 10], init="uniform", seed=1)
    np.testing.assert_array_equal(same.theta, net.theta)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_small_learning_rate_lowers_cost_every_iteration(dtype):
    sizes = (8, 6, 3)
    net = net_for(sizes, dtype=dtype)
    X, Y = make_data(sizes, 100, dtype=dtype)
    history = fastbp.train(net, X, Y, learning_rate=0.05, weight_decay=1e-3, iterations=100)
    assert history.shape == (100,)
    assert np.all(np.diff(history) < 0)
    assert net.theta.dtype == dtype


def test_gradient_descent_matches_naive():
    sizes = (5, 4, 3)
    net = net_for(sizes, "tanh")
    X, Y = make_data(sizes, 300)
    W, b, hist = naive.gradient_descent(list(net.weights), list(net.biases), net.activations,
                                        X, Y, 0.3, 1e-3, 20)
    history = fastbp.train(net, X, Y, learning_rate=0.3, weight_decay=1e-3, iterations=20)
    np.testing.assert_allclose(history, hist, rtol=1e-12)
    for l in range(2):
        np.testing.assert_allclose(net.weights[l], W[l], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(net.biases[l], b[l], rtol=1e-11, atol=1e-14)


def test_xor_is_learned():
    net = fastbp.Network([2, 3, 1], epsilon=1.0, seed=1)
    history = fastbp.train(net, XOR_X, XOR_Y, learning_rate=2.0, iterations=3000)
    assert history[-1] < 0.01
    np.testing.assert_array_equal(net.predict(XOR_X).round(), XOR_Y)


def test_callback_sees_every_iteration_and_can_stop():
    seen = []
    net = fastbp.Network([2, 3, 1])
    history = fastbp.train(net, XOR_X, XOR_Y, iterations=50,
                           callback=lambda it, J, n: seen.append((it, J, n)) or it == 9)
    assert len(history) == 10 and [s[0] for s in seen] == list(range(10))
    assert [s[1] for s in seen] == list(history) and seen[0][2] is net


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 32, 300])
def test_sgd_epoch_matches_naive(batch_size, shuffle):
    sizes = (6, 5, 4)
    net = net_for(sizes, "sigmoid", epsilon=0.3)
    X, Y = make_data(sizes, 301)
    order = np.random.default_rng(7).permutation(301) if shuffle else np.arange(301)
    W, b = naive.sgd_epoch(list(net.weights), list(net.biases), net.activations, X, Y,
                           0.2, 1e-3, batch_size, order)
    fastbp.train(net, X, Y, optimizer="sgd", learning_rate=0.2, weight_decay=1e-3,
                 iterations=1, batch_size=batch_size, shuffle=shuffle, seed=7)
    for l in range(2):
        np.testing.assert_allclose(net.weights[l], W[l], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(net.biases[l], b[l], rtol=1e-10, atol=1e-13)


def test_sgd_learns_and_reports_epoch_costs():
    sizes = (8, 6, 8)
    net = fastbp.Network(sizes, epsilon=0.1)
    X, _ = make_data(sizes, 512)
    history = fastbp.train(net, X, X, optimizer="sgd", learning_rate=1.0, iterations=30,
                           batch_size=16)
    assert history.shape == (30,) and history[-1] < 0.5 * history[0]


def test_lbfgs_through_scipy_matches_train_lbfgs():
    sizes = (6, 4, 6)
    X, _ = make_data(sizes, 200)
    a = fastbp.Network(sizes, epsilon=0.1)
    b = a.copy()
    res = minimize(a.cost_and_gradient_flat, a.theta.copy(), args=(X, X, 1e-4), jac=True,
                   method="L-BFGS-B", options={"maxiter": 40})
    history = fastbp.train(b, X, X, weight_decay=1e-4, iterations=40, optimizer="lbfgs")
    np.testing.assert_allclose(b.theta, res.x, rtol=1e-10, atol=1e-12)
    assert history[-1] == pytest.approx(res.fun, rel=1e-12)
    assert res.fun < 0.5 * a.cost(X, X, 1e-4)


@pytest.mark.parametrize("optimizer", ["gd", "sgd"])
def test_divergence_stops_with_the_last_finite_parameters(optimizer):
    net = fastbp.Network([2, 3, 1], activations="identity", epsilon=1.0)
    X = np.array([[1e150, -1e150], [1e150, 1e150]])
    Y = np.array([[1.0], [0.0]])
    with pytest.raises(fastbp.DivergenceError, match="iteration|epoch"):
        fastbp.train(net, X, Y, learning_rate=1e10, iterations=20, optimizer=optimizer)
    assert np.all(np.isfinite(net.theta))


# ---------------------------------------------------------------- bad data in mini-batch epochs
def _state_copy(state):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


@pytest.mark.parametrize("optimizer,shuffle", [("sgd", False), ("sgd", True), ("adam", True)])
@pytest.mark.parametrize("where,row", [("X", 0), ("X", 157), ("Y", 299), ("Y", 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minibatch_epochs_name_bad_data_and_keep_everything(optimizer, shuffle, where, row,
                                                            dtype):
    """A mini-batch epoch checks each batch's rows as it reads them instead of
    scanning X and Y before training. A NaN or ±Inf in the first, a middle or
    the last batch is still named, and the network and the optimizer state
    (moments, step count, shuffling RNG, iteration) are as they were, so a
    run continued with clean data is the run that never saw the bad data."""
    sizes = (6, 5, 4)
    X, Y = make_data(sizes, 301, dtype=dtype)
    kwargs = dict(optimizer=optimizer, learning_rate=0.05, batch_size=32, shuffle=shuffle,
                  seed=3, weight_decay=1e-3)
    net = net_for(sizes, "sigmoid", epsilon=0.3, dtype=dtype)
    state = {}
    fastbp.train(net, X, Y, iterations=1, state=state, **kwargs)
    clean = net.copy()
    clean_state = _state_copy(state)

    bad = (X if where == "X" else Y).copy()
    bad[row, 1] = np.inf if where == "X" else np.nan  # an Inf input saturates the sigmoid
    data = (bad, Y) if where == "X" else (X, bad)
    with pytest.raises(ValueError, match=f"{where} contains NaN or Inf"):
        fastbp.train(net, *data, iterations=2, state=state, **kwargs)
    np.testing.assert_array_equal(net.theta, clean.theta)
    assert state.keys() == clean_state.keys()
    for key, value in clean_state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(state[key], value)
        else:
            assert state[key] == value, key

    fastbp.train(net, X, Y, iterations=2, state=state, **kwargs)
    fastbp.train(clean, X, Y, iterations=2, state=clean_state, **kwargs)
    np.testing.assert_array_equal(net.theta, clean.theta)


def test_bad_data_is_named_even_when_no_epoch_runs():
    X, Y = make_data((3, 4, 2), 40)
    X[5, 0] = np.nan
    net = net_for((3, 4, 2))
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        fastbp.train(net, X, Y, optimizer="sgd", batch_size=8, iterations=0)


@pytest.mark.parametrize("parts", [1, 2])
def test_the_epoch_kernels_check_stops_before_the_bad_batchs_update(parts):
    # The kernel's side: with ``check`` the epoch returns NaN at the batch
    # holding an Inf and makes no update from it (the batches before it are
    # applied; train restores θ). Without the check the Inf input saturates
    # the sigmoid, and the epoch's cost comes out finite.
    from fastbp import _kernels as K
    from fastbp._compiler import CHUNK
    sizes = (3, 5, 2)
    X, Y = make_data(sizes, 64)
    X[40, 1] = np.inf  # in the second batch of 32
    results = {}
    for check in (True, False):
        net = net_for(sizes, "sigmoid", epsilon=0.3)
        moments, step = np.zeros((2, net.n_params)), np.zeros(1, np.int64)
        J = K.minibatch_epoch_kernel(
            net.theta, net._sizes, net._activation_codes, net._products, net._loss_code, X, Y,
            np.arange(64), False, 32, parts, 0.0, CHUNK, K.PLAIN, 0.1, 0.0, 0.9, 0.999, 1e-8,
            moments, step, check, False)
        results[check] = J, net.theta.copy()
    assert np.isnan(results[True][0]) and np.isfinite(results[False][0])
    # the first batch's update alone, as one epoch over the first 32 rows makes it
    net = net_for(sizes, "sigmoid", epsilon=0.3)
    fastbp.train(net, X[:32], Y[:32], optimizer="sgd", learning_rate=0.1, batch_size=32,
                 shuffle=False, iterations=1)
    np.testing.assert_array_equal(results[True][1], net.theta)


def test_shuffling_draws_what_a_fresh_generator_would():
    """train's shuffling Generator (an integer seed's first state is cached,
    draws run on a per-thread PCG64 loaded from ``state["rng"]``) visits the
    rows in the orders ``np.random.default_rng(seed)`` gives, leaves
    ``state["rng"]`` where that generator is after them, and hands the caller
    a state of its own: changing it does not change the next run's draws."""
    sizes = (5, 4, 3)
    X, Y = make_data(sizes, 50)
    kw = dict(optimizer="sgd", learning_rate=0.05, batch_size=50, seed=11)
    state = {}
    net = net_for(sizes)
    fastbp.train(net, X, Y, iterations=3, state=state, **kw)
    rng = np.random.default_rng(11)
    ref = net_for(sizes)
    for _ in range(3):  # one batch of all 50 rows: the order only permutes the sum
        order = rng.permutation(50)
        fastbp.train(ref, X[order], Y[order], iterations=1, shuffle=False, **kw)
    np.testing.assert_allclose(net.theta, ref.theta, rtol=1e-13, atol=0)
    assert state["rng"] == rng.bit_generator.state

    untouched = {}  # no epoch runs: state["rng"] is the seed's first state
    fastbp.train(net_for(sizes), X, Y, iterations=0, state=untouched, **kw)
    untouched["rng"]["state"]["state"] += 1  # the caller's own copy, not the cached one
    again = {}
    fastbp.train(net_for(sizes), X, Y, iterations=2, state=again, **kw)
    rng = np.random.default_rng(11)
    rng.permutation(50), rng.permutation(50)
    assert again["rng"] == rng.bit_generator.state


def test_training_from_a_callback_leaves_the_outer_shuffling_alone():
    """The per-thread generator holds nothing between draws: a train() run
    from inside another's callback, with its own seed, does not change the
    outer run's row orders."""
    sizes = (5, 4, 3)
    X, Y = make_data(sizes, 60)
    kw = dict(optimizer="sgd", learning_rate=0.05, batch_size=8, seed=2)
    quiet = net_for(sizes)
    fastbp.train(quiet, X, Y, iterations=4, **kw)
    other = net_for(sizes)

    def nested(t, J, net):
        fastbp.train(other, X, Y, iterations=1, **dict(kw, seed=100 + t))

    busy = net_for(sizes)
    fastbp.train(busy, X, Y, iterations=4, callback=nested, **kw)
    np.testing.assert_array_equal(busy.theta, quiet.theta)
    assert not np.array_equal(other.theta, net_for(sizes).theta)  # the nested runs trained


def test_a_generator_seed_is_still_drawn_from():
    """A Generator passed as ``seed`` is the one that shuffles (it advances),
    as before the cached integer seeds."""
    sizes = (5, 4, 3)
    X, Y = make_data(sizes, 40)
    gen = np.random.default_rng(4)
    before = gen.bit_generator.state
    fastbp.train(net_for(sizes), X, Y, optimizer="sgd", batch_size=8, iterations=2, seed=gen)
    expected = np.random.default_rng(4)
    expected.permutation(40), expected.permutation(40)
    assert gen.bit_generator.state == expected.bit_generator.state != before


# ---------------------------------------------------------------- full-batch steps in blocks
def _no_op(t, J, net):
    """A callback: train then runs step by step, with Python around each step."""
    return None


def _train_both_ways(sizes, m, dtype, iterations=12, runs=1, **options):
    """The same run twice: as train runs it by default (small steps: compiled
    blocks) and step by step (a callback forces the Python loop). Returns
    both networks, states and histories (the last of ``runs`` consecutive
    calls that share one state)."""
    X, Y = make_data(sizes, m, dtype)
    out = []
    for callback in (None, _no_op):
        net, state = net_for(sizes, dtype=dtype, seed=3), {}
        for _ in range(runs):
            history = fastbp.train(net, X, Y, iterations=iterations, state=state,
                                   callback=callback, **options)
        out.append((net, state, history))
    return out


def _assert_same_run(blocks, steps):
    (net_a, state_a, hist_a), (net_b, state_b, hist_b) = blocks, steps
    np.testing.assert_array_equal(hist_a, hist_b)
    assert hist_a.shape == hist_b.shape
    np.testing.assert_array_equal(net_a.theta, net_b.theta)
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes,m", [([2, 8, 1], 1), ([3, 5, 2], 256), ([3, 5, 2], 700),
                                     ([6, 4, 5, 3], 90)],
                         ids=["one-example", "one-chunk", "three-slots", "two-hidden"])
@pytest.mark.parametrize("options", [
    {"weight_decay": 1e-3},
    {"momentum": 0.9, "schedule": "step", "step_every": 3},
    {"momentum": 0.5, "nesterov": True, "schedule": "invscaling", "power_t": 0.3},
    {"optimizer": "adam", "batch_size": None, "learning_rate": 0.01},
], ids=["gd", "momentum-step", "nesterov-invscaling", "adam-full-batch"])
def test_full_batch_blocks_match_the_step_by_step_loop(dtype, sizes, m, options):
    """Small full-batch steps run in compiled blocks (no Python per step);
    θ, the history and every entry of the state are bit-identical to the
    step-by-step loop, for every update rule and schedule, over two calls
    that continue one state."""
    blocks, steps = _train_both_ways(sizes, m, dtype, runs=2, **options)
    _assert_same_run(blocks, steps)
    assert blocks[1]["iteration"] == 24


def test_full_batch_blocks_with_sparsity_and_across_block_boundaries(monkeypatch):
    """The sparse autoencoder's term (ρ̂ over one chunk and over three), and
    runs cut into several blocks (here of 5 steps; at most BLOCK_STEPS), give
    the step-by-step loop's bits."""
    from fastbp import training
    monkeypatch.setattr(training, "BLOCK_STEPS", 5)
    for dtype, m in ((np.float64, 60), (np.float32, 60), (np.float64, 700)):
        blocks, steps = _train_both_ways([8, 3, 8], m, dtype, iterations=17,
                                         sparsity_target=0.1, sparsity_weight=3.0,
                                         weight_decay=1e-4)
        _assert_same_run(blocks, steps)
        assert len(blocks[2]) == 17


def test_full_batch_blocks_are_taken_only_with_nothing_to_do_between_steps(monkeypatch):
    """The blocks run exactly when train has nothing to do between steps and
    a step is too small for threads; a callback, early stopping, or a step
    worth threads takes the step-by-step loop."""
    from fastbp import _kernels as K
    from fastbp import _threads
    calls = []
    real = K.full_batch_steps

    def spy(*args):
        calls.append(args[11].shape[0])  # the block's steps
        return real(*args)

    monkeypatch.setattr(K, "full_batch_steps", spy)
    X, Y = make_data([3, 5, 2], 100)
    fastbp.train(net_for([3, 5, 2]), X, Y, iterations=7)
    assert calls == [7]
    fastbp.train(net_for([3, 5, 2]), X, Y, iterations=7, callback=_no_op)
    fastbp.train(net_for([3, 5, 2]), X, Y, iterations=7, validation_fraction=0.2)
    fastbp.train(net_for([3, 5, 2]), X, Y, iterations=2, optimizer="sgd")
    monkeypatch.setattr(_threads, "PARALLEL_MIN_FLOPS", 1.0)
    monkeypatch.setattr(_threads, "get_num_threads", lambda: 2)
    X, Y = make_data([3, 5, 2], 300)
    fastbp.train(net_for([3, 5, 2]), X, Y, iterations=3)
    assert calls == [7]


@pytest.mark.parametrize("case", ["gradient", "inf-cost", "update"])
def test_full_batch_blocks_diverge_as_the_step_by_step_loop_does(case):
    """A step whose cost or gradient is not finite (θ untouched), or whose
    update is (θ and the moments restored, as the loop leaves them): the
    same error, the same θ and the same state either way."""
    if case == "gradient":
        # Σ_j W_ij x_j = 2e308 overflows in the first forward pass: J is not finite.
        sizes, options = [2, 3, 1], {"learning_rate": 0.1}
        X, Y = np.full((2, 2), 1e308), np.zeros((2, 1))

        def make():
            net = fastbp.Network(sizes, activations="identity")
            net.theta = np.ones(net.n_params)
            return net
    elif case == "inf-cost":
        # θ grows to ~6e307 in the first step; the second's J overflows to inf
        # while its gradient is still finite.
        sizes, options = [3, 4, 2], {"learning_rate": 1e308, "weight_decay": 1.0,
                                    "momentum": 0.5}
        X, Y = make_data(sizes, 30)
        make = lambda: net_for(sizes, seed=1)
    else:
        # J and ∇J finite at θ = 5, but α ∇J overflows θ in the first step.
        sizes, options = [3, 4, 2], {"learning_rate": 1e308, "weight_decay": 1.0,
                                    "momentum": 0.5}
        X, Y = make_data(sizes, 30)

        def make():
            net = net_for(sizes)
            net.theta = np.full(net.n_params, 5.0)
            return net
    results = []
    for callback in (None, _no_op):
        net, state = make(), {}
        with pytest.raises(fastbp.DivergenceError) as info:
            fastbp.train(net, X, Y, iterations=20, state=state, callback=callback, **options)
        results.append((str(info.value), net.theta.copy(), state))
    (msg_a, theta_a, state_a), (msg_b, theta_b, state_b) = results
    assert msg_a == msg_b
    assert ("updated parameters" if case == "update" else "gradient is not finite") in msg_a
    assert msg_a.startswith("iteration 1:" if case == "inf-cost" else "iteration 0:")
    np.testing.assert_array_equal(theta_a, theta_b)
    assert np.all(np.isfinite(theta_a))
    for key in state_b:
        np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=key)


def test_an_interrupt_as_a_block_returns_leaves_the_state_with_theta(monkeypatch):
    """Ctrl-C lands while a block of steps runs, and Python raises the
    KeyboardInterrupt as the block returns: the steps it made are counted in
    state["iteration"], so continuing with the same state is the run that was
    never interrupted."""
    from fastbp import _kernels as K
    from fastbp import training
    monkeypatch.setattr(training, "BLOCK_STEPS", 4)
    real, blocks = K.full_batch_steps, []

    def interrupted_after_the_second_block(*args):
        out = real(*args)
        blocks.append(out)
        if len(blocks) == 2:
            raise KeyboardInterrupt
        return out

    X, Y = make_data([3, 5, 2], 50)
    options = dict(learning_rate=0.5, momentum=0.9, schedule="invscaling")
    net, state = net_for([3, 5, 2]), {}
    monkeypatch.setattr(K, "full_batch_steps", interrupted_after_the_second_block)
    with pytest.raises(KeyboardInterrupt):
        fastbp.train(net, X, Y, iterations=10, state=state, **options)
    monkeypatch.setattr(K, "full_batch_steps", real)
    assert state["iteration"] == 8
    fastbp.train(net, X, Y, iterations=2, state=state, **options)
    whole, whole_state = net_for([3, 5, 2]), {}
    fastbp.train(whole, X, Y, iterations=10, state=whole_state, callback=_no_op, **options)
    np.testing.assert_array_equal(net.theta, whole.theta)
    for key in whole_state:
        np.testing.assert_array_equal(state[key], whole_state[key], err_msg=key)
