"""An atomic counter for the parallel kernels' dynamic schedule.

numba has no atomics; :func:`take_next` emits LLVM's ``atomicrmw add``. The
parallel drivers of :mod:`fastbp._kernels` give out their slots with it:
each thread takes the next slot not yet taken until none is left, instead of
a fixed run of slots per thread. Which thread computes a slot never changes
its result (every slot sums into its own buffer, and the buffers are summed
in slot order), so the schedule changes only the time: a thread whose core
is shared — with a BLAS pool still spinning after a numpy call, another
process, a busy neighbour — takes fewer slots, instead of holding up the
whole call until it has finished its fixed share.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def take_next(typingctx, counter):
    """Atomically add 1 to ``counter[0]`` (a C-contiguous int64 array) and
    return the value it held: each caller gets a different number."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64
            and counter.layout == "C" and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, array_type, ary,
                                       [context.get_constant(types.intp, 0)], wraparound=False)
        return builder.atomic_rmw("add", ptr, context.get_constant(types.int64, 1), "monotonic")
    return types.int64(counter), codegen
