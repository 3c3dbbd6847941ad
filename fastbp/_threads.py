"""Thread policy: how many threads fastbp uses, when, and how they wait.

fastbp is used beside other work — a notebook, a second job, scikit-learn's
``GridSearchCV(n_jobs=2)``, MPI with more ranks than cores, asv itself. A
parallel region on a shared core waits for a worker that is spinning or was
descheduled, and that wait is a scheduler time slice (milliseconds), not the
microseconds it costs on an idle machine. The policy here keeps fastbp close
to its one-thread speed when the cores are shared, at almost no cost when they
are not:

1. **Work-size aware.** A call runs in parallel only when its work (the
   floating-point operations of the call, from m and the layer sizes) is at
   least :data:`PARALLEL_MIN_FLOPS`; smaller calls run their slots one after
   another on the calling thread and never touch the thread pool. Both paths
   call the same compiled per-slot routines and sum the slots in the same
   order, so the result is bit-identical whichever runs and for any number of
   threads.
2. **Passive waiting.** numba's OpenMP layer is loaded, when fastbp is
   imported, with ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set
   ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``, or numba's layer was already
   loaded): an idle worker sleeps instead of spinning, so it steals a core
   neither from the other work nor from BLAS. The variable is set only while
   numba loads the layer and is restored at once, so the user's environment
   and other OpenMP libraries are left as they were.
3. **The process's environment.** The default thread count is the smallest
   of numba's pool (``NUMBA_NUM_THREADS``, which joblib/loky set in their
   workers), the CPUs this process may run on (``os.sched_getaffinity``), a
   cgroup CPU quota, and ``OMP_NUM_THREADS`` when set; ``FASTBP_NUM_THREADS``
   overrides them. :func:`set_num_threads` and
   ``threadpoolctl.threadpool_limits`` change it for the whole process.
4. **A threading layer that copes with Python threads.** With numba's
   ``workqueue`` layer (what numba falls back to without OpenMP or TBB),
   concurrent parallel calls abort the process; fastbp then serialises its
   parallel calls with a lock. In a child forked from a process whose GNU
   OpenMP threads were started (which GNU OpenMP does not survive), fastbp
   runs everything serially.

BLAS is held to one thread while a kernel runs (:func:`blas_single_threaded`):
the kernels call BLAS from inside their own threads on their own chunk.
"""

import contextlib
import ctypes
import math
import os
import threading

import numba

#: A call whose work is below this many floating-point operations runs
#: serially (``FASTBP_PARALLEL_MIN_FLOPS`` in the environment overrides it;
#: 0 makes every call that has several slots parallel). Measured on 2 cores
#: with ``python asv_bench/kernel_choices.py --threshold``: see the README,
#: "Running beside other work".
PARALLEL_MIN_FLOPS = float(os.environ.get("FASTBP_PARALLEL_MIN_FLOPS", 32e6))

_lock = threading.Lock()          # guards the state below
_limit = None                     # set_num_threads / threadpoolctl; None: the default
_default = None                   # default_num_threads(), computed once
_started = False                  # numba's threading layer is loaded
_layer = None                     # its name: "omp", "tbb" or "workqueue"
_serial_only = False              # forked child of a GNU OpenMP process
_pool_lock = None                 # serialises parallel calls on workqueue


def _cgroup_cpus(root="/sys/fs/cgroup"):
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max``, else v1 CFS quota
    and period), rounded up; None when there is no quota."""
    candidates = [(os.path.join(root, "cpu.max"), None)] + [
        (os.path.join(root, d, "cpu.cfs_quota_us"), os.path.join(root, d, "cpu.cfs_period_us"))
        for d in ("cpu", "cpu,cpuacct")]
    for quota_file, period_file in candidates:
        try:
            with open(quota_file) as fh:
                parts = fh.read().split()
            if period_file is not None:
                with open(period_file) as fh:
                    parts = parts[:1] + fh.read().split()[:1]
        except OSError:
            continue
        if len(parts) != 2 or parts[0] == "max":
            return None
        try:
            quota, period = int(parts[0]), int(parts[1])
        except ValueError:
            return None
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    return None


def _env_count(name):
    value = os.environ.get(name, "").strip().split(",")[0]
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def available_cpus():
    """CPUs this process may use: its affinity mask, capped by a cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(n, quota) if quota else n)


