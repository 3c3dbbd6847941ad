"""Input checks shared by the public API: every bad argument is caught here,
named, and explained before any kernel runs."""

import math
import numbers

import numpy as np

from ._compiler import kernel
from . import _threads
from numba import prange

SUPPORTED_DTYPES = (np.float32, np.float64)


#: Entries a finiteness scan adds up before it looks at the sum.
FINITE_BLOCK = 512


@kernel()
def _finite_block(flat, lo, hi):
    """Whether flat[lo:hi] holds only finite numbers. x·0 is 0 for a finite x
    and NaN for NaN or ±Inf, so a block is finite exactly when the sum of its
    x·0 is 0; adding without an early exit inside a block lets LLVM vectorise
    the scan (the compiler may not fold x·0 to 0: fastmath here has no
    ``nnan``/``ninf``)."""
    zero = flat.dtype.type(0)
    for start in range(lo, hi, FINITE_BLOCK):
        block = flat[start:min(hi, start + FINITE_BLOCK)]  # 0-based loops vectorise best
        total = zero
        for p in range(block.shape[0]):
            total += block[p] * zero
        if total != zero:
            return False
    return True


@kernel(parallel=True)
def _all_finite(flat, block):
    """True when no entry of ``flat`` is NaN or ±Inf; constant extra memory."""
    n = flat.shape[0]
    n_blocks = (n + block - 1) // block
    if n_blocks == 1:
        return _finite_block(flat, 0, n)
    ok = np.ones(n_blocks, np.bool_)
    for k in prange(n_blocks):
        ok[k] = _finite_block(flat, k * block, min(n, (k + 1) * block))
    return ok.all()


#: Arrays with fewer entries are scanned serially (a scan of 4 M entries takes
#: a few ms on one core, more than a parallel region costs on a shared machine).
PARALLEL_SCAN_MIN = 1 << 22


def all_finite(a):
    """Whether a float array holds only finite numbers (no temporary of its size)."""
    if not a.size:
        return True
    flat = a.reshape(-1)
    n = _threads.plan(_threads.PARALLEL_MIN_FLOPS) if flat.size >= PARALLEL_SCAN_MIN else 0
    if n:
        with _threads.parallel_region(n):
            return bool(_all_finite(flat, 1 << 18))
    return bool(_finite_block(flat, 0, flat.size))


def check_dtype(dtype):
    """The network dtype: float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if dt.type not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dt}")
    return dt


def check_scalar(value, name, *, low=None, low_inclusive=True, integer=False):
    """A finite real number (or integer) with an optional lower bound."""
    kind = type(value)
    if kind is int or (kind is float and not integer):
        pass  # plain Python numbers skip the (slow) abstract-base-class checks
    elif isinstance(value, bool) or not isinstance(
            value, numbers.Integral if integer else numbers.Real):
        what = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    if not integer and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None:
        if low_inclusive and value < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
        if not low_inclusive and value <= low:
            raise ValueError(f"{name} must be > {low}, got {value!r}")
    return int(value) if integer else float(value)


def check_seed(seed, name="seed"):
    """A seed for ``numpy.random.default_rng``: None, a non-negative integer,
    or an existing SeedSequence / BitGenerator / Generator (passed through)."""
    if type(seed) is int and seed >= 0:
        return seed  # the common case, without the abstract-base-class checks
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.BitGenerator,
                                         np.random.Generator)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be None or a non-negative integer, "
                        f"got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be None or a non-negative integer, got {seed!r}")
    return int(seed)


def as_float_array(a, name, dtype, ndim):
    """``a`` as a C-contiguous array of ``dtype``; the caller's array is never
    modified and is copied only when its dtype or layout differ."""
    if type(a) is np.ndarray and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous:
        return a  # the common case, in well under a microsecond
    if isinstance(a, (str, bytes)) or a is None:
        raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} has dtype {arr.dtype}; expected a floating-point array "
            f"(float32 or float64) — convert with {name}.astype(np.float64)")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


@kernel()
def _first_not_finite(X, Y, theta):
    """Which of X, Y, θ (all C-contiguous) holds a NaN or ±Inf first: 1, 2, 3,
    or 0 for none — one call instead of three (each call costs ~1 µs)."""
    if not _finite_block(X.reshape(X.size), 0, X.size):
        return 1
    if not _finite_block(Y.reshape(Y.size), 0, Y.size):
        return 2
    if not _finite_block(theta, 0, theta.size):
        return 3
    return 0


NOT_FINITE = {1: "X contains NaN or Inf; every input must be finite",
               2: "Y contains NaN or Inf; every target must be finite",
               3: "theta contains NaN or Inf; every parameter must be finite"}


def check_data(X, Y, layer_sizes, dtype, theta=None, finite=True):
    """Validate and convert a training set: X (m, s_1), Y (m, s_{n_l});
    ``theta``, if given, is checked to be finite too (in the same pass).
    ``finite=False`` leaves the finiteness of X, Y, θ to the caller
    (:func:`check_finite`, or a kernel that checks them itself)."""
    s_in, s_out = layer_sizes[0], layer_sizes[-1]
    X = as_float_array(X, "X", dtype, 2)
    if Y is not None:
        if s_out == 1 and (Y.ndim if type(Y) is np.ndarray else np.ndim(Y)) == 1:
            Y = np.asarray(Y).reshape(-1, 1)
        Y = as_float_array(Y, "Y", dtype, 2)
    m = X.shape[0]
    if m == 0:
        raise ValueError("X has 0 rows; expected at least one example (m >= 1)")
    if X.shape[1] != s_in:
        raise ValueError(f"X has {X.shape[1]} columns, the network expects {s_in} (layer_sizes[0])")
    if Y is not None:
        if Y.shape[0] != m:
            raise ValueError(f"X has {m} rows but Y has {Y.shape[0]}; expected one target row per example")
        if Y.shape[1] != s_out:
            raise ValueError(f"Y has {Y.shape[1]} columns, the network has {s_out} outputs (layer_sizes[-1])")
    if finite:
        check_finite(X, Y, theta)
    return X, Y


def check_finite(X, Y=None, theta=None):
    """A ValueError naming the first of X, Y, θ (C-contiguous, already
    converted) that holds a NaN or ±Inf."""
    n = X.size + (0 if Y is None else Y.size) + (0 if theta is None else theta.size)
    if n < PARALLEL_SCAN_MIN:
        code = _first_not_finite(X, X[:0] if Y is None else Y,
                                 X.reshape(-1)[:0] if theta is None else theta)
    else:
        code = (1 if not all_finite(X) else 2 if Y is not None and not all_finite(Y)
                else 3 if theta is not None and not all_finite(theta) else 0)
    if code:
        raise ValueError(NOT_FINITE[code])


def check_theta(theta, n_params, dtype, name="theta", finite=True):
    """A flat parameter vector of the right length, finite (unless
    ``finite=False`` leaves that to the caller), as ``dtype``."""
    theta = as_float_array(theta, name, dtype, 1)
    if theta.shape[0] != n_params:
        raise ValueError(f"{name} has {theta.shape[0]} entries, the network has {n_params} parameters")
    if finite and not all_finite(theta):
        raise ValueError(f"{name} contains NaN or Inf; every parameter must be finite")
    return theta
