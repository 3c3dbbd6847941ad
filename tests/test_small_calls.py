"""The short path for small calls (issue 9): one compiled call for a batch of
at most CHUNK examples, the finiteness check fused into it, BLAS left alone
when its products are too small to thread. Each must give what the general
path gives, to the bit, and catch what it catches."""

import numpy as np
import pytest

import fastbp
from fastbp import _kernels as K, _threads
from fastbp._compiler import CHUNK, MAX_SLOTS
from fastbp._validation import FINITE_BLOCK, _finite_block, check_finite
from fastbp.network import _NO_SPARSITY

from helpers import make_data, net_for

SHAPES = [([2, 8, 1], "squared"), ([64, 25, 64], "squared"), ([5, 7, 3], "cross_entropy"),
          ([4, 9, 6, 3], "binary_cross_entropy"), ([3, 6, 2], "poisson")]


def _general(net, X, Y, lam, want_gradient):
    """The general kernel (chunks of CHUNK rows, the network's workspace)."""
    grad = np.empty(net.n_params if want_gradient else 0, net.dtype)
    J = K.cost_and_gradient_kernel(
        net.theta, net._sizes, net._activation_codes, net._products, net._loss_code, X, Y,
        net.dtype.type(lam), _NO_SPARSITY[net.dtype.type], want_gradient, False, X.shape[0], CHUNK,
        MAX_SLOTS, 0, net._new_workspace(1), grad)
    return J, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layers,loss", SHAPES)
@pytest.mark.parametrize("m", [1, 3, 64, CHUNK])
def test_small_kernel_is_the_general_kernel_to_the_bit(layers, loss, m, dtype):
    net = net_for(layers, dtype=dtype, loss=loss)
    X, Y = make_data(layers, m, dtype=dtype, loss=loss)
    for want_gradient in (True, False):
        J, grad = _general(net, X, Y, 1e-3, want_gradient)
        small = np.empty(net.n_params if want_gradient else 0, net.dtype)
        code, J_small = K.small_batch_kernel(
            net.theta, net._sizes, net._activation_codes, net._products, net._loss_code, X, Y,
            net.dtype.type(1e-3), _NO_SPARSITY[net.dtype.type], want_gradient, True, small)
        assert code == 0
        assert J_small == J
        np.testing.assert_array_equal(small, grad)
    # and the public methods, which take the short path for these m
    J_pub, gW, gb = net.cost_and_gradient(X, Y, 1e-3)
    J, grad = _general(net, X, Y, 1e-3, True)
    assert J_pub == float(J)
    np.testing.assert_array_equal(np.concatenate([np.r_[w.ravel(), b] for w, b in zip(gW, gb)]),
                                  grad)
    assert net.cost(X, Y, 1e-3) == float(_general(net, X, Y, 1e-3, False)[0])
    J_flat, g_flat = net.cost_and_gradient_flat(net.theta.copy(), X, Y, 1e-3)
    assert J_flat == float(J) and np.array_equal(g_flat, grad.astype(np.float64))


@pytest.mark.parametrize("where,message", [("X", "X contains NaN or Inf"),
                                           ("Y", "Y contains NaN or Inf"),
                                           ("theta", "theta contains NaN or Inf")])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_check_names_what_is_not_finite(where, message, bad, dtype):
    """ReLU's max(z, 0) would swallow a NaN and a sigmoid saturates on ±Inf,
    so the check cannot be left to the cost coming out NaN."""
    net = net_for([3, 5, 2], activations="relu", dtype=dtype)
    X, Y = make_data([3, 5, 2], 4, dtype=dtype)
    theta = net.theta.copy()
    {"X": X, "Y": Y, "theta": theta}[where].reshape(-1)[-1] = bad
    with pytest.raises(ValueError, match=message):
        net.cost_and_gradient_flat(theta, X, Y)
    if where == "theta":
        net._theta[-1] = bad  # as a diverged run would leave it (the setter refuses it)
    for call in (net.cost, net.cost_and_gradient):
        with pytest.raises(ValueError, match=message):
            call(X, Y)


@pytest.mark.parametrize("where,message", [("X", "X contains NaN or Inf"),
                                           ("Y", "Y contains NaN or Inf"),
                                           ("theta", "theta contains NaN or Inf")])
