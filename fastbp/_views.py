"""Borrowed blocks of a buffer: the views the kernels cut out of θ, the
gradient and the slot buffers, without reference counting.

A numba array slice or reshape carries a reference to its owner: every view
made costs an atomic increment, every view dropped an atomic decrement, and a
reshape a call into numba's C helper. A one-example gradient through 2-8-1
makes dozens of views, and those atomic operations and calls were a third of
its compiled time (``perf`` on ``small_batch_kernel``; measured by
``python asv_bench/kernel_choices.py --views``). :func:`block` builds the
same C-contiguous view directly, as a pointer and a shape, owning nothing.

The rule that keeps this safe: a block is only valid while its buffer's owner
is alive. Every buffer the kernels cut blocks from is an argument of the
kernel that cuts them (the caller holds it for the whole call) or a local
array of a kernel that uses it after its last block (numba frees a local
array after its last use, whatever blocks of it are still live); no block is
ever returned to Python. The view helpers of :mod:`fastbp._kernels`
(``weight_view``, ``rows_view``, …) are for compiled code: called from
Python they would return an array that does not keep its buffer alive.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ._compiler import kernel


@intrinsic
def block(typingctx, buf, offset, shape):
    """``buf.reshape(-1)[offset:offset + prod(shape)].reshape(shape)`` for a
    C-contiguous ``buf``, as a view that holds no reference to ``buf``.
    Bounds are the caller's to get right (numba does not check slices
    either)."""
    if not (isinstance(buf, types.Array) and buf.layout == "C"
            and isinstance(offset, types.Integer) and isinstance(shape, types.BaseTuple)
            and all(isinstance(n, types.Integer) for n in shape)):
        return None
    nd = len(shape)
    view_type = buf.copy(ndim=nd, layout="C")
    sig = view_type(buf, offset, shape)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        source = make_array(signature.args[0])(context, builder, args[0])
        start = context.cast(builder, args[1], signature.args[1], types.intp)
        dims = [context.cast(builder, builder.extract_value(args[2], k), signature.args[2][k],
                             types.intp) for k in range(nd)]
        itemsize = context.get_abi_sizeof(context.get_data_type(buf.dtype))
        strides, stride = [], intp(itemsize)
        for n in reversed(dims):
            strides.insert(0, stride)
            stride = builder.mul(stride, n)
        view = make_array(view_type)(context, builder)
        populate_array(view, data=builder.gep(source.data, [start]),
                       shape=cgutils.pack_array(builder, dims, intp),
                       strides=cgutils.pack_array(builder, strides, intp),
                       itemsize=intp(itemsize), meminfo=None)
        return view._getvalue()

    return sig, codegen


@kernel()
def flat(a):
    """A C-contiguous array's entries as a 1-D block (``a.reshape(a.size)``)."""
    return block(a, 0, (a.size,))
