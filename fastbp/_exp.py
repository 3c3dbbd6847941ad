"""A vectorisable exp, and the sigmoid with one division.

numba compiles ``np.exp`` to a scalar libm call that LLVM cannot vectorise (the
pip builds of llvmlite have no SVML), so on narrow layers exp dominated the
forward pass. :func:`exp` here is plain arithmetic that LLVM turns into SIMD:

    exp(x) = 2^k · e^r,  k = round(x / ln 2),  r = x − k ln 2,  |r| ≤ ln2 / 2

with e^r from its Taylor polynomial (degree 12 in float64, 6 in float32; the
truncation error r^(n+1)/(n+1)! is below one unit in the last place) and 2^k
written straight into the exponent bits. Arguments are clamped to the range
where 2^k is a normal number; beyond it the true result under- or overflows
anyway, and the sigmoid built on it is then 0 or 1 to within 1e-307 (float64)
or 1e-37 (float32). NaN stays NaN, so a diverging run is still caught.

:func:`sigmoid` computes f(z) = 1 / (1 + e^x), x = −z, with the same range
reduction but e^r as a rational function (Cephes' [6/6] minimax in float64,
the [3/3] Padé approximant in float32):

    e^r = (Q(r²) + r P(r²)) / (Q(r²) − r P(r²)) = N / D,
    f(z) = 1 / (1 + 2^k N / D) = D / (D + 2^k N),

so the sigmoid costs one division, as ``1 / (1 + exp(x))`` does, but five
multiply-adds instead of the Taylor polynomial's twelve. Measured with
``python asv_bench/kernel_choices.py --exp`` (section 3, three runs): float64
1.00–1.24 ns per value against 1.63–1.96, float32 0.48–0.52 against
0.65–0.69; both stay within 2 units in the last place of the exact sigmoid
(tests/test_exp.py).

Both clamp with two tests that a NaN fails, so a NaN passes them unchanged
and makes the result NaN by itself, with no select of its own; the sigmoid
reduces s = −r rather than forming x = −z. The same bits as the form with
the select, which ``--exp`` times beside it: 1.13–1.22× slower in float64,
1.13–1.14× in float32 (three runs).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._compiler import kernel


@intrinsic
def _bits_to_float64(typingctx, bits):
    """Reinterpret an int64 bit pattern as a float64 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _float64_to_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_to_float32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _float32_to_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@kernel(reassociate=False)
def exp64(x):
    x = 709.0 if x > 709.0 else x  # clamped; NaN fails both tests, stays NaN
    x = -708.0 if x < -708.0 else x  # and makes p, hence the result, NaN
    k = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # k + 2^52 + 1023 holds k + 1023 in its low mantissa bits; shifted up by
    # 52 they become the exponent field of 2^k.
    two_k = _bits_to_float64(_float64_to_bits(k + 4503599627371519.0) << 52)
    return p * two_k


@kernel(reassociate=False)
def exp32(x):
    f = np.float32
    x = f(88.0) if x > f(88.0) else x  # as exp64
    x = f(-87.0) if x < f(-87.0) else x
    k = np.floor(x * f(1.44269504) + f(0.5))
    r = (x - k * f(0.693359375)) - k * f(-2.12194440e-4)
    p = f(1.0 / 5040.0)
    p = p * r + f(1.0 / 720.0)
    p = p * r + f(1.0 / 120.0)
    p = p * r + f(1.0 / 24.0)
    p = p * r + f(1.0 / 6.0)
    p = p * r + f(0.5)
    p = p * r + f(1.0)
    p = p * r + f(1.0)
    # k + 2^23 + 127 holds k + 127 in its low mantissa bits.
    two_k = _bits_to_float32(_float32_to_bits(k + f(8388735.0)) << 23)
    return p * two_k


@kernel(reassociate=False)
def sigmoid64(z):
    # x = −z is never formed: with s = −r = z + k ln 2 (exactly the negated
    # r, as IEEE rounding is symmetric), r P(r²) = −s P(s²), so
    # D = Q − r P = Q + s P and N = Q + r P = Q − s P: the same bits.
    z = 708.0 if z > 708.0 else z  # x = −z clamped to [−708, 709]; NaN
    z = -709.0 if z < -709.0 else z  # fails both tests and stays NaN
    k = np.floor(z * -1.4426950408889634 + 0.5)
    s = (z + k * 0.6931471803691238) + k * 1.9082149292705877e-10
    ss = s * s
    sp = s * ((1.26177193074810590878e-4 * ss + 3.02994407707441961300e-2) * ss
              + 9.99999999999999999910e-1)
    q = (((3.00198505138664455042e-6 * ss + 2.52448340349684104192e-3) * ss
          + 2.27265548208155028766e-1) * ss + 2.00000000000000000009e0)
    d = q + sp
    two_k = _bits_to_float64(_float64_to_bits(k + 4503599627371519.0) << 52)
    return d / (d + two_k * (q - sp))


@kernel(reassociate=False)
def sigmoid32(z):
    f = np.float32
    z = f(87.0) if z > f(87.0) else z  # as sigmoid64: x = −z in [−87, 88]
    z = f(-88.0) if z < f(-88.0) else z
    k = np.floor(z * f(-1.44269504) + f(0.5))
    s = (z + k * f(0.693359375)) + k * f(-2.12194440e-4)
    ss = s * s
    sp = s * (ss * f(1.0 / 120.0) + f(0.5))
    q = ss * f(0.1) + f(1.0)
    d = q + sp
    two_k = _bits_to_float32(_float32_to_bits(k + f(8388735.0)) << 23)
    return d / (d + two_k * (q - sp))


def _by_dtype(name, for_float32, for_float64, doc):
    """A function callable only from compiled kernels that runs
    ``for_float32`` or ``for_float64`` by the dtype of its scalar argument."""
    def function(x):
        raise NotImplementedError(f"fastbp._exp.{name} is only callable from compiled kernels")
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc

    @overload(function)
    def _typed(x):
        if x == types.float32:
            return lambda x: for_float32(x)
        if x == types.float64:
            return lambda x: for_float64(x)

    return function


exp = _by_dtype("exp", exp32, exp64,
                "exp for float32 or float64 scalars inside kernels (see module docstring).")
sigmoid = _by_dtype("sigmoid", sigmoid32, sigmoid64,
                    "1 / (1 + exp(−z)) for float32 or float64 scalars inside kernels (see "
                    "module docstring).")