@pytest.mark.parametrize("row", [0, CHUNK + 7, 3 * CHUNK + 4])  # first, middle, last chunk
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_check_inside_the_slots_names_what_is_not_finite(where, message, row, dtype):
    """Above CHUNK rows X and Y are checked chunk by chunk inside the
    kernel's slots; a NaN or ±Inf in any chunk is still named, for the cost,
    the gradient and the flat gradient."""
    net = net_for([3, 5, 2], dtype=dtype)
    X, Y = make_data([3, 5, 2], 3 * CHUNK + 5, dtype=dtype)
    theta = net.theta.copy()
    if where == "theta":
        theta[row % theta.size] = np.inf
        net._theta[row % theta.size] = -np.inf  # as a diverged run would leave it
    else:
        {"X": X, "Y": Y}[where][row, -1] = np.inf if where == "X" else np.nan
    with pytest.raises(ValueError, match=message):
        net.cost_and_gradient_flat(theta, X, Y)
    for call in (net.cost, net.cost_and_gradient):
        with pytest.raises(ValueError, match=message):
            call(X, Y)


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("want_gradient", [True, False])
def test_the_slots_check_gives_nan_in_every_slot_layout(threads, want_gradient):
    # The kernel's side: with ``check`` a non-finite row anywhere makes J
    # NaN, serially and on two threads. Without it an Inf input saturates
    # the sigmoid and the cost comes out finite: the check is what catches it.
    net = net_for([3, 5, 2])
    X, Y = make_data([3, 5, 2], 5 * CHUNK + 3)
    for r in (0, 2 * CHUNK, 5 * CHUNK + 2):
        bad = X.copy()
        bad[r, 0] = np.inf
        grad = np.empty(net.n_params if want_gradient else 0)
        args = (net.theta, net._sizes, net._activation_codes, net._products, net._loss_code,
                bad, Y, 1e-3, _NO_SPARSITY[np.float64], want_gradient)
        rest = (bad.shape[0], CHUNK, MAX_SLOTS, threads, net._new_workspace(MAX_SLOTS), grad)
        with _threads.parallel_region(max(threads, 1)):
            assert np.isnan(K.cost_and_gradient_kernel(*args, True, *rest))
            if not want_gradient:
                assert np.isfinite(K.cost_and_gradient_kernel(*args, False, *rest))
            X_fine = K.cost_and_gradient_kernel(*args[:5], X, *args[6:], True, *rest)
            assert np.isfinite(X_fine)
            assert X_fine == K.cost_and_gradient_kernel(*args[:5], X, *args[6:], False, *rest)


def test_x_is_named_before_theta_when_both_are_not_finite():
    net = net_for([3, 5, 2])
    X, Y = make_data([3, 5, 2], 2 * CHUNK + 1)
    X[-1, 0] = np.inf
    theta = net.theta.copy()
    theta[0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        net.cost_and_gradient_flat(theta, X, Y)


def test_a_cost_that_overflows_on_finite_data_is_returned_not_refused():
    # Finite X, Y, θ whose squared error overflows: J is inf, as computed,
    # and no error blames the data.
    net = fastbp.Network([2, 3, 1], activations="identity", epsilon=1.0, seed=0)
    X, Y = make_data([2, 3, 1], 2 * CHUNK + 1)
    theta = np.full(net.n_params, 1e120)
    J, grad = net.cost_and_gradient_flat(theta, X, Y)
    assert J == np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, FINITE_BLOCK - 1, FINITE_BLOCK, 3 * FINITE_BLOCK + 5])
