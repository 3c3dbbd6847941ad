"""Compiler policy: the one place that says how every fastbp kernel is compiled.

Every kernel in :mod:`fastbp._kernels` is decorated with :func:`kernel`, so the
fastmath flags, on-disk caching and error model are set here and nowhere else.

* ``fastmath`` allows reassociation, contraction (FMA), reciprocal and
  approximate-function rewrites, but *not* ``nnan``/``ninf``: with those the
  compiler may assume NaN and Inf never occur and delete the very checks that
  catch a diverging run (STUMPY makes the same choice).
* ``cache=True`` writes compiled machine code next to the sources (or to
  ``NUMBA_CACHE_DIR``), so a new process starts in a fraction of a second.
* ``error_model="numpy"`` makes a division by zero give inf/nan like numpy
  instead of raising, which also lets the compiler vectorise divisions.
* A cached kernel is fresh only while every file compiled into it is
  unchanged (:data:`KERNEL_SOURCES`): numba checks only the file that
  defines the function, so a kernel cached before an edit of ``_simd.py``
  or of a constant here would otherwise keep the old code.
"""

import hashlib
import os
import warnings

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


#: With ``parallel=True`` numba would also turn array expressions and
#: allocations (``np.zeros``, ``a.sum()``…) into parallel loops, each waking
#: the thread pool. fastbp parallelises only its explicit ``prange`` loops.
PRANGE_ONLY = {"prange": True, "comprehension": False, "reduction": False,
               "inplace_binop": False, "setitem": False, "numpy": False,
               "stencil": False, "fusion": False}


def kernel(parallel=False, reassociate=True, strict=False):
    """Decorator compiling a fastbp kernel under the project's compiler policy.

    ``reassociate=False`` drops ``reassoc`` for code whose rounding is part of
    its design (the exp's Cody–Waite range reduction); the flags travel with
    each instruction, so they hold wherever the function is inlined.
    ``strict=True`` drops every fastmath flag (no FMA contraction either): the
    arithmetic is IEEE as written, so it rounds the same in every caller it is
    inlined into (measured: the Nesterov update contracted differently inside
    train_many's loop than as train's own entry point).
    """
    options = dict(
        parallel=dict(PRANGE_ONLY) if parallel else False,
        fastmath=False if strict else (
            set(FASTMATH) if reassociate else set(FASTMATH) - {"reassoc"}),
        error_model="numpy",
        nogil=True,
    )

    def decorate(func):
        if _cache["enabled"]:
            try:
                return _stamped(numba.njit(cache=True, **options)(func))
            except RuntimeError as error:
                if "no locator available" not in str(error):
                    raise
                _disable_cache()
        return numba.njit(cache=False, **options)(func)

    return decorate


#: The files whose code or constants are compiled into fastbp's kernels
#: (tests/test_kernel_cache.py checks that every module defining kernels,
#: intrinsics or overloads is listed).
KERNEL_SOURCES = ("_atomic.py", "_blas.py", "_compiler.py", "_exp.py", "_kernels.py",
                  "_many_kernels.py", "_simd.py", "_validation.py", "_views.py")


def sources_digest(directory=os.path.dirname(os.path.abspath(__file__))):
    """SHA-256 of the contents of :data:`KERNEL_SOURCES` in ``directory``."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        with open(os.path.join(directory, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


_SOURCES_DIGEST = sources_digest()


def _stamped(dispatcher):
    """A cached dispatcher whose cache is fresh only for the current
    contents of every kernel source: numba's own stamp (its file's hash) is
    paired with :func:`sources_digest`, so a cache written before any of
    those files changed is not loaded, and the kernel compiles afresh. If a
    numba version keeps its cache elsewhere, numba's own stamp stands."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, _SOURCES_DIGEST)
    return dispatcher


