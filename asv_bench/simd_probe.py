#!/usr/bin/env python
"""A probe, not part of fastbp: hand-written SIMD micro-kernels (LLVM vector
IR emitted from a numba ``@intrinsic``) against OpenBLAS on the small
products of a 64-25-64 network — the lead for issue 9's remaining targets.

    python asv_bench/simd_probe.py        (one thread; BLAS held to one thread)

Written by a helper session; run three times on this project's 2-core
machine, each time beside another busy process, so read the ratios (baseline
and candidate interleaved in one process), not the absolute GFLOP/s. They
printed:
ΔW += δᵀa 1.4–2.5× faster than OpenBLAS on every shape and dtype tried
((R, n_out, n_in) = (256|32, 64|25, 25|64)); Z = A·Wᵀ 1.3–2.3× faster with
Wᵀ kept packed, except float32 R = 256, 64→25 (1.1×). Largest relative error
2.2e-7 (float32), 3.3e-16 (float64). Not integrated: a kernel needs a rule for
which shapes it serves, Wᵀ kept beside W, tests over every edge, and a check
that numba's disk cache keeps it.

The kernel generator (``make``):

    T[i, j] = Σ_{p<P} X[p·sxp + i·sxi] · Y[p·syp + j]        0 ≤ i < M, j0 ≤ j < j1
    C[i·csi + j·csj] (+)= T[i, j]

Register block: MR rows of i (each a scalar of X broadcast) × NV vectors of W
lanes along j (W = 8 for float32, 4 for float64), i.e. MR·NV vector
accumulators kept in ymm registers, llvm.fma on <W x float/double>.

* column edge: the last block uses llvm.masked.load / llvm.masked.store (its own p-loop)
* row edge: row index clamped to M−1 (duplicate compute), stores of rows ≥ M skipped
* trans=False: C rows contiguous along j (csj must be 1): vector load/add/store;
  trans=True: scalar (extractelement) stores at C[i·csi + j·csj], used to write
  ΔW when the vectors run along n_out.

Dispatch used for the table:

(a) ΔW += δᵀa
    n_in % (2W) == 0: vectors along n_in (broadcast δ), MR=5, NV=2, R in chunks
                      of PC rows (64 float32 / 32 float64) so the panels stay in L1.
    else:             vectors along n_out (broadcast a), MR=5, NV=2; R ≤ PC: transposed
                      scalar stores straight into ΔW; R > PC: chunks accumulate (vector
                      stores) into an (n_in, n_out) scratch, then one transposed add.
(b) Z = A·Wᵀ with Wᵀ packed (n_in, n_out)
    n_out % (2W) == 0: MR=4, NV=2, no tail
    else:              MR=4, NV=3 on the largest multiple-of-W column prefix, a dot-product
                       loop (fastmath) for the remaining column(s).
    Reported with Wᵀ kept packed and with W → Wᵀ packed inside every call.
"""
import os
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from threadpoolctl import threadpool_limits

from fastbp._blas import gemm_accumulate

_cache = {}


