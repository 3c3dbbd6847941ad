"""The command line's --checkpoint/--resume and --mpi."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastbp


def fastbp_cli(*args, cwd, mpi_ranks=None):
    cmd = [sys.executable, "-m", "fastbp", *map(str, args)]
    if mpi_ranks:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable))
        if mpiexec is None:
            pytest.skip("no mpiexec (pip install -e '.[mpi]')")
        cmd = [mpiexec, "-n", str(mpi_ranks), *cmd]
    env = dict(os.environ, NUMBA_NUM_THREADS="1" if mpi_ranks else os.environ.get(
        "NUMBA_NUM_THREADS", str(os.cpu_count())))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((300, 8))
    np.savez(tmp_path / "d.npz", X=X, Y=X[:, :3])
    return tmp_path


def test_resume_from_checkpoint_equals_an_uninterrupted_run(data):
    common = ["train", "--data", "d.npz", "--layers", "8,5,3", "--optimizer", "sgd",
              "--batch-size", "16", "--learning-rate", "0.3"]
    straight = fastbp_cli(*common, "--iterations", 12, "--out", "a", cwd=data)
    assert straight.returncode == 0, straight.stderr
    first = fastbp_cli(*common, "--iterations", 5, "--checkpoint", "c.npz", "--checkpoint-every",
                       5, "--out", "b", cwd=data)
    assert first.returncode == 0, first.stderr
    second = fastbp_cli(*common, "--iterations", 12, "--checkpoint", "c.npz", "--resume",
                        "--out", "b", cwd=data)
    assert second.returncode == 0, second.stderr
    a = fastbp.load(data / "a" / "model.npz")
    b = fastbp.load(data / "b" / "model.npz")
    np.testing.assert_array_equal(a.theta, b.theta)


def test_resume_needs_a_checkpoint(data):
    run = fastbp_cli("train", "--data", "d.npz", "--layers", "8,5,3", "--resume", cwd=data)
    assert run.returncode == 2 and "fastbp: error: --resume needs --checkpoint" in run.stderr


def test_mpi_training_matches_one_process(data):
    pytest.importorskip("mpi4py")
    common = ["train", "--data", "d.npz", "--layers", "8,5,3", "--iterations", 15,
              "--optimizer", "gd", "--learning-rate", "0.5"]
    one = fastbp_cli(*common, "--out", "one", cwd=data)
    assert one.returncode == 0, one.stderr
    two = fastbp_cli(*common, "--out", "two", "--mpi", cwd=data, mpi_ranks=2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("saved") == 1  # rank 0 alone writes and talks
    a = fastbp.load(data / "one" / "model.npz")
    b = fastbp.load(data / "two" / "model.npz")
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-12, atol=1e-15)
