"""Kernels against the naive numpy implementation of the seed's matrix form."""

import numpy as np
import pytest

from fastbp import _kernels as K
from fastbp._compiler import BLAS, BLAS_MIN_WEIGHTS, CHUNK, LOOPS, MAX_SLOTS, SIMD
import naive
from helpers import make_data, net_for

TOL = {np.float64: 1e-12, np.float32: 1e-5}

# m values: one partial chunk, exactly one chunk, several slots, more chunks
# than slots (several chunks per slot) with a ragged last chunk.
M_VALUES = [1, 7, CHUNK, 3 * CHUNK + 5, (MAX_SLOTS + 3) * CHUNK + 17]
CASES = [
    ((5, 3, 4), "sigmoid"),                     # loop layers
    ((64, 25, 64), "sigmoid"),                  # the UFLDL autoencoder
    ((80, 60, 70, 3), ("tanh", "relu", "sigmoid")),  # SIMD layers, with column tails
    ((130, 140, 3), ("relu", "sigmoid")),       # a BLAS layer (> SIMD_MAX_WEIGHTS)
    ((2, 8, 1), "identity"),
    ((3, 7, 5, 2), ("tanh", "relu", "sigmoid")),  # narrow and deep: unit-major
]


def rel_err(a, b):
    return np.linalg.norm(np.ravel(a) - np.ravel(b)) / max(np.linalg.norm(np.ravel(b)), 1e-300)


def flat(ws, bs):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(ws, bs)])


def test_cases_cover_every_product_path():
    # Loops, SIMD tiles and BLAS, and for the SIMD and BLAS layers chunks on
    # both sides of the rows from which they are used (m = 1 and 7).
    codes = {int(code) for sizes, acts in CASES for code in net_for(sizes, acts)._products}
    assert codes == {LOOPS, SIMD, BLAS}
    assert min(M_VALUES) < K.SIMD_MIN_ROWS == K.BLAS_MIN_ROWS <= 7
    widths = [a * b for sizes, _ in CASES for a, b in zip(sizes[:-1], sizes[1:])]
    assert min(widths) < BLAS_MIN_WEIGHTS <= max(widths)


def test_cases_cover_both_chunk_layouts():
    # Networks of loop layers with elementwise f store their chunks unit-major
    # (backprop_chunk_units) from UNITS_MIN_ROWS rows on; every other network,
    # and every smaller chunk, row by row.
    layouts = {bool(K.unit_major(net._activation_codes, net._products, K.UNITS_MIN_ROWS))
               for net in (net_for(sizes, acts) for sizes, acts in CASES)}
    assert layouts == {True, False}
    assert min(M_VALUES) < K.UNITS_MIN_ROWS <= CHUNK


@pytest.mark.parametrize("sizes,activations,loss,expected", [
    ((2, 8, 1), "sigmoid", "squared", True),
    ((4, 9, 6, 3), "tanh", "binary_cross_entropy", True),
    ((5, 7, 3), "tanh", "cross_entropy", False),    # softmax output: rows
    ((64, 25, 64), "sigmoid", "squared", False),    # SIMD layers: rows
    ((2, 40, 1), "sigmoid", "squared", False),      # one 80-weight layer: rows
])
def test_unit_major_is_chosen_by_the_network(sizes, activations, loss, expected):
    net = net_for(sizes, activations, loss=loss)
    for rows in (K.UNITS_MIN_ROWS, CHUNK):
        assert K.unit_major(net._activation_codes, net._products, rows) == expected
    assert not K.unit_major(net._activation_codes, net._products, K.UNITS_MIN_ROWS - 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes,loss", [((2, 8, 1), "squared"),
                                        ((4, 9, 6, 3), "binary_cross_entropy"),
                                        ((3, 6, 2), "poisson")])
@pytest.mark.parametrize("m", [K.UNITS_MIN_ROWS, CHUNK, 3 * CHUNK + 5])
def test_unit_major_cost_is_the_gradients_cost_to_the_bit(sizes, loss, m, dtype):
    # cost() runs the same forward pass and sums the same terms in the same
    # order as cost_and_gradient(), so the two J agree exactly; and
    # predict() gives the output layer of that same forward pass.
    net = net_for(sizes, "tanh", dtype=dtype, loss=loss, epsilon=0.3)
    X, Y = make_data(sizes, m, dtype=dtype)
    if loss == "binary_cross_entropy":
        Y = np.round(Y)
    assert K.unit_major(net._activation_codes, net._products, min(m, CHUNK))
    assert net.cost(X, Y, 1e-3) == net.cost_and_gradient(X, Y, 1e-3)[0]
    ref_W = [W.astype(np.float64) for W in net.weights]
    ref_b = [b.astype(np.float64) for b in net.biases]
    expected = naive.forward(ref_W, ref_b, net.activations, X.astype(np.float64))[1][-1]
    assert rel_err(net.predict(X), expected) <= TOL[dtype]


