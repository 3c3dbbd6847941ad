"""ΔW += δᵀ a as one BLAS call.

``np.dot(δ.T, a, out)`` can only overwrite ``out``, so accumulating a chunk's
ΔW that way needs a scratch matrix and an extra pass over every weight per
chunk — 10–15 % of a wide layer's time. BLAS's gemm computes
C := αAB + βC; with β = 1 it accumulates in place. numba itself reaches gemm
through its helper ``numba_xxgemm`` (which calls scipy's BLAS); this
intrinsic makes the same call with β = 1. Resolved by symbol name at link
time, so kernels using it are still cached to disk.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

_KINDS = {types.float32: "s", types.float64: "d"}


@intrinsic
def gemm_accumulate(typingctx, delta, a, dW):
    """dW (n_out, n_in) += δᵀ (n_out, rows) · a (rows, n_in); all C-contiguous.

    In BLAS's column-major view the row-major dW is dWᵀ, so this is
    dWᵀ += aᵀ δ: gemm('n', 't', n_in, n_out, rows, 1, a, n_in, δ, n_out, 1, dW, n_in).
    """
    arrays = (delta, a, dW)
    if not all(isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" for x in arrays):
        raise TypingError("gemm_accumulate needs three C-contiguous 2-D arrays")
    if not (delta.dtype == a.dtype == dW.dtype) or dW.dtype not in _KINDS:
        raise TypingError("gemm_accumulate needs float32 or float64 arrays of one dtype")
    kind = _KINDS[dW.dtype]

    def codegen(context, builder, signature, args):
        from numba.np.linalg import ensure_blas
        ensure_blas()
        char = ir.IntType(8)
        intp = context.get_value_type(types.intp)
        void_p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp,
                                                void_p, void_p, intp, void_p, intp,
                                                void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        d_arr, a_arr, w_arr = (context.make_array(t)(context, builder, v)
                               for t, v in zip(signature.args, args))
        rows, n_out = cgutils.unpack_tuple(builder, d_arr.shape, 2)
        _, n_in = cgutils.unpack_tuple(builder, a_arr.shape, 2)
        one = cgutils.alloca_once_value(
            builder, context.get_constant_generic(builder, dW.dtype, 1.0))
        one_p = builder.bitcast(one, void_p)
        builder.call(fn, (ir.Constant(char, ord(kind)), ir.Constant(char, ord("n")),
                          ir.Constant(char, ord("t")), n_in, n_out, rows,
                          one_p, builder.bitcast(a_arr.data, void_p), n_in,
                          builder.bitcast(d_arr.data, void_p), n_out,
                          one_p, builder.bitcast(w_arr.data, void_p), n_in))
        return context.get_dummy_value()

    return types.none(delta, a, dW), codegen