#: Whether compiled kernels are cached on disk. numba looks for a writable
#: cache directory (``NUMBA_CACHE_DIR``, then ``__pycache__`` next to the
#: sources, then the user's cache directory) when a cached function is
#: decorated, and raises if there is none — as in a read-only install run by a
#: user without a writable home. fastbp then compiles without a cache (kernels
#: are compiled afresh in each process) and says so once.
_cache = {"enabled": True}


def _disable_cache():
    _cache["enabled"] = False
    warnings.warn(
        "fastbp cannot cache its compiled kernels: neither the package directory nor the "
        "user cache directory is writable, so every process compiles them afresh. Set "
        "NUMBA_CACHE_DIR to a writable directory to cache them.", RuntimeWarning, stacklevel=3)


#: Examples per chunk. A chunk is the unit of work of the parallel kernels: its
#: activations and residuals live in a per-slot buffer of CHUNK rows. The value
#: is fixed, never derived from the thread count, so results are bit-identical
#: for any number of threads.
CHUNK = 256

#: At most this many chunks are in flight at once ("slots"). Each slot owns a
#: gradient buffer; slot buffers are summed in slot order at the end. Like
#: CHUNK it is independent of the thread count; 16 keeps 16 cores busy.
MAX_SLOTS = 16

#: A layer whose weight matrix has at least this many entries does its matrix
#: products (forward, hidden residual, weight gradient) with BLAS on the chunk,
#: single-threaded inside each slot; narrower layers use the explicit loops.
#: Measured on 2 cores by ``python asv_bench/kernel_choices.py`` (one thread,
#: m = 10,000): BLAS beat the loops by 1.2-2.2x from 8-8-8 (64 weights) up to
#: 64-25-64. On 2-8-1 the loops win at m = 256 (34 vs 46 us per gradient, one
#: chunk, where holding BLAS to one thread costs a few us) and lose at
#: m = 10,000 (1.4 vs 1.0 ms); the threshold favours the small case.
BLAS_MIN_WEIGHTS = 64

#: ... but only on chunks of at least this many rows: a BLAS call costs a few
#: hundred ns of its own, more than a product of one or two rows takes in the
#: explicit loops (one thread, ``python asv_bench/kernel_choices.py --rows``:
#: 64-25-64 at m = 1 7.5 µs loops vs 7.9 BLAS, at m = 4 12.2 vs 12.0;
#: 784-256-10 at m = 1 180 vs 200, at m = 4 394 vs 378). The rows of a chunk
#: depend on m only, so the choice never depends on the thread count.
BLAS_MIN_ROWS = 4

#: How each layer makes its three matrix products (``products[l]``):
#: explicit loops, BLAS calls, or the register-blocked SIMD tiles of
#: :mod:`fastbp._simd`.
LOOPS, BLAS, SIMD = 0, 1, 2

#: Layers with BLAS_MIN_WEIGHTS … SIMD_MAX_WEIGHTS weights make their
#: products in the SIMD tiles, wider ones with BLAS — except that on chunks of
#: SIMD_WIDE_ROWS rows or more (the full batch's 256-row chunks), SIMD layers
#: of more than SIMD_MAX_WEIGHTS_WIDE weights use BLAS too: OpenBLAS's
#: cache blocking pays on long products, the tiles' registers on short ones.
#: Measured on 2 cores, one thread (``python asv_bench/kernel_choices.py
#: --simd``, a layer's three products, BLAS time / tiles time): on 256 rows
#: 1.28–2.17× for 64–2,560 weights (8→8, 25→64, 64→25, 256→10, and
#: float64 10→256; float32 10→256 0.90×), 0.73–0.90× at 100→100,
#: 0.41–0.82× from 16,384 weights up; on 32 rows 1.32–2.73× up to 100→100
#: in both dtypes, and from 16,384 weights up 0.95–1.98× in float32 but
#: 0.51–1.28× in float64.
SIMD_MAX_WEIGHTS = 10_000
SIMD_WIDE_ROWS = 128
SIMD_MAX_WEIGHTS_WIDE = 4096

#: Chunks of fewer rows run a SIMD layer's products in the explicit loops.
SIMD_MIN_ROWS = 4
