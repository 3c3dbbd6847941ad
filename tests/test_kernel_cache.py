"""A cached kernel must not outlive a change to any file compiled into it.

numba checks only the file that defines a cached function, so a kernel of
_kernels.py cached before an edit of _simd.py (or of a constant in
_compiler.py) would keep running the old code. fastbp pairs numba's stamp
with a digest of every kernel source (fastbp._compiler.KERNEL_SOURCES)."""

import os
import re
import shutil

import pytest

import fastbp
from fastbp import _compiler, _kernels as K

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
