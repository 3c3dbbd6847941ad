"""Checkpoint and resume: a real signal to a training subprocess, then a
resumed run that ends bit-identical to one never interrupted."""

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp
from fastbp.checkpoint import CheckpointError, load_checkpoint
from helpers import make_data, net_for

RUN = textwrap.dedent("""
    import hashlib, sys
    import numpy as np, fastbp
    path, iterations, resume, optimizer = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    rng = np.random.default_rng(0)
    X = rng.random((3000, 20)); Y = rng.random((3000, 5))
    net = fastbp.Network([20, 30, 5], seed=1, epsilon=0.1)
    def tick(it, J, net):
        print("iteration", it, flush=True)
    try:
        history = fastbp.train(net, X, Y, learning_rate=0.05, weight_decay=1e-4,
                               iterations=iterations, optimizer=optimizer, batch_size=50,
                               momentum=0.9 if optimizer != "adam" else 0.0, seed=5,
                               callback=tick, checkpoint=path if path != "-" else None,
                               checkpoint_every=7, resume=resume)
    except fastbp.TrainingInterrupted as exc:
        print("interrupted:", exc, flush=True)
        sys.exit(3)
    print("result", hashlib.sha256(net.theta.tobytes() + np.asarray(history).tobytes()).hexdigest())
""")


def run(*args, **kw):
    return subprocess.Popen([sys.executable, "-c", RUN, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("sig,optimizer", [(signal.SIGINT, "sgd"), (signal.SIGTERM, "adam"),
                                           (signal.SIGTERM, "gd")])
def test_signal_writes_a_checkpoint_and_resume_is_bit_identical(tmp_path, sig, optimizer):
    total = 400
    reference = run("-", total, 0, optimizer)
    out, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err
    expected = out.split()[-1]

    path = tmp_path / "ckpt.npz"
    child = run(path, total, 0, optimizer)
    for line in child.stdout:
        if line.startswith("iteration 20"):
            child.send_signal(sig)
            break
    out, err = child.communicate(timeout=600)
    assert child.returncode == 3, err
    assert "checkpoint written to" in out and signal.Signals(sig).name in out
    assert path.exists()
    interrupted_at = int(out.split("after iteration ")[1].split(";")[0])
    assert 20 < interrupted_at < total

    resumed = run(path, total, 1, optimizer)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    first = int(out.split("iteration ")[1].split()[0])
    assert first == interrupted_at  # it continued, it did not start over
    assert out.split()[-1] == expected


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    net = net_for((4, 3, 2))
    X, Y = make_data((4, 3, 2), 30)
    path = tmp_path / "c.npz"
    fastbp.train(net, X, Y, iterations=4, checkpoint=path, checkpoint_every=2, optimizer="sgd")
    good = path.read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        fastbp.train(net, X, Y, iterations=4, checkpoint=path, checkpoint_every=1, optimizer="sgd")
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_a_bad_checkpoint_is_refused(tmp_path):
    net = net_for((4, 3, 2))
    X, Y = make_data((4, 3, 2), 30)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        fastbp.train(net, X, Y, checkpoint=bad, resume=True)
    other = tmp_path / "other.npz"
    fastbp.train(net_for((4, 5, 2)), X, Y, iterations=1, checkpoint=other, checkpoint_every=1)
    with pytest.raises(CheckpointError, match="is for a"):
        fastbp.train(net, X, Y, checkpoint=other, resume=True)


def test_divergence_never_overwrites_a_good_checkpoint(tmp_path):
    net = fastbp.Network([2, 3, 1], activations="identity", epsilon=1.0)
    X = np.array([[1.0, -1.0], [1.0, 1.0]])
    Y = np.array([[1.0], [0.0]])
    path = tmp_path / "c.npz"
    fastbp.train(net, X, Y, learning_rate=0.01, iterations=2, checkpoint=path, checkpoint_every=1)
    good = path.read_bytes()
    X[0, 0] = 1e200
    with pytest.raises(fastbp.DivergenceError):
        fastbp.train(net, X, Y, learning_rate=1e100, iterations=5, checkpoint=path,
                     checkpoint_every=1)
    assert path.read_bytes() == good
    theta, _, _ = load_checkpoint(path, net)
    assert np.all(np.isfinite(theta))


def test_checkpoint_arguments():
    net = net_for((4, 3, 2))
    X, Y = make_data((4, 3, 2), 10)
    with pytest.raises(ValueError, match="checkpoint works with"):
        fastbp.train(net, X, Y, optimizer="lbfgs", checkpoint="x.npz")
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        fastbp.train(net, X, Y, resume=True)