def make(MR, NV, accumulate, trans):
    key = (MR, NV, accumulate, trans)
    if key in _cache:
        return _cache[key]

    @intrinsic
    def vkern(typingctx, X, Y, C, M, j0_, j1_, P, sxp, sxi, syp, csi, csj):
        for t in (X, Y, C):
            if not (isinstance(t, types.Array) and t.layout == "C"):
                raise TypingError("need C-contiguous arrays")
        if not (X.dtype == Y.dtype == C.dtype) or X.dtype not in (types.float32, types.float64):
            raise TypingError("dtype")
        dt = X.dtype
        W = 8 if dt == types.float32 else 4

        def codegen(context, builder, sig, args):
            ft = context.get_value_type(dt)
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            i1 = ir.IntType(1)
            vt = ir.VectorType(ft, W)
            mt = ir.VectorType(i1, W)
            align = dt.bitwidth // 8
            Xa, Ya, Ca = (context.make_array(t)(context, builder, v)
                          for t, v in zip(sig.args[:3], args[:3]))
            Mv, J0, J1, Pv, sxpv, sxiv, sypv, csiv, csjv = args[3:]
            xp, yp, cp = Xa.data, Ya.data, Ca.data
            mod = builder.module
            sfx = "v%d%s" % (W, "f32" if W == 8 else "f64")
            mload = cgutils.get_or_insert_function(
                mod, ir.FunctionType(vt, [vt.as_pointer(), i32, mt, vt]), "llvm.masked.load.%s.p0" % sfx)
            mstore = cgutils.get_or_insert_function(
                mod, ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), i32, mt]), "llvm.masked.store.%s.p0" % sfx)
            vfma = cgutils.get_or_insert_function(mod, ir.FunctionType(vt, [vt, vt, vt]), "llvm.fma.%s" % sfx)
            zero_v = ir.Constant(vt, [ir.Constant(ft, 0.0)] * W)
            lanes = ir.Constant(ir.VectorType(i64, W), [ir.Constant(i64, k) for k in range(W)])
            c_align = ir.Constant(i32, align)
            I = lambda k: ir.Constant(i64, k)
            NR = I(NV * W)
            Mm1 = builder.sub(Mv, I(1))

            def splat(v, ty):
                u = ir.Constant(ir.VectorType(ty, W), ir.Undefined)
                u = builder.insert_element(u, v, ir.Constant(i32, 0))
                return builder.shuffle_vector(u, u, ir.Constant(ir.VectorType(i32, W), [0] * W))

            def sptr(base, idx):
                return builder.gep(base, [idx], inbounds=True)

            def vptr(base, idx):
                return builder.bitcast(sptr(base, idx), vt.as_pointer())

            accs = [[cgutils.alloca_once(builder, vt) for _ in range(NV)] for _ in range(MR)]
            with cgutils.for_range_slice(builder, I(0), Mv, I(MR)) as (i0, _):
                rows = [builder.select(builder.icmp_signed("<", builder.add(i0, I(ii)), Mv),
                                       builder.add(i0, I(ii)), Mm1) for ii in range(MR)]
                xoffs = [builder.mul(r, sxiv) for r in rows]
                with cgutils.for_range_slice(builder, J0, J1, NR) as (j0, _):
                    for row in accs:
                        for a in row:
                            builder.store(zero_v, a)
                    masks = []
                    for k in range(NV):
                        jk = builder.add(j0, I(k * W))
                        masks.append(builder.icmp_signed("<", builder.add(splat(jk, i64), lanes), splat(J1, i64)))
                    full = builder.icmp_signed("<=", builder.add(j0, NR), J1)

                    def ploop(masked):
                        with cgutils.for_range(builder, Pv) as loop:
                            p = loop.index
                            ybase = builder.add(builder.mul(p, sypv), j0)
                            ys = []
                            for k in range(NV):
                                ptr = vptr(yp, builder.add(ybase, I(k * W)))
                                if masked:
                                    ys.append(builder.call(mload, [ptr, c_align, masks[k], zero_v]))
                                else:
                                    ys.append(builder.load(ptr, typ=vt, align=align))
                            xbase = builder.mul(p, sxpv)
                            for ii in range(MR):
                                xv = builder.load(sptr(xp, builder.add(xbase, xoffs[ii])), typ=ft)
                                bx = splat(xv, ft)
                                for k in range(NV):
                                    cur = builder.load(accs[ii][k])
                                    builder.store(builder.call(vfma, [bx, ys[k], cur]), accs[ii][k])

                    with builder.if_else(full) as (then, other):
                        with then:
                            ploop(False)
                        with other:
                            ploop(True)

                    for ii in range(MR):
                        irow = builder.add(i0, I(ii))
                        with builder.if_then(builder.icmp_signed("<", irow, Mv)):
                            if not trans:
                                cbase = builder.add(builder.mul(irow, csiv), j0)
                                for k in range(NV):
                                    ptr = vptr(cp, builder.add(cbase, I(k * W)))
                                    acc = builder.load(accs[ii][k])
                                    with builder.if_else(full) as (then, other):
                                        with then:
                                            v = acc
                                            if accumulate:
                                                v = builder.fadd(builder.load(ptr, typ=vt, align=align), acc)
                                            builder.store(v, ptr, align=align)
                                        with other:
                                            v = acc
                                            if accumulate:
                                                v = builder.fadd(builder.call(mload, [ptr, c_align, masks[k], zero_v]), acc)
                                            builder.call(mstore, [v, ptr, c_align, masks[k]])
                            else:
                                cbase = builder.mul(irow, csiv)

                                def tstore(check):
                                    for k in range(NV):
                                        acc = builder.load(accs[ii][k])
                                        for l in range(W):
                                            j = builder.add(j0, I(k * W + l))

                                            def one():
                                                ptr = sptr(cp, builder.add(cbase, builder.mul(j, csjv)))
                                                v = builder.extract_element(acc, ir.Constant(i32, l))
                                                if accumulate:
                                                    v = builder.fadd(builder.load(ptr, typ=ft), v)
                                                builder.store(v, ptr)
                                            if check:
                                                with builder.if_then(builder.icmp_signed("<", j, J1), likely=True):
                                                    one()
                                            else:
                                                one()
                                with builder.if_else(full) as (then, other):
                                    with then:
                                        tstore(False)
                                    with other:
                                        tstore(True)
            return context.get_dummy_value()

        return types.none(X, Y, C, M, j0_, j1_, P, sxp, sxi, syp, csi, csj), codegen

    _cache[key] = vkern
    return vkern

