"""Thread policy: one knob for numba's threads and BLAS's.

fastbp's parallel kernels run one slot of examples per numba thread and call
BLAS (``np.dot``) from inside those threads on their own chunk. BLAS must then
run single-threaded — a multi-threaded BLAS inside every numba thread would
oversubscribe the cores, and BLAS threads spinning while numba threads work
made one kernel 2.5× slower on 2 cores. :func:`blas_single_threaded` holds
BLAS to one thread for the duration of a kernel call and restores the caller's
setting afterwards, so the user's own numpy/scipy code is left as it was.
"""

import contextlib
import numba


def set_num_threads(n):
    """Set the number of threads fastbp's kernels use (1 … available cores).

    Parameters
    ----------
    n : int
        Threads for the parallel kernels. Results do not depend on it: the
        kernels are bit-identical for any thread count.
    """
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer number of threads, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"n must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
            f"(NUMBA_NUM_THREADS), got {n}")
    numba.set_num_threads(n)


def get_num_threads():
    """Number of threads fastbp's kernels currently use."""
    return numba.get_num_threads()


_blas_libraries = None


def _blas():
    # Inspecting the loaded libraries takes milliseconds: do it once. numba's
    # np.dot calls scipy's BLAS, so make sure it is loaded first.
    global _blas_libraries
    if _blas_libraries is None:
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController
        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_libraries


def blas_single_threaded(needed=True):
    """Hold every BLAS library to one thread inside the block, then restore
    the caller's settings. ``needed=False`` makes it a no-op (a network with
    no BLAS layer pays nothing, not even a generator)."""
    return _blas_single_threaded() if needed else _NOTHING


_NOTHING = contextlib.nullcontext()


@contextlib.contextmanager
def _blas_single_threaded():
    libraries = _blas()
    before = [lib.get_num_threads() for lib in libraries]
    for lib, n in zip(libraries, before):
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libraries, before):
            if n != 1:
                lib.set_num_threads(n)
