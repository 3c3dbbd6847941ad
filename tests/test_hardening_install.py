"""Issue 10, item 12: a read-only install, no NUMBA_CACHE_DIR, no writable home.

numba raised "cannot cache function 'exp64': no locator available" at import.
fastbp must import, compile and run (without an on-disk cache), with at most
a warning. The package is copied to a directory the child process cannot
write; when the tests run as root (who can write anywhere) the child drops
to the unprivileged 'nobody' user first, so the directory really is
unwritable for it.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import fastbp

PROGRAM = r"""
import sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import fastbp
    from fastbp._exp import exp64
    value = exp64(0.0)
assert fastbp.__file__.startswith(sys.argv[1]), fastbp.__file__
assert value == 1.0, value
messages = [str(w.message) for w in caught if "cache" in str(w.message)]
assert len(messages) <= 1, messages
print("OK", len(messages), messages[0] if messages else "")
"""


def _run_read_only(root, argv):
    """Run ``argv`` where ``root`` (the package copy and the fake home) can
    not be written: by file modes for an ordinary user; for root, who ignores
    them, inside a private mount namespace where ``root`` is a read-only bind
    mount."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_CACHE") and k not in ("XDG_CACHE_HOME", "HOME")}
    env.update(PYTHONPATH=root, HOME=os.path.join(root, "home"), PYTHONDONTWRITEBYTECODE="1")
    if os.getuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("running as root without unshare(1): can not make a read-only directory")
        script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", script, root, *argv]
    probe = subprocess.run(_with_program(argv, [sys.executable, "-c",
                                                "import sys; open(sys.argv[1], 'w')",
                                                os.path.join(root, "fastbp", "probe")]),
                           env=env, cwd=root, capture_output=True, text=True)
    if probe.returncode == 0 or ("ermission" not in probe.stderr
                                 and "Read-only" not in probe.stderr):
        pytest.skip(f"could not make {root} read-only here: {probe.stderr[-300:]}")
    # cwd=root: `python -c` puts the working directory first on sys.path.
    return subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=300)


def _with_program(argv, program):
    """``argv`` (maybe wrapped in unshare) with its Python command replaced."""
    if argv[0] == "unshare":
        return argv[:6] + program
    return program


@pytest.fixture()
def read_only_copy():
    root = tempfile.mkdtemp(prefix="fastbp-ro-")
    try:
        package = os.path.dirname(fastbp.__file__)
        shutil.copytree(package, os.path.join(root, "fastbp"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
        for folder, dirs, files in os.walk(root):
            for name in files:
                os.chmod(os.path.join(folder, name), 0o444)
            os.chmod(folder, 0o555)
        yield root
    finally:
        for folder, dirs, files in os.walk(root):
            os.chmod(folder, 0o755)
        shutil.rmtree(root)


def test_import_and_compile_from_read_only_install(read_only_copy):
    result = _run_read_only(read_only_copy,
                            [sys.executable, "-c", PROGRAM, read_only_copy])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("OK")
    assert "no locator available" not in result.stderr


def test_cli_runs_from_read_only_install(read_only_copy):
    cli = ("import sys, fastbp, fastbp.cli; assert fastbp.__file__.startswith(sys.argv[1]); "
                  "sys.exit(fastbp.cli.main(['--help']))")
    result = _run_read_only(read_only_copy, [sys.executable, "-c", cli, read_only_copy])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # at most the one warning