def test_the_vectorised_scan_finds_every_position(dtype, n):
    """x·0 summed per block: a NaN or ±Inf anywhere, alone among finite
    numbers of any size, makes the block's sum NaN (the compiler must not
    have folded x·0 to 0)."""
    flat = np.linspace(-3e4, 3e4, n).astype(dtype)
    assert _finite_block(flat, 0, n)
    for p in sorted({0, n // 2, FINITE_BLOCK - 1, n - 1} & set(range(n))):
        for bad in (np.nan, np.inf, -np.inf):
            flat2 = flat.copy()
            flat2[p] = bad
            assert not _finite_block(flat2, 0, n)
            assert _finite_block(flat2, 0, p) and _finite_block(flat2, p + 1, n)
    huge = np.full(n, np.finfo(dtype).max, dtype)  # finite, though x·0 sums are of huge x
    assert _finite_block(huge, 0, n)
    check_finite(huge.reshape(1, -1))


def test_small_products_leave_openblas_alone_and_big_ones_pin_it():
    if not all(kind == "openblas" for kind, _, _ in _threads._blas()):
        pytest.skip("only OpenBLAS's thresholds are known")
    assert not _threads.blas_may_thread(_threads.OPENBLAS_SERIAL_SIZE - 1)
    assert _threads.blas_may_thread(_threads.OPENBLAS_SERIAL_SIZE)  # gemv's bound is strict
    # 64-25-64's layers make their products in the SIMD tiles: no BLAS call to pin.
    assert not fastbp.Network([64, 25, 64])._any_blas
    net = fastbp.Network([784, 256, 10])                          # 784→256 on BLAS
    assert net._blas_weights == 784 * 256
    assert _threads.blas_may_thread(1 * net._blas_weights)       # even one example


def test_pinning_restores_every_blas_library():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [get() for _, get, _ in _threads._blas()]
        with _threads.blas_single_threaded():
            assert [get() for _, get, _ in _threads._blas()] == [1] * len(before)
        assert [get() for _, get, _ in _threads._blas()] == before
        net = fastbp.Network([64, 25, 64])
        X = np.random.default_rng(0).random((CHUNK, 64))
        net.cost_and_gradient(X, X)
        assert [get() for _, get, _ in _threads._blas()] == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layers,loss", SHAPES)
@pytest.mark.parametrize("m", [1, 5, CHUNK])
def test_small_predict_is_the_general_predict_to_the_bit(layers, loss, m, dtype):
    net = net_for(layers, dtype=dtype, loss=loss)
    X, _ = make_data(layers, m, dtype=dtype, loss=loss)
    general = np.empty((m, layers[-1]), dtype)
    K.predict_kernel(net.theta, net._sizes, net._activation_codes, net._products, X, CHUNK,
                     MAX_SLOTS, False, general)
    np.testing.assert_array_equal(net.predict(X), general)


@pytest.mark.parametrize("where,message", [("X", "X contains NaN or Inf"),
                                           ("theta", "theta contains NaN or Inf")])
@pytest.mark.parametrize("m", [1, CHUNK + 1])
def test_predict_names_what_is_not_finite(where, message, m):
    net = net_for([3, 5, 2], activations="relu")
    X, _ = make_data([3, 5, 2], m)
    if where == "X":
        X[-1, -1] = np.nan
    else:
        net._theta[0] = np.inf
    with pytest.raises(ValueError, match=message):
        net.predict(X)


@pytest.mark.parametrize("bad", [False, None, "", np.False_, np.array(0.0)])
def test_the_short_path_checks_sparsity_weight_like_the_general_one(bad):
    net = net_for([3, 4, 1])
    X, Y = make_data([3, 4, 1], 10)
    for X_ in (X, np.asfortranarray(X)):  # short path, general path
        with pytest.raises(TypeError, match="sparsity_weight"):
            net.cost(X_, Y, sparsity_weight=bad)
        with pytest.raises(TypeError, match="sparsity_weight"):
            net.cost_and_gradient(X_, Y, sparsity_weight=bad)


def test_a_network_pickled_by_the_previous_release_loads():
    """The previous release pickled its cached θ layout in another format and
    had no cached parameter count; such a state must still load."""
    import pickle
    for layers in ([3, 4, 1], [3, 4, 5, 2]):
        net = net_for(layers)
        X, Y = make_data(layers, 7)
        state = net.__getstate__()
        for key in ("_n_params", "_blas_weights", "_loss_code"):
            del state[key]
        off, old_layout = 0, []  # (start of W, start of b, W's shape, end of b) per layer
        for s_in, s_out in zip(layers[:-1], layers[1:]):
            old_layout.append((off, off + s_out * s_in, (s_out, s_in), off + s_out * (s_in + 1)))
            off += s_out * (s_in + 1)
        state["_layout"] = tuple(old_layout)
        old = fastbp.Network.__new__(fastbp.Network)
        old.__setstate__(state)
        assert old.cost(X, Y, 1e-3) == net.cost(X, Y, 1e-3)
        J, gW, gb = old.cost_and_gradient(X, Y)
        assert [w.shape for w in gW] == [w.shape for w in net.weights]
        again = pickle.loads(pickle.dumps(old))
        assert again.cost(X, Y, 1e-3) == net.cost(X, Y, 1e-3)
        assert "_layout" not in old.__getstate__()


def test_a_network_pickled_before_the_simd_tiles_loads():
    """The release before the SIMD tiles pickled a per-layer ``_use_blas``
    flag instead of the product codes; such a state must load and compute
    with this release's choices."""
    import pickle
    for layers in ([3, 4, 1], [64, 25, 64], [784, 256, 10]):
        net = net_for(layers)
        X, Y = make_data(layers, 300)
        state = net.__getstate__()
        for key in ("_products", "_layer_blas"):
            del state[key]
        state["_use_blas"] = np.array([a * b >= 64 for a, b in zip(layers[:-1], layers[1:])])
        state["_any_blas"] = bool(state["_use_blas"].any())
        old = fastbp.Network.__new__(fastbp.Network)
        old.__setstate__(pickle.loads(pickle.dumps(state)))
        assert "_use_blas" not in old.__dict__
        np.testing.assert_array_equal(old._products, net._products)
        assert old._layer_blas == net._layer_blas and old._any_blas == net._any_blas
        assert old.cost(X, Y, 1e-3) == net.cost(X, Y, 1e-3)
        J, gW, gb = old.cost_and_gradient(X, Y)
        J_new, gW_new, gb_new = net.cost_and_gradient(X, Y)
        assert J == J_new
        for a, b in zip(gW + gb, gW_new + gb_new):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(old.mean_hidden_activation(X),
                                      net.mean_hidden_activation(X))