ROUNDS = int(os.environ.get("ROUNDS", 9))
NCALL = 500
FM = dict(boundscheck=False, fastmath=True, error_model="numpy")

kn_acc = make(5, 2, True, False)
kn_set = make(5, 2, False, False)
kt_acc = make(5, 2, True, True)
kb2 = make(4, 2, False, False)
kb3 = make(4, 3, False, False)


@njit(**FM)
def a_cand(delta, a, dW, scratch):
    R, n_out = delta.shape
    n_in = a.shape[1]
    wv = 8 if a.itemsize == 4 else 4
    PC = 64 if a.itemsize == 4 else 32
    if n_in % (2 * wv) == 0:
        for p0 in range(0, R, PC):
            p1 = min(R, p0 + PC)
            kn_acc(delta[p0:p1], a[p0:p1], dW, n_out, 0, n_in, p1 - p0, n_out, 1, n_in, n_in, 1)
    elif R <= PC:
        kt_acc(a, delta, dW, n_in, 0, n_out, R, n_in, 1, n_out, 1, n_in)
    else:
        # scratch (n_in, n_out) = a^T delta, vector stores; then dW += scratch^T
        kn_set(a[0:PC], delta[0:PC], scratch, n_in, 0, n_out, PC, n_in, 1, n_out, n_out, 1)
        for p0 in range(PC, R, PC):
            p1 = min(R, p0 + PC)
            kn_acc(a[p0:p1], delta[p0:p1], scratch, n_in, 0, n_out, p1 - p0, n_in, 1, n_out, n_out, 1)
        for o in range(n_out):
            for i in range(n_in):
                dW[o, i] += scratch[i, o]


