"""The SIMD tiles (fastbp._simd) against float64 numpy on every edge.

Shapes are drawn so that rows (M) fall on and off the tiles' row blocks
(4, 6, 8), columns (N) below, on and off a vector's lanes (8 float32, 4
float64), and the sum (P) is 1, short or long. Each product also runs inside
a larger buffer filled with a sentinel, which must come back untouched: a
tile that stores or accumulates one lane too far fails here, not in a user's
memory.
"""

import numpy as np
import pytest

from fastbp import _simd as S

TOL = {np.float64: 1e-13, np.float32: 2e-6}
EDGE_M = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 32, 257]
EDGE_N = [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 25, 31, 33, 64]
EDGE_P = [1, 2, 3, 25, 64, 130]


def shapes(n, seed):
    rng = np.random.default_rng(seed)
    return [(int(rng.choice(EDGE_M)), int(rng.choice(EDGE_N)), int(rng.choice(EDGE_P)))
            for _ in range(n)]


def boxed(rng, shape, dtype, sentinel):
    """A C-contiguous array of ``shape`` inside a buffer padded with 9
    sentinels on each side; returns (array, buffer)."""
    size = int(np.prod(shape))
    buf = np.full(size + 18, sentinel, dtype)
    view = buf[9:9 + size].reshape(shape)
    view[...] = rng.normal(size=shape)
    return view, buf


def check_box(buf, size, sentinel):
    assert np.all(buf[:9] == sentinel) and np.all(buf[9 + size:] == sentinel)


def rel(out, expected, scale):
    return np.max(np.abs(out - expected) / scale) if out.size else 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n_in,n_out", shapes(40, 1) + [(256, 64, 25), (256, 25, 64),
                                                             (32, 64, 25), (256, 256, 10)])
def test_the_three_products_match_float64_numpy(rows, n_in, n_out, dtype):
    rng = np.random.default_rng(rows * 10_000 + n_in * 100 + n_out)
    a = rng.normal(size=(rows, n_in)).astype(dtype)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    d = rng.normal(size=(rows, n_out)).astype(dtype)
    W_t = np.full((n_in, n_out), np.nan, dtype)
    S.transpose_into(W, W_t)
    np.testing.assert_array_equal(W_t, W.T)
    a64, W64, d64 = a.astype(np.float64), W.astype(np.float64), d.astype(np.float64)

    z, buf = boxed(rng, (rows, n_out), dtype, -7.0)
    S.simd_forward(a, W, W_t, z)
    check_box(buf, z.size, -7.0)
    assert rel(z, a64 @ W64.T, np.abs(a64) @ np.abs(W64).T) <= TOL[dtype]

    delta, buf = boxed(rng, (rows, n_in), dtype, -7.0)
    S.simd_residual(d, W, W_t, delta)
    check_box(buf, delta.size, -7.0)
    assert rel(delta, d64 @ W64, np.abs(d64) @ np.abs(W64)) <= TOL[dtype]

    dW, buf = boxed(rng, (n_out, n_in), dtype, -7.0)
    before = dW.astype(np.float64)
    S.simd_accumulate(d, a, dW)
    check_box(buf, dW.size, -7.0)
    assert rel(dW, before + d64.T @ a64, np.abs(before) + np.abs(d64).T @ np.abs(a64)) \
        <= TOL[dtype]
    assert z.dtype == delta.dtype == dW.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_out", [1, 3, 4, 5, 8, 9, 16, 17, 25, 64])
@pytest.mark.parametrize("n_in", [1, 4, 7, 8, 12, 24, 25, 33, 64])
def test_transpose_into_is_exact_on_every_edge(n_out, n_in, dtype):
    # Whole vector squares go through the register transpose, the rows and
    # columns past them element by element; nothing outside W_t is written.
    rng = np.random.default_rng(n_out * 100 + n_in)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    W_t, buf = boxed(rng, (n_in, n_out), dtype, -7.0)
    W_t[...] = np.nan
    S.transpose_into(W, W_t)
    assert np.array_equal(W_t, W.T)
    check_box(buf, W.size, -7.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,N,P", shapes(30, 2))
@pytest.mark.parametrize("accumulate", [False, True])
def test_tiled_product_covers_whole_vectors_exactly(M, N, P, accumulate, dtype):
    # Small integers: every product and partial sum is exact in both dtypes,
    # so the tiles must give the matrix product to the bit, and leave the
    # columns past the last whole vector (the callers' loops) untouched.
    rng = np.random.default_rng(M * 10_000 + N * 100 + P)
    L = rng.integers(-3, 4, size=(M, P)).astype(dtype)
    B = rng.integers(-3, 4, size=(P, N)).astype(dtype)
    C0 = rng.integers(-3, 4, size=(M, N)).astype(dtype)
    C = C0.copy()
    done = S.tiled_product(L, B, C, M, N, P, P, 1, accumulate)
    lanes = 8 if dtype == np.float32 else 4
    assert done == N // lanes * lanes
    expected = (C0 if accumulate else 0) + L.astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_array_equal(C[:, :done], expected[:, :done])
    np.testing.assert_array_equal(C[:, done:], C0[:, done:])
    # The same product with L read transposed (ΔW's strides: sli = 1, slp = M).
    C = C0.copy()
    S.tiled_product(np.ascontiguousarray(L.T), B, C, M, N, P, 1, M, accumulate)
    np.testing.assert_array_equal(C[:, :done], expected[:, :done])


def test_results_do_not_depend_on_the_call():
    # Each entry is one fixed FMA chain: repeated calls give the same bits.
    rng = np.random.default_rng(3)
    a, d = rng.normal(size=(257, 64)), rng.normal(size=(257, 25))
    first, again = np.zeros((25, 64)), np.zeros((25, 64))
    S.simd_accumulate(d, a, first)
    S.simd_accumulate(d, a, again)
    np.testing.assert_array_equal(first, again)


def test_layers_and_chunks_get_the_documented_product_path():
    import fastbp
    from fastbp import _kernels as K
    from fastbp._compiler import BLAS, LOOPS, SIMD
    assert list(fastbp.Network([2, 8, 1])._products) == [LOOPS, LOOPS]        # < 64 weights
    assert list(fastbp.Network([64, 25, 64])._products) == [SIMD, SIMD]
    assert list(fastbp.Network([784, 256, 10])._products) == [BLAS, SIMD]     # 200,704 / 2,560
    narrow, medium = np.zeros((25, 64)), np.zeros((70, 60))                   # 1,600 / 4,200
    assert K.product_path(SIMD, 256, narrow) == K.BY_TILES
    assert K.product_path(SIMD, 256, medium) == K.BY_BLAS                    # full chunk, wide
    assert K.product_path(SIMD, 32, medium) == K.BY_TILES                    # SGD's batches
    assert K.product_path(SIMD, 3, narrow) == K.BY_LOOPS                     # < 4 rows
    assert K.product_path(BLAS, 256, narrow) == K.BY_BLAS
    assert K.product_path(BLAS, 3, narrow) == K.BY_LOOPS
    assert K.product_path(LOOPS, 256, narrow) == K.BY_LOOPS
    assert fastbp.Network([60, 70, 3])._layer_blas == [True, False]
