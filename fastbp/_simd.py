"""Register-blocked SIMD products for layers of a few dozen units.

OpenBLAS runs the products of a 64-25-64 network's 256-row chunk at 22–34
GFLOP/s in float64 on one core, against 41 for a large dgemm, and numba's
own loops at 2–7 (``asv_bench/kernel_choices.py``). The tiles below keep an
MR × NV block of vector accumulators in registers — the micro-kernel that
BLAS libraries (and libxsmm, for small products) are built on — written as
LLVM vector IR from a numba ``@intrinsic``, with ``llvm.fmuladd`` on
<W × float> (W = 8 lanes of float32 or 4 of float64: one AVX2 register):
a fused multiply-add where the CPU has one, a multiply and an add where it
has not (``llvm.fma`` would call a slow software fma there).

Every product of the engine is one shape of a single operation,

    C[i, j] (+)= Σ_{p < P} L[i·sli + p·slp] · B[p, j]      0 ≤ i < M,

with B's rows contiguous along j and C's rows contiguous along j:

* forward      z = a Wᵀ:    i = example, p = input unit,  L = a,  B = Wᵀ (packed)
* residual     δ = δ' W:    i = example, p = output unit, L = δ', B = W
* accumulate   ΔW += δᵀ a:  i = output unit, p = example, L = δ,  B = a

:func:`tiled_product` covers the columns j < N − N mod W with tiles; the
callers in :mod:`fastbp._kernels` compute the last N mod W columns in plain
loops. Each C[i, j] of a tile is one multiply-add chain in the order
p = 0, 1, …, P−1, started from zero (then added to C when accumulating;
:func:`simd_accumulate` adds one such chain per panel of PANEL_ROWS rows,
and sums its tail columns over all rows before adding): deterministic, the
same bits for any thread count, since every choice depends on the
operands' shapes only.

The vector types are generic LLVM IR: on a machine without AVX2 LLVM splits
them into what the target has (slower, the same numbers).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from ._compiler import kernel

#: Lanes of one vector register (AVX2: 256 bits) per dtype.
LANES = {types.float32: 8, types.float64: 4}


def _make_tile(MR, NV, accumulate):
    """The MR × (NV·W) tile as a numba intrinsic:

    tile(L, B, C, M, j0, P, sli, slp, sb, csi) computes, for every i < M and
    j0 ≤ j < j0 + NV·W, T = Σ_p L[i·sli + p·slp] · B[p·sb + j] and stores
    C[i·csi + j] = T (or += T when ``accumulate``). Offsets count elements
    from each array's first; rows past M in the last block repeat row M−1
    and are not stored.
    """

    @intrinsic
    def tile(typingctx, L, B, C, M, j0, P, sli, slp, sb, csi):
        for array in (L, B, C):
            if not (isinstance(array, types.Array) and array.layout == "C"):
                raise TypingError("SIMD tiles need C-contiguous arrays")
        if not (L.dtype == B.dtype == C.dtype) or C.dtype not in LANES:
            raise TypingError("SIMD tiles need float32 or float64 arrays of one dtype")
        for n in (M, j0, P, sli, slp, sb, csi):
            if not isinstance(n, types.Integer):
                raise TypingError("SIMD tile offsets must be integers")
        dtype = C.dtype
        W = LANES[dtype]
        signature = types.none(L, B, C, M, j0, P, sli, slp, sb, csi)

        def codegen(context, builder, sig, args):
            ft = context.get_value_type(dtype)
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            vt = ir.VectorType(ft, W)
            align = dtype.bitwidth // 8
            l_arr, b_arr, c_arr = (context.make_array(t)(context, builder, v)
                                   for t, v in zip(sig.args[:3], args[:3]))
            M_, j0_, P_, sli_, slp_, sb_, csi_ = (
                context.cast(builder, v, t, types.int64) for v, t in zip(args[3:], sig.args[3:]))
            lp, bp, cp = l_arr.data, b_arr.data, c_arr.data
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                "llvm.fmuladd.v%d%s" % (W, "f32" if W == 8 else "f64"))
            zero = ir.Constant(vt, [ir.Constant(ft, 0.0)] * W)
            splat_mask = ir.Constant(ir.VectorType(i32, W), [0] * W)

            def const(k):
                return ir.Constant(i64, k)

            def at(base, index):
                return builder.gep(base, [index], inbounds=True)

            def vector_at(base, index):
                return builder.bitcast(at(base, index), vt.as_pointer())

            def splat(x):
                v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(i32, 0))
                return builder.shuffle_vector(v, v, splat_mask)

            acc = [[cgutils.alloca_once(builder, vt) for _ in range(NV)] for _ in range(MR)]
            last = builder.sub(M_, const(1))
            with cgutils.for_range_slice(builder, const(0), M_, const(MR)) as (i0, _):
                l_rows = []
                for ii in range(MR):
                    i = builder.add(i0, const(ii))
                    i = builder.select(builder.icmp_signed("<", i, M_), i, last)
                    l_rows.append(builder.mul(i, sli_))
                for row in acc:
                    for a in row:
                        builder.store(zero, a)
                with cgutils.for_range(builder, P_) as loop:
                    p = loop.index
                    b_row = builder.add(builder.mul(p, sb_), j0_)
                    bv = [builder.load(vector_at(bp, builder.add(b_row, const(k * W))),
                                       typ=vt, align=align) for k in range(NV)]
                    l_col = builder.mul(p, slp_)
                    for ii in range(MR):
                        x = splat(builder.load(at(lp, builder.add(l_rows[ii], l_col)), typ=ft))
                        for k in range(NV):
                            builder.store(builder.call(fma, [x, bv[k], builder.load(acc[ii][k])]),
                                          acc[ii][k])
                for ii in range(MR):
                    i = builder.add(i0, const(ii))

                    def store():
                        c_row = builder.add(builder.mul(i, csi_), j0_)
                        for k in range(NV):
                            ptr = vector_at(cp, builder.add(c_row, const(k * W)))
                            value = builder.load(acc[ii][k])
                            if accumulate:
                                value = builder.fadd(builder.load(ptr, typ=vt, align=align), value)
                            builder.store(value, ptr, align=align)

                    if ii == 0:
                        store()
                    else:
                        with builder.if_then(builder.icmp_signed("<", i, M_), likely=True):
                            store()
            return context.get_dummy_value()

        return signature, codegen

    return tile


# Register blocks: MR rows × NV vectors, at most 12 accumulators so that the
# accumulators, NV loads of B and one broadcast fit the 16 ymm registers.
_tile_4x3, _tile_4x3_add = _make_tile(4, 3, False), _make_tile(4, 3, True)
_tile_6x2, _tile_6x2_add = _make_tile(6, 2, False), _make_tile(6, 2, True)
_tile_8x1, _tile_8x1_add = _make_tile(8, 1, False), _make_tile(8, 1, True)


@kernel()
def lanes(C):
    """W: the lanes of one vector register for C's dtype."""
    return 8 if C.itemsize == 4 else 4


