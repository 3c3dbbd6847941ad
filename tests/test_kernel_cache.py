"""A cached kernel must not outlive a change to any file compiled into it.

numba checks only the file that defines a cached function, so a kernel of
_kernels.py cached before an edit of _simd.py (or of a constant in
_compiler.py) would keep running the old code. fastbp pairs numba's stamp
with a digest of every kernel source (fastbp._compiler.KERNEL_SOURCES)."""

import os
import re
import shutil

import numba
import numpy as np
import pytest

import fastbp
from fastbp import _compiler, _kernels as K, _many_kernels as MK, _threads

PACKAGE = os.path.dirname(fastbp.__file__)


def test_every_module_that_compiles_code_is_a_kernel_source():
    compiled = set()
    for name in os.listdir(PACKAGE):
        if name.endswith(".py"):
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                text = f.read()
            if re.search(r"^\s*@(kernel\(|intrinsic|overload\()|numba\.njit\(", text, re.M):
                compiled.add(name)
    assert compiled, "found no module that compiles kernels"
    assert compiled <= set(_compiler.KERNEL_SOURCES), compiled - set(_compiler.KERNEL_SOURCES)


def test_the_digest_follows_every_kernel_source(tmp_path):
    for name in _compiler.KERNEL_SOURCES:
        shutil.copy(os.path.join(PACKAGE, name), tmp_path / name)
    before = _compiler.sources_digest(tmp_path)
    assert before == _compiler.sources_digest(PACKAGE)
    for name in _compiler.KERNEL_SOURCES:
        original = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(original + b"\n# a comment\n")
        assert _compiler.sources_digest(tmp_path) != before, name
        (tmp_path / name).write_bytes(original)
    assert _compiler.sources_digest(tmp_path) == before


def test_cached_kernels_carry_the_digest():
    if not _compiler._cache["enabled"]:
        pytest.skip("caching is disabled in this environment")
    for kernel in (K.backprop_chunk, K.cost_and_gradient_kernel, K.minibatch_epoch_kernel):
        stamp = kernel._cache._cache_file._source_stamp
        assert isinstance(stamp, tuple) and stamp[1] == _compiler.sources_digest(PACKAGE)


def test_no_kernel_holds_what_numba_cannot_cache(monkeypatch):
    # numba refuses to cache a function that uses "dynamic globals" (a ctypes
    # pointer, such as numba.get_num_threads() called inside a kernel) and
    # then compiles it afresh in every process, with only a warning. Such a
    # kernel is never loaded from the cache, so whatever the cache holds, it
    # is compiled here, and its library says so.
    monkeypatch.setattr(_threads, "PARALLEL_MIN_FLOPS", 0.0)
    rng = np.random.default_rng(0)
    X = rng.random((3 * 256 + 5, 6))
    net = fastbp.Network([6, 5, 6], seed=0)
    net.cost_and_gradient(X, X, 1e-3)
    net.predict(X)
    net.mean_hidden_activation(X)
    fastbp.train(net, X, X, iterations=1, optimizer="sgd", batch_size=300)
    fastbp.train_many([net.copy(), net.copy()], X, X, iterations=1)
    checked = 0
    for module in (K, MK):
        for name, obj in vars(module).items():
            if isinstance(obj, numba.core.registry.CPUDispatcher):
                for cres in obj.overloads.values():
                    checked += 1
                    assert not cres.library.has_dynamic_globals, f"{module.__name__}.{name}"
    assert checked >= 5  # at least the entry points called above (their callees too when compiled here)
