"""Issue 10, items 8-11: checkpoints that do not fit, damaged checkpoints,
temporary files left by ``kill -9``, and the CLI's output paths.

8. a checkpoint records its run (network, optimizer and settings, data shape
   and content hash); resuming another run is a CheckpointError naming what
   differs.
9. every damaged field is a CheckpointError, raised before any training step.
10. temporary files of writers killed outright are reclaimed, and only those.
11. the CLI checks --checkpoint's directory before training.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp
import fastbp.checkpoint
from fastbp import cli
from fastbp.checkpoint import CheckpointError


def data(m=100, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((m, 3)), rng.random((m, 2))


def first_run(path, optimizer="sgd", X=None, Y=None, **kw):
    X, Y = data() if X is None else (X, Y)
    net = fastbp.Network([3, 4, 2], seed=1)
    settings = dict(optimizer=optimizer, iterations=3, checkpoint=path, checkpoint_every=1,
                    learning_rate=0.1, batch_size=10)
    if optimizer != "adam":
        settings["momentum"] = 0.9
    settings.update(kw)
    fastbp.train(net, X, Y, **settings)
    return net


def resume(path, X=None, Y=None, **kw):
    """Resume from ``path``; returns (error or None, iterations run)."""
    X, Y = data() if X is None else (X, Y)
    net = fastbp.Network([3, 4, 2], seed=1)
    before = net.theta.copy()
    ran = []
    settings = dict(optimizer="sgd", momentum=0.9, iterations=6, learning_rate=0.1,
                    batch_size=10, checkpoint=path, resume=True,
                    callback=lambda t, J, n: ran.append(t))
    settings.update(kw)
    try:
        fastbp.train(net, X, Y, **settings)
    except CheckpointError as exc:
        assert ran == [] and np.array_equal(net.theta, before)  # refused before training
        return exc, ran
    return None, ran


# ------------------------------------------------------------------ item 8
def test_the_same_run_resumes(tmp_path):
    first_run(tmp_path / "c.npz")
    error, ran = resume(tmp_path / "c.npz")
    assert error is None and ran == [3, 4, 5]


@pytest.mark.parametrize("change, expected", [
    (dict(optimizer="adam", momentum=0.0), "optimizer: 'sgd' in the checkpoint, 'adam' now"),
    (dict(momentum=0.5), "momentum: 0.9 in the checkpoint, 0.5 now"),
    (dict(nesterov=True), "nesterov: False in the checkpoint, True now"),
    (dict(learning_rate=0.01), "learning_rate: 0.1 in the checkpoint, 0.01 now"),
    (dict(batch_size=20), "batch_size: 10 in the checkpoint, 20 now"),
    (dict(weight_decay=0.1), "weight_decay: 0.0 in the checkpoint, 0.1 now"),
])
def test_another_optimizer_or_setting_is_refused(tmp_path, change, expected):
    first_run(tmp_path / "c.npz")
    error, _ = resume(tmp_path / "c.npz", **change)
    assert error is not None and expected in str(error)


def test_other_data_is_refused(tmp_path):
    first_run(tmp_path / "c.npz")
    X, Y = data()
    error, _ = resume(tmp_path / "c.npz", X=X[:7], Y=Y[:7])
    assert error is not None and "data X shape: 100x3 in the checkpoint, 7x3 now" in str(error)
    X2 = X.copy()
    X2[50, 1] += 1e-9
    error, _ = resume(tmp_path / "c.npz", X=X2, Y=Y)
    assert error is not None and "data content differs" in str(error)
    error, _ = resume(tmp_path / "c.npz", X=X, Y=Y[:, ::-1])
    assert error is not None and "data content differs" in str(error)


def test_another_network_is_refused(tmp_path):
    first_run(tmp_path / "c.npz")
    X, Y = data()
    net = fastbp.Network([3, 4, 2], activations="tanh", seed=1)
    with pytest.raises(CheckpointError, match="network activations"):
        fastbp.train(net, X, Y, optimizer="sgd", momentum=0.9, iterations=6, batch_size=10,
                     checkpoint=tmp_path / "c.npz", resume=True)


# ------------------------------------------------------------------ item 9
def rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


DAMAGE = {
    "rng not JSON": (dict(rng=np.array("{not json")), "rng is not valid JSON"),
    "rng other generator": (dict(rng=np.array(json.dumps({"bit_generator": "MT19937"}))),
                            "rng is not a state"),
    "rng bad state": (dict(rng=np.array(json.dumps({"bit_generator": "PCG64",
                                                    "state": {"state": "x"}}))),
                      "rng is not a state"),
    "iteration not scalar": (dict(iteration=np.array([1, 2])), "iteration has shape (2,)"),
    "iteration negative": (dict(iteration=np.array(-5)), "iteration is -5"),
    "iteration float": (dict(iteration=np.array(2.5)), "iteration has dtype float64"),
    "history 2-D": (dict(history=np.zeros((3, 2))), "history has shape (3, 2)"),
    "history too long": (dict(history=np.zeros(9)), "history has 9 entries but iteration is 3"),
    "history NaN": (dict(history=np.array([1.0, np.nan, 2.0])), "history contains NaN"),
    "theta NaN": (dict(theta=np.full(26, np.nan)), "theta contains NaN"),
    "theta short": (dict(theta=np.zeros(5)), "theta has shape (5,)"),
    "moments shape": (dict(moments=np.zeros((3, 26))), "moments has shape (3, 26)"),
    "step negative": (dict(step=np.array([-1])), "step is -1"),
    "step not array": (dict(step=np.array(3)), "step has shape ()"),
    "missing run": (dict(run=None), "missing entries ['run']"),
    "run not JSON": (dict(run=np.array("[")), "run is not valid JSON"),
    "run not a fingerprint": (dict(run=np.array("[1, 2]")), "run is not a run fingerprint"),
    "object array": (dict(theta=np.array([object()] * 26, dtype=object)), "object array"),
    "format version": (dict(format_version=np.array(1)), "format version 1"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_fields_are_checkpoint_errors_before_training(tmp_path, case):
    changes, expected = DAMAGE[case]
    path = tmp_path / "c.npz"
    first_run(path)
    if case == "object array":
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        arrays.update(changes)
        with open(path, "wb") as f:
            np.savez(f, **arrays)  # pickles the object array
    else:
        rewrite(path, **changes)
    error, _ = resume(path)
    assert error is not None, "resumed from a damaged checkpoint"
    assert expected in str(error), str(error)


# ----------------------------------------------------------------- item 10
def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_reclaimed_and_nothing_else(tmp_path):
    from fastbp.io import _host_tag
    path = tmp_path / "c.npz"
    host = _host_tag()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "stale": f".c.npz.{host}-{dead_pid()}.abcd_123.tmp",
            "live writer": f".c.npz.{host}-{sleeper.pid}.zzzz9999.tmp",
            "other host": f".c.npz.{host}x-{dead_pid()}.abcd_123.tmp",
            "other file's": f".d.npz.{host}-{dead_pid()}.abcd_123.tmp",
            "not ours": f".c.npz.{host}-{dead_pid()}.abc.tmp",
            "user file": "c.npz.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"x" * 100)
        link = tmp_path / f".c.npz.{host}-{dead_pid()}.linklink.tmp"
        os.symlink(tmp_path / "user file target", link)
        (tmp_path / "user file target").write_bytes(b"keep")
        first_run(path)
        left = set(os.listdir(tmp_path))
        assert names["stale"] not in left
        for kind in ("live writer", "other host", "other file's", "not ours", "user file"):
            assert names[kind] in left, kind
        assert link.name in left and (tmp_path / "user file target").read_bytes() == b"keep"
    finally:
        sleeper.kill()
        sleeper.wait()


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, fastbp

    def slow_savez(f, **arrays):
        f.write(b"partial checkpoint")
        f.flush()
        print("writing", flush=True)
        time.sleep(120)

    np.savez = slow_savez  # (this child only) the write hangs half-way, then kill -9
    rng = np.random.default_rng(0)
    X, Y = rng.random((100, 3)), rng.random((100, 2))
    fastbp.train(fastbp.Network([3, 4, 2], seed=1), X, Y, optimizer="sgd", momentum=0.9,
                 iterations=3, learning_rate=0.1, batch_size=10, checkpoint=sys.argv[1],
                 checkpoint_every=1)
""")