def default_num_threads():
    """The thread count fastbp uses unless told otherwise (see the module docs)."""
    pool = numba.config.NUMBA_NUM_THREADS
    explicit = _env_count("FASTBP_NUM_THREADS")
    if explicit is not None:
        return min(explicit, pool)
    n = min(pool, available_cpus())
    omp = _env_count("OMP_NUM_THREADS")
    return min(n, omp) if omp is not None else n


def set_num_threads(n):
    """Set the number of threads fastbp's kernels use, for the whole process.

    Parameters
    ----------
    n : int
        1 … ``numba.config.NUMBA_NUM_THREADS``. Results do not depend on it:
        the kernels are bit-identical for any thread count.
    """
    global _limit
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer number of threads, got {type(n).__name__}")
    n = int(n.__index__())
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"n must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
            f"(NUMBA_NUM_THREADS), got {n}")
    _limit = n


def get_num_threads():
    """Number of threads fastbp's kernels use (for calls big enough to share)."""
    global _default
    if _limit is not None:
        return _limit
    if _default is None:
        _default = default_num_threads()
    return _default


def threading_layer():
    """numba's threading layer fastbp runs on ("omp", "tbb" or "workqueue");
    starts it if needed."""
    _start()
    return _layer


def _start():
    """Load numba's threading layer with passive OpenMP waiting (once)."""
    global _started, _layer, _pool_lock
    if _started:
        return
    with _lock:
        if _started:
            return
        from numba.np.ufunc import parallel
        saved = {}
        if not parallel._is_initialized and not (
                "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ):
            saved["OMP_WAIT_POLICY"] = None
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            parallel._launch_threads()
        finally:
            for name in saved:
                os.environ.pop(name, None)
        _layer = numba.threading_layer()
        if _layer == "workqueue":
            _pool_lock = threading.Lock()
        _started = True


def _after_fork_in_child():
    global _serial_only, _lock
    _lock = threading.Lock()
    if _started and _layer == "omp":
        _serial_only = True  # GNU OpenMP's threads do not survive fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# Now, before any kernel is compiled or loaded from the cache: numba loads its
# threading layer as soon as it compiles or loads code that has a parallel
# loop, and OpenMP reads its wait policy only then. Loading the layer starts
# no thread (GNU OpenMP creates its workers at the first parallel region).
_start()


def worth_sharing(flops):
    """Whether a call of ``flops`` floating-point operations is big enough for
    threads. Depends on the work only, never on the thread count, so a kernel
    may shape its work by it (the mini-batch parts) and stay bit-identical."""
    return flops >= PARALLEL_MIN_FLOPS


def plan(flops):
    """Threads for a call of ``flops`` floating-point operations: 0 means run
    the serial kernel; n ≥ 2 means run the parallel one on n threads (see
    :func:`parallel_region`). The choice between the two paths never changes
    the result, only the speed."""
    if flops < PARALLEL_MIN_FLOPS or _serial_only:
        return 0
    n = get_num_threads()
    return n if n >= 2 else 0


class parallel_region:
    """``with parallel_region(n):`` around a parallel kernel call: starts the
    pool, sets numba's (thread-local) count to n, and on the workqueue layer
    lets one call in at a time."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        _start()
        if _pool_lock is not None:
            _pool_lock.acquire()
        if numba.get_num_threads() != self.n:
            numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if _pool_lock is not None:
            _pool_lock.release()
        return False


# --------------------------------------------------------------------------
# threadpoolctl: `threadpool_limits(1)` holds fastbp to one thread too
# --------------------------------------------------------------------------
def _register_threadpoolctl():
    """Register a threadpoolctl controller for fastbp's threads. threadpoolctl
    finds controllers through loaded shared libraries: fastbp has none of its
    own, so the controller attaches to numba's helper library, which every
    process that imported fastbp has loaded."""
    try:
        import threadpoolctl
        LibController = threadpoolctl.LibController
        register = threadpoolctl.register
    except (ImportError, AttributeError):  # threadpoolctl < 3.5 has no register()
        return False

    class FastbpController(LibController):
        user_api = "fastbp"
        internal_api = "fastbp"
        filename_prefixes = ("_helperlib",)

        def get_num_threads(self):
            return get_num_threads()

        def set_num_threads(self, num_threads):
            set_num_threads(max(1, min(int(num_threads), numba.config.NUMBA_NUM_THREADS)))

        def get_version(self):
            from . import __version__
            return __version__

    if not any(getattr(c, "internal_api", None) == "fastbp"
               for c in getattr(threadpoolctl, "_ALL_CONTROLLERS", ())):
        register(FastbpController)
    return True


_register_threadpoolctl()


# --------------------------------------------------------------------------
# BLAS
# --------------------------------------------------------------------------
_blas_libraries = None


def _blas():
    """[(kind, get, set)] for every BLAS library loaded in the process: plain
    ctypes functions for OpenBLAS (a call costs ~0.1 µs), threadpoolctl's
    controller methods otherwise. threadpoolctl's own per-call path reads
    the library's info each time (~7 µs a call, more than a whole one-example
    gradient), so its controllers are asked once which libraries there are."""
    # Inspecting the loaded libraries takes milliseconds: do it once. numba's
    # np.dot calls scipy's BLAS, so make sure it is loaded first.
    global _blas_libraries
    if _blas_libraries is None:
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController
        _blas_libraries = [_thread_functions(c) for c in
                           ThreadpoolController().select(user_api="blas").lib_controllers]
    return _blas_libraries


def _thread_functions(controller):
    """(kind, get_num_threads, set_num_threads) of one threadpoolctl
    controller; kind is "openblas" for an OpenBLAS on its own threads."""
    if controller.internal_api == "openblas" and controller.threading_layer != "openmp":
        try:
            prefix, suffix = controller._find_affixes()
            lib = controller.dynlib
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
            get.restype, get.argtypes = ctypes.c_int, []
            put.restype, put.argtypes = None, [ctypes.c_int]
            return "openblas", get, put
        except (AttributeError, TypeError, ValueError):  # another threadpoolctl
            pass
    return controller.internal_api, controller.get_num_threads, controller.set_num_threads


def blas_single_threaded(needed=True):
    """Hold every BLAS library to one thread inside the block, then restore
    the caller's settings. ``needed=False`` makes it a no-op (a network with
    no BLAS layer, or a call too small for BLAS to thread, pays nothing)."""
    return _BlasSingleThreaded() if needed else _NOTHING


def blas_may_thread(gemm_size):
    """Whether a BLAS matrix product of ``gemm_size`` = M·N·K multiply-adds
    might run on several threads. OpenBLAS runs a product that small on the
    calling thread whatever its thread count: gemm below M·N·K = 65536 × 4
    (``interface/gemm.c``), and a product with a dimension of 1, which recent
    OpenBLAS hands to gemv, below M·N = 2304 × 4 (``interface/gemv.c``). A
    kernel whose largest product is below :data:`OPENBLAS_SERIAL_SIZE`
    need not pin BLAS to one thread, which saves ~2 µs a call. With any other
    BLAS every product counts as threaded."""
    return gemm_size >= _blas_serial_limit()


#: See :func:`blas_may_thread`: the smaller of OpenBLAS's two thresholds.
OPENBLAS_SERIAL_SIZE = 2304 * 4
_serial_limit = None


def _blas_serial_limit():
    global _serial_limit
    if _serial_limit is None:
        _serial_limit = OPENBLAS_SERIAL_SIZE if _blas() and all(
            kind == "openblas" for kind, _, _ in _blas()) else 0
    return _serial_limit


class _BlasSingleThreaded:
    __slots__ = ("saved",)

    def __enter__(self):
        self.saved = saved = []
        for _, get, put in _blas():
            n = get()
            if n != 1:
                put(1)
            saved.append(n)
        return self

    def __exit__(self, *exc):
        for (_, _, put), n in zip(_blas(), self.saved):
            if n != 1:
                put(n)
        return False


_NOTHING = contextlib.nullcontext()