@kernel()
def tiled_product(L, B, C, M, N, P, sli, slp, accumulate):
    """C[i, j] (+)= Σ_{p<P} L[i·sli + p·slp] · B[p, j] for i < M and the
    columns j < N − N mod W that whole vectors cover; returns that bound (the
    caller computes columns from it to N). B : (P, ≥ N), C : (≥ M, ≥ N), both
    C-contiguous; their row strides are their widths.

    The vectors are cut into tiles of 3, else 2, else 1 (4 as 2 + 2)."""
    W = lanes(C)
    sb = B.shape[1]
    csi = C.shape[1]
    n_vectors = N // W
    v = 0
    while v < n_vectors:
        left = n_vectors - v
        j0 = v * W
        if left >= 3 and left != 4:
            if accumulate:
                _tile_4x3_add(L, B, C, M, j0, P, sli, slp, sb, csi)
            else:
                _tile_4x3(L, B, C, M, j0, P, sli, slp, sb, csi)
            v += 3
        elif left >= 2:
            if accumulate:
                _tile_6x2_add(L, B, C, M, j0, P, sli, slp, sb, csi)
            else:
                _tile_6x2(L, B, C, M, j0, P, sli, slp, sb, csi)
            v += 2
        else:
            if accumulate:
                _tile_8x1_add(L, B, C, M, j0, P, sli, slp, sb, csi)
            else:
                _tile_8x1(L, B, C, M, j0, P, sli, slp, sb, csi)
            v += 1
    return n_vectors * W