def test_cases_cover_both_loop_orders():
    # Loop layers that widen run their forward product by columns from
    # COLUMNS_MIN_ROWS rows on; a ragged last chunk of fewer rows, row by row.
    widening = [(a, b) for sizes, _ in CASES for a, b in zip(sizes[:-1], sizes[1:])
                if a * b < BLAS_MIN_WEIGHTS and a < b]
    assert widening
    rows = {min(CHUNK, m - c) for m in M_VALUES for c in range(0, m, CHUNK)}
    assert min(rows) < K.COLUMNS_MIN_ROWS <= max(rows)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("n_in,n_out,rows", [(2, 8, 256), (8, 1, 130), (1, 1, 128), (7, 5, 300)])
def test_product_by_columns_is_the_matrix_product(n_in, n_out, rows, transposed, dtype):
    rng = np.random.default_rng(n_in * 100 + n_out)
    x = rng.normal(size=(rows, n_in)).astype(dtype)
    W = rng.normal(size=(n_in, n_out) if transposed else (n_out, n_in)).astype(dtype)
    out = np.full((rows, n_out), np.nan, dtype)
    K.product_by_columns(x, W, transposed, out)
    M = W.T if transposed else W
    expected = x.astype(np.float64) @ M.T.astype(np.float64)
    assert rel_err(out, expected) <= TOL[dtype]
    # Where every product and partial sum is representable (small integers),
    # the result is exact: nothing is lost in the transposed copies.
    xi, Wi = np.round(8 * x).astype(dtype), np.round(8 * W).astype(dtype)
    K.product_by_columns(xi, Wi, transposed, out)
    assert np.array_equal(out, xi @ (Wi if transposed else Wi.T))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", M_VALUES)
@pytest.mark.parametrize("sizes,activations", CASES, ids=lambda c: str(c))
def test_cost_and_gradient_match_naive(sizes, activations, m, dtype):
    net = net_for(sizes, activations, dtype=dtype, epsilon=0.3, seed=m)
    X, Y = make_data(sizes, m, dtype=dtype, seed=m + 1)
    J, gW, gb = net.cost_and_gradient(X, Y, weight_decay=1e-3)

    ref_W = [W.astype(np.float64) for W in net.weights]
    ref_b = [b.astype(np.float64) for b in net.biases]
    J_ref, gW_ref, gb_ref = naive.cost_and_gradient(
        ref_W, ref_b, net.activations, X.astype(np.float64), Y.astype(np.float64), 1e-3)

    assert all(g.dtype == dtype for g in (*gW, *gb))
    assert abs(J - J_ref) <= TOL[dtype] * abs(J_ref)
    assert rel_err(flat(gW, gb), flat(gW_ref, gb_ref)) <= TOL[dtype]
    assert net.cost(X, Y, weight_decay=1e-3) == pytest.approx(J, rel=TOL[dtype])
    h = net.predict(X)
    assert h.dtype == dtype
    assert rel_err(h, naive.forward(ref_W, ref_b, net.activations, X.astype(np.float64))[1][-1]) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_matches_naive(dtype):
    sizes = (10, 12, 4)
    net = net_for(sizes, "tanh", dtype=dtype, loss="cross_entropy")
    X, Y = make_data(sizes, 300, dtype=dtype, loss="cross_entropy")
    J, gW, gb = net.cost_and_gradient(X, Y, weight_decay=1e-3)
    J_ref, gW_ref, gb_ref = naive.cost_and_gradient(
        [W.astype(np.float64) for W in net.weights], [b.astype(np.float64) for b in net.biases],
        net.activations, X.astype(np.float64), Y.astype(np.float64), 1e-3, loss="cross_entropy")
    assert net.activations[-1] == "softmax"
    assert abs(J - J_ref) <= TOL[dtype] * abs(J_ref)
    assert rel_err(flat(gW, gb), flat(gW_ref, gb_ref)) <= TOL[dtype]
    np.testing.assert_allclose(net.predict(X).sum(axis=1), 1, rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("sizes", [(16, 5, 16), (6, 3, 6)])  # rows, unit-major
@pytest.mark.parametrize("m", [50, 2 * CHUNK + 3])
def test_sparse_autoencoder_matches_naive(m, sizes):
    net = net_for(sizes, epsilon=0.2)
    X, _ = make_data(sizes, m)
    kw = dict(sparsity_target=0.05, sparsity_weight=3.0)
    J, gW, gb = net.cost_and_gradient(X, X, 1e-4, **kw)
    J_ref, gW_ref, gb_ref = naive.cost_and_gradient(
        list(net.weights), list(net.biases), net.activations, X, X, 1e-4, **kw)
    assert J == pytest.approx(J_ref, rel=1e-12)
    assert rel_err(flat(gW, gb), flat(gW_ref, gb_ref)) <= 1e-12
    assert net.cost(X, X, 1e-4, **kw) == pytest.approx(J_ref, rel=1e-12)


def test_flat_gradient_is_the_unrolled_gradient():
    sizes = (4, 6, 3)
    net = net_for(sizes)
    X, Y = make_data(sizes, 40)
    J, gW, gb = net.cost_and_gradient(X, Y, 1e-3)
    theta = net.theta.copy()
    J2, g = net.cost_and_gradient_flat(theta, X, Y, 1e-3)
    assert J2 == J
    np.testing.assert_array_equal(g, flat(gW, gb))
    # Evaluating at another θ leaves the network alone.
    J3, _ = net.cost_and_gradient_flat(theta * 2, X, Y, 1e-3)
    assert J3 != J
    np.testing.assert_array_equal(net.theta, theta)