@njit(**FM)
def b_core(A, W, WT, Z):
    R, n_in = A.shape
    n_out = WT.shape[1]
    wv = 8 if A.itemsize == 4 else 4
    if n_out % (2 * wv) == 0:
        kb2(A, WT, Z, R, 0, n_out, n_in, 1, n_in, n_out, n_out, 1)
        return
    nf = (n_out // wv) * wv
    if nf > 0:
        kb3(A, WT, Z, R, 0, nf, n_in, 1, n_in, n_out, n_out, 1)
    for r in range(R):
        for o in range(nf, n_out):
            s = A[r, 0] * W[o, 0]
            for kk in range(1, n_in):
                s += A[r, kk] * W[o, kk]
            Z[r, o] = s


@njit(**FM)
def b_packed(A, W, WT, Z):
    n_out, n_in = W.shape
    for o in range(n_out):
        for kk in range(n_in):
            WT[kk, o] = W[o, kk]
    b_core(A, W, WT, Z)


@njit
def L_a_gemm(delta, a, dW, s, n):
    for _ in range(n):
        gemm_accumulate(delta, a, dW)


@njit
def L_a_dot(delta, a, dW, tmp, n):
    for _ in range(n):
        np.dot(delta.T, a, tmp)
        dW += tmp


@njit
def L_a_cand(delta, a, dW, s, n):
    for _ in range(n):
        a_cand(delta, a, dW, s)


@njit
def L_b_base(A, W, WT, Z, n):
    for _ in range(n):
        np.dot(A, W.T, Z)


@njit
def L_b_core(A, W, WT, Z, n):
    for _ in range(n):
        b_core(A, W, WT, Z)


@njit
def L_b_packed(A, W, WT, Z, n):
    for _ in range(n):
        b_packed(A, W, WT, Z)


def interleave(fns):
    for f, args in fns:
        f(*args, 2)
    ts = [[] for _ in fns]
    for _ in range(ROUNDS):
        for k, (f, args) in enumerate(fns):
            t = time.perf_counter(); f(*args, NCALL); ts[k].append(time.perf_counter() - t)
    return [min(t) / NCALL for t in ts]


def main():
    rng = np.random.default_rng(1)
    shapes = [(256, 64, 25), (256, 25, 64), (32, 64, 25), (32, 25, 64)]
    print("| op | dtype | R | n_in->n_out | OpenBLAS gemm(beta=1) / np.dot | candidate | cand (W^T packed per call) | speedup vs best BLAS | max rel err |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dt in (np.float32, np.float64):
        rtol = 1e-5 if dt == np.float32 else 1e-12
        for (R, n_out, n_in) in shapes:
            fl = 2.0 * R * n_out * n_in
            delta = rng.standard_normal((R, n_out)).astype(dt)
            a = rng.standard_normal((R, n_in)).astype(dt)
            dW0 = rng.standard_normal((n_out, n_in)).astype(dt)
            scr = np.empty((n_in, n_out), dt)
            dW = dW0.copy(); a_cand(delta, a, dW, scr)
            ref = dW0.astype(np.float64) + delta.astype(np.float64).T @ a.astype(np.float64)
            scale = np.abs(delta.astype(np.float64)).T @ np.abs(a.astype(np.float64)) + np.abs(dW0)
            err = np.max(np.abs(dW - ref) / scale)
            assert err < rtol, err
            tg, td, tc = interleave([(L_a_gemm, (delta, a, dW0.copy(), scr)),
                                     (L_a_dot, (delta, a, dW0.copy(), np.empty_like(dW0))),
                                     (L_a_cand, (delta, a, dW0.copy(), scr))])
            g = lambda t: fl / t / 1e9
            print("| a dW+=δᵀa | %s | %d | %d->%d | %.1f / %.1f | %.1f | - | %.2fx | %.1e |" % (
                dt.__name__, R, n_in, n_out, g(tg), g(td), g(tc), min(tg, td) / tc, err), flush=True)
            A = rng.standard_normal((R, n_in)).astype(dt)
            Wm = rng.standard_normal((n_out, n_in)).astype(dt)
            WT = np.ascontiguousarray(Wm.T)
            ref = A.astype(np.float64) @ Wm.astype(np.float64).T
            scale = np.abs(A.astype(np.float64)) @ np.abs(Wm.astype(np.float64)).T
            errs = []
            for f, w in ((b_core, WT.copy()), (b_packed, np.empty_like(WT))):
                Z = np.full((R, n_out), np.nan, dt); f(A, Wm, w, Z)
                errs.append(np.max(np.abs(Z - ref) / scale))
            assert max(errs) < rtol, errs
            tb, tc, tp = interleave([(L_b_base, (A, Wm, WT, np.empty((R, n_out), dt))),
                                     (L_b_core, (A, Wm, WT.copy(), np.empty((R, n_out), dt))),
                                     (L_b_packed, (A, Wm, np.empty_like(WT), np.empty((R, n_out), dt)))])
            print("| b Z=AWᵀ | %s | %d | %d->%d | %.1f | %.1f | %.1f | %.2fx / %.2fx | %.1e |" % (
                dt.__name__, R, n_in, n_out, g(tb), g(tc), g(tp), tb / tc, tb / tp, max(errs)), flush=True)


if __name__ == "__main__":
    import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS: load it, then limit it)
    with threadpool_limits(1, user_api="blas"):
        main()