def test_temporary_left_by_kill_9_is_reclaimed(tmp_path):
    path = tmp_path / "c.npz"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and not path.exists()  # kill -9 left its temporary file
    first_run(path)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_reclaim_returns_what_it_removed(tmp_path):
    from fastbp.io import _host_tag, reclaim_temporaries
    path = tmp_path / "m.npz"
    stale = tmp_path / f".m.npz.{_host_tag()}-{dead_pid()}.q1w2e3r4.tmp"
    stale.write_bytes(b"")
    assert reclaim_temporaries(path) == [stale.name]
    assert reclaim_temporaries(path) == []


# ----------------------------------------------------------------- item 11
@pytest.mark.parametrize("where", ["missing dir", "under a file", "a directory"])
def test_cli_checks_the_checkpoint_path_before_training(tmp_path, capsys, where):
    X, Y = data()
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    checkpoint = {"missing dir": tmp_path / "nope" / "c.npz",
                  "under a file": tmp_path / "file" / "c.npz",
                  "a directory": tmp_path / "dir"}[where]
    code = cli.main(["train", "--data", str(tmp_path / "d.npz"), "--layers", "3,4,2",
                     "--optimizer", "sgd", "--iterations", "20",
                     "--checkpoint", str(checkpoint), "--checkpoint-every", "5",
                     "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2
    assert "--checkpoint" in captured.err
    assert "training" not in captured.out and "done" not in captured.out


@pytest.mark.parametrize("where", ["missing dir", "under a file", "a directory"])
def test_train_checks_the_checkpoint_path_before_training(tmp_path, where):
    X, Y = data()
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    checkpoint = {"missing dir": tmp_path / "nope" / "c.npz",
                  "under a file": tmp_path / "file" / "c.npz",
                  "a directory": tmp_path / "dir"}[where]
    ran = []
    with pytest.raises(ValueError, match="checkpoint"):
        fastbp.train(fastbp.Network([3, 4, 2]), X, Y, optimizer="sgd", iterations=20,
                     checkpoint=checkpoint, checkpoint_every=5,
                     callback=lambda t, J, n: ran.append(t))
    assert ran == []


# ------------------------------------------------------- item 9, fuzzed
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FUZZ = {}


def _valid_checkpoint_bytes(tmp_path_factory):
    if "bytes" not in _FUZZ:
        path = tmp_path_factory.mktemp("fuzz") / "c.npz"
        first_run(path)
        _FUZZ["bytes"] = path.read_bytes()
    return _FUZZ["bytes"]


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1, exclude_max=True)))
def test_corrupted_checkpoints_raise_only_checkpoint_errors(tmp_path_factory, edits, cut):
    """Property: overwrite a few bytes (and maybe truncate) a valid
    checkpoint: loading it either works or raises CheckpointError — never
    another exception."""
    raw = bytearray(_valid_checkpoint_bytes(tmp_path_factory))
    for where, value in edits:
        raw[int(where * len(raw))] = value
    if cut is not None:
        raw = raw[:int(cut * len(raw))]
    path = tmp_path_factory.getbasetemp() / "fuzzed.npz"
    path.write_bytes(bytes(raw))
    X, Y = data()
    run = fastbp.checkpoint.run_fingerprint(
        fastbp.Network([3, 4, 2], seed=1), X, Y, {})
    try:
        fastbp.checkpoint.load_checkpoint(path, fastbp.Network([3, 4, 2], seed=1))
        fastbp.checkpoint.load_checkpoint(path, fastbp.Network([3, 4, 2], seed=1), run)
    except CheckpointError:
        pass
