"""Property-based tests (hypothesis) over random architectures, activations,
losses, dtypes and chunk/slot sizes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import _kernels as K
import naive

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, max_width=7, max_m=40):
    depth = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    loss = draw(st.sampled_from(["squared", "cross_entropy"]))
    if loss == "cross_entropy":
        sizes[-1] = max(sizes[-1], 2)
    acts = [draw(st.sampled_from(["sigmoid", "tanh", "identity"])) for _ in range(depth)]
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    m = draw(st.integers(1, max_m))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], m)]
    else:
        Y = rng.random((m, sizes[-1])).astype(dtype)
    net = fastbp.Network(sizes, activations=acts, loss=loss, dtype=dtype, seed=seed, epsilon=0.4)
    return net, X, Y


@SETTINGS
@given(problems(), st.floats(0, 1e-2))
def test_gradient_check_holds_everywhere(problem, lam):
    net, X, Y = problem
    rel = fastbp.check_gradient(net, X, Y, weight_decay=lam)
    assert rel < (1e-8 if net.dtype == np.float64 else 1e-3), (net, rel)


@SETTINGS
@given(problems(max_m=600), st.integers(1, 300), st.integers(1, 20))
def test_results_do_not_depend_on_chunking(problem, chunk, max_slots):
    net, X, Y = problem
    g_default = np.empty(net.n_params, net.dtype)
    g_other = np.empty(net.n_params, net.dtype)
    args = (net.theta, net._sizes, net._activation_codes, net._products,
            fastbp.network.LOSSES[net.loss], X, Y, net.dtype.type(1e-3), np.empty(0, net.dtype),
            True, False, X.shape[0])
    def work(chunk, slots):
        return np.empty((slots, 2 * chunk * sum(net.layer_sizes[1:]) + net.n_params), net.dtype)

    J1 = K.cost_and_gradient_kernel(*args, 256, 16, 2, work(256, 16), g_default)
    J2 = K.cost_and_gradient_kernel(*args, chunk, max_slots, 2, work(chunk, max_slots),
                                    g_other)
    tol = 1e-12 if net.dtype == np.float64 else 2e-5
    assert J2 == pytest.approx(J1, rel=tol, abs=tol)
    scale = max(np.linalg.norm(g_default), 1e-30)
    assert np.linalg.norm(g_other - g_default) <= tol * scale * 10
    # and the same chunking twice, in parallel or serially, is bit-identical
    for threads in (2, 0):
        g_again = np.empty_like(g_other)
        assert K.cost_and_gradient_kernel(*args, chunk, max_slots, threads,
                                          work(chunk, max_slots), g_again) == J2
        np.testing.assert_array_equal(g_again, g_other)


@SETTINGS
@given(problems())
def test_kernels_agree_with_the_naive_reference(problem):
    net, X, Y = problem
    J, gW, gb = net.cost_and_gradient(X, Y, 1e-3)
    ref = net.astype(np.float64)
    J_ref, gW_ref, gb_ref = naive.cost_and_gradient(
        list(ref.weights), list(ref.biases), net.activations, X.astype(np.float64),
        Y.astype(np.float64), 1e-3, loss=net.loss)
    tol = 1e-11 if net.dtype == np.float64 else 1e-4
    assert J == pytest.approx(J_ref, rel=tol, abs=tol)
    for g, r in zip((*gW, *gb), (*gW_ref, *gb_ref)):
        np.testing.assert_allclose(g, r, rtol=tol * 10, atol=tol)


@SETTINGS
@given(problems(max_m=700), st.integers(1, 2))
def test_results_do_not_depend_on_the_thread_count(problem, threads):
    net, X, Y = problem
    before = fastbp.get_num_threads()
    try:
        fastbp.set_num_threads(min(threads, fastbp._threads.numba.config.NUMBA_NUM_THREADS))
        J1, g1 = net.cost_and_gradient_flat(net.theta, X, Y, 1e-3)
        fastbp.set_num_threads(1)
        J2, g2 = net.cost_and_gradient_flat(net.theta, X, Y, 1e-3)
    finally:
        fastbp.set_num_threads(before)
    assert J1 == J2
    np.testing.assert_array_equal(g1, g2)


@SETTINGS
@given(problem=problems())
def test_save_load_round_trip(tmp_path_factory, problem):
    net, X, _ = problem
    path = tmp_path_factory.mktemp("models") / "m.npz"
    fastbp.save(net, path)
    back = fastbp.load(path)
    assert back.layer_sizes == net.layer_sizes and back.activations == net.activations
    assert back.loss == net.loss and back.dtype == net.dtype
    np.testing.assert_array_equal(back.theta, net.theta)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