# --------------------------------------------------------------------------
# The three products of a layer, each with its last N mod W columns in loops
# --------------------------------------------------------------------------
@intrinsic
def _transpose_block(typingctx, A, A_t, i0, j0):
    """A_t[j0 + c, i0 + r] = A[i0 + r, j0 + c] for r, c < W (A, A_t 2-D,
    C-contiguous): W rows of A loaded as vectors and transposed in registers
    in log2(W) rounds of shuffles, each swapping one bit of the row index with
    one of the column index (round d: rows i and i + d, i & d = 0, exchange
    the lanes whose bit d differs), then stored as W rows of A_t."""
    for array in (A, A_t):
        if not (isinstance(array, types.Array) and array.layout == "C" and array.ndim == 2):
            raise TypingError("a block transpose needs 2-D C-contiguous arrays")
    if A.dtype != A_t.dtype or A.dtype not in LANES:
        raise TypingError("a block transpose needs float32 or float64 arrays of one dtype")
    if not (isinstance(i0, types.Integer) and isinstance(j0, types.Integer)):
        raise TypingError("block offsets must be integers")
    dtype = A.dtype
    W = LANES[dtype]
    signature = types.none(A, A_t, i0, j0)

    def codegen(context, builder, sig, args):
        ft = context.get_value_type(dtype)
        i64 = ir.IntType(64)
        vt = ir.VectorType(ft, W)
        mask_type = ir.VectorType(ir.IntType(32), W)
        align = dtype.bitwidth // 8
        a, a_t = (context.make_array(t)(context, builder, v)
                  for t, v in zip(sig.args[:2], args[:2]))
        row0, col0 = (context.cast(builder, v, t, types.int64)
                      for v, t in zip(args[2:], sig.args[2:]))
        n_a = builder.extract_value(a.shape, 1)
        n_t = builder.extract_value(a_t.shape, 1)

        def vector_at(base, row, col, width):
            index = builder.add(builder.mul(row, width), col)
            return builder.bitcast(builder.gep(base, [index], inbounds=True), vt.as_pointer())

        rows = [builder.load(vector_at(a.data, builder.add(row0, ir.Constant(i64, r)), col0, n_a),
                             typ=vt, align=align) for r in range(W)]
        d = 1
        while d < W:
            low = [p if not p & d else W + p - d for p in range(W)]
            high = [p + d if not p & d else W + p for p in range(W)]
            for i in range(W):
                if not i & d:
                    x, y = rows[i], rows[i + d]
                    rows[i] = builder.shuffle_vector(x, y, ir.Constant(mask_type, low))
                    rows[i + d] = builder.shuffle_vector(x, y, ir.Constant(mask_type, high))
            d *= 2
        for c in range(W):
            builder.store(rows[c], vector_at(a_t.data, builder.add(col0, ir.Constant(i64, c)),
                                             row0, n_t), align=align)
        return context.get_dummy_value()

    return signature, codegen


@kernel()
def transpose_into(W, W_t):
    """W_t := Wᵀ, a packed (s_l, s_{l+1}) copy of W (s_{l+1}, s_l): whole
    vector-square blocks transposed in registers (:func:`_transpose_block`),
    the last rows and columns that no block covers element by element."""
    n_out, n_in = W.shape
    V = lanes(W)
    rows_done = n_out - n_out % V
    cols_done = n_in - n_in % V
    for i0 in range(0, rows_done, V):
        for j0 in range(0, cols_done, V):
            _transpose_block(W, W_t, i0, j0)
        for i in range(i0, i0 + V):
            for j in range(cols_done, n_in):
                W_t[j, i] = W[i, j]
    for i in range(rows_done, n_out):
        for j in range(n_in):
            W_t[j, i] = W[i, j]


@kernel()
def tiled_rows_product(x, B, B_t, out):
    """out = x B for row-major x (rows, P), B (P, N), with B_t = Bᵀ (N, P):
    the tiles for whole vectors of columns, then each remaining column as a
    dot product of a row of x with a (contiguous) row of B_t."""
    rows, n = out.shape
    p = x.shape[1]
    done = tiled_product(x, B, out, rows, n, p, p, 1, False)
    for r in range(rows):
        for i in range(done, n):
            total = out.dtype.type(0)
            for j in range(p):
                total += B_t[i, j] * x[r, j]
            out[r, i] = total


@kernel()
def simd_forward(a_prev, W, W_t, z):
    """z_ri = Σ_j W_ij a_rj (step 1's product; ``W_t`` is Wᵀ packed).
    a_prev : (rows, s_l)   W : (s_{l+1}, s_l)   W_t : (s_l, s_{l+1})   z : (rows, s_{l+1})"""
    tiled_rows_product(a_prev, W_t, W, z)


@kernel()
def simd_residual(delta_next, W, W_t, delta):
    """delta_ri = Σ_j W_ji δ'_rj (step 3's product, before f'; ``W_t`` is Wᵀ).
    delta_next : (rows, s_{l+1})   W : (s_{l+1}, s_l)   delta : (rows, s_l)"""
    tiled_rows_product(delta_next, W, W_t, delta)


#: Rows of the chunk per pass of :func:`simd_accumulate`: a panel of δ and a
#: is re-read once per block of output units, so it should stay in L1.
PANEL_ROWS = 64


@kernel()
def simd_accumulate(delta_next, a_prev, dW):
    """ΔW_ij += Σ_r δ_ri a_rj (step 4's product), in panels of PANEL_ROWS rows.
    delta_next : (rows, s_{l+1})   a_prev : (rows, s_l)   dW : (s_{l+1}, s_l)"""
    rows, n_out = delta_next.shape
    n_in = a_prev.shape[1]
    done = n_in
    for p0 in range(0, rows, PANEL_ROWS):
        p1 = min(rows, p0 + PANEL_ROWS)
        done = tiled_product(delta_next[p0:p1], a_prev[p0:p1], dW, n_out, n_in, p1 - p0,
                             1, n_out, True)
    if done < n_in:
        column = np.empty(n_out, dW.dtype)
        for j in range(done, n_in):
            for i in range(n_out):
                column[i] = dW.dtype.type(0)
            for r in range(rows):
                x = a_prev[r, j]
                for i in range(n_out):
                    column[i] += delta_next[r, i] * x
            for i in range(n_out):
                dW[i, j] += column[i]
