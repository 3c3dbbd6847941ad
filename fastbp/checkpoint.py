"""Checkpoints: everything needed to resume training bit-identically.

A checkpoint holds θ, the optimizer state (velocity or Adam moments, step
count), the iteration count, the shuffling RNG's state and the cost history,
in an ``.npz`` written atomically: to a temporary file in the same directory,
flushed to disk, then renamed over the old checkpoint. A crash during the
write leaves the previous checkpoint intact, and the temporary files of
writers killed outright are reclaimed by the next write
(:func:`fastbp.io.reclaim_temporaries`). Loading never unpickles.

It also records the *run* it belongs to (:func:`run_fingerprint`): the
network, the optimizer and every setting that shapes the trajectory, and the
training data's shape and a hash of its content. Resuming with a different
run — another optimizer, other settings, other data — is refused with a
:class:`CheckpointError` naming what differs, as is every damaged field,
before any training step.
"""

import hashlib
import json
import os

import numpy as np

from ._validation import all_finite
from .io import (NotARegularFile, SafeArchive, atomic_write, check_entry_count,
                 open_regular_file)

FORMAT = "fastbp-checkpoint"
VERSION = 2
ENTRIES = ("format", "format_version", "layer_sizes", "dtype", "theta", "moments", "step",
           "iteration", "history", "rng", "run")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or belongs to another network,
    optimizer or data set."""


def run_fingerprint(net, X, Y, settings, comm=None):
    """What a checkpoint must match to be resumed: a JSON-able dict.

    Parameters
    ----------
    net : fastbp.Network
    X, Y : ndarray
        The training data as the kernels see it (this rank's shard with MPI).
    settings : dict
        The optimizer's name and the settings that shape the trajectory
        (JSON-able values).
    comm : mpi4py communicator, optional
        The data hash then covers every rank's shard, in rank order, and the
        shapes count all examples.

    The data part is the shapes of X and Y, their dtype and a BLAKE2b digest
    of their bytes (one pass over the data, no copy).
    """
    digest = hashlib.blake2b(digest_size=16)
    for a in (X, Y):
        digest.update(repr(a.shape).encode())
        digest.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    m = X.shape[0]
    content = digest.hexdigest()
    if comm is not None:
        m = comm.allreduce(m)
        content = hashlib.blake2b("".join(comm.allgather(content)).encode(),
                                  digest_size=16).hexdigest()
    return {
        "network": {"layer_sizes": list(net.layer_sizes), "activations": list(net.activations),
                    "loss": net.loss, "dtype": net.dtype.name},
        "optimizer": dict(settings),
        "data": {"X shape": [m, X.shape[1]], "Y shape": [m, Y.shape[1]],
                 "dtype": X.dtype.name, "content": content},
    }


def save_checkpoint(path, net, state, history, run=None):
    """Atomically write ``net``'s parameters, the optimizer ``state``, the
    cost ``history`` and the ``run`` fingerprint to ``path``."""
    path = os.fspath(path)
    rng = state.get("rng")
    arrays = dict(
        format=np.array(FORMAT), format_version=np.array(VERSION, np.int64),
        layer_sizes=np.array(net.layer_sizes, np.int64), dtype=np.array(net.dtype.name),
        theta=net.theta, moments=state["moments"], step=state["step"],
        iteration=np.array(state.get("iteration", 0), np.int64),
        history=np.asarray(history, np.float64),
        rng=np.array(json.dumps(rng) if rng is not None else ""),
        run=np.array(json.dumps(run) if run is not None else ""))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, net, run=None):
    """Read and check a checkpoint for ``net``; returns (theta, state, history).

    With ``run`` (a :func:`run_fingerprint`), the checkpoint must have been
    written by the same run. Every problem — unreadable, not a checkpoint,
    another network, another run, any damaged field — raises
    :class:`CheckpointError` naming it.
    """
    path = os.fspath(path)
    try:
        f = open_regular_file(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except NotARegularFile as exc:
        raise CheckpointError(f"{path}: {exc}; a checkpoint is a .npz file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint "
                              f"({exc.strerror or exc})") from None
    with f:
        try:
            check_entry_count(f, len(ENTRIES), _failer(path))
            npz = np.load(f, allow_pickle=False)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
        if not hasattr(npz, "zip"):
            raise CheckpointError(f"{path}: not a readable checkpoint (not a .npz archive)")
        with npz:
            try:
                return _Reader(path, npz, os.fstat(f.fileno()).st_size, net, run).read()
            except CheckpointError:
                raise
            except Exception as exc:  # CRC errors, truncated members, MemoryError, …
                raise CheckpointError(f"{path}: damaged checkpoint "
                                      f"({type(exc).__name__}: {exc})") from None


def _failer(path):
    def fail(problem):
        raise CheckpointError(f"{path}: {problem}")
    return fail


class _Reader:
    def __init__(self, path, npz, file_size, net, run):
        self.path, self.net, self.run = path, net, run
        self.archive = SafeArchive(npz, file_size, self.fail, max_members=len(ENTRIES))

    def fail(self, problem):
        raise CheckpointError(f"{self.path}: {' '.join(str(problem).split())}")

    def damaged(self, problem):
        self.fail(f"damaged checkpoint: {problem}")

    def get(self, key, **kw):
        return self.archive.array(key, **kw)

    def scalar(self, key, kinds):
        return self.get(key, kinds=kinds, ndim=0)[()]

    def read(self):
        net = self.net
        keys = set(self.archive.members)
        if "format" not in keys or str(self.scalar("format", "U")) != FORMAT:
            self.fail("not a fastbp checkpoint")
        if "format_version" not in keys:
            self.damaged("no format_version entry")
        version = int(self.scalar("format_version", "iu"))
        if version != VERSION:
            old = " (written by an older fastbp, which did not record the run it belongs " \
                  "to; start a new run)" if version < VERSION else ""
            self.fail(f"checkpoint format version {version}{old}, this fastbp reads "
                      f"version {VERSION}")
        if keys != set(ENTRIES):
            missing = sorted(set(ENTRIES) - keys)
            extra = sorted(keys - set(ENTRIES))
            self.damaged(f"missing entries {missing}" if missing else
                         f"unexpected entries {extra}")

        sizes = self.get("layer_sizes", kinds="iu", ndim=1)
        dtype = str(self.scalar("dtype", "U"))
        if tuple(sizes.tolist()) != net.layer_sizes or dtype != net.dtype.name:
            self.fail(f"the checkpoint is for a {sizes.tolist()} {dtype} network, not "
                      f"{list(net.layer_sizes)} {net.dtype.name}")
        run = self.run_entry()
        if self.run is not None:
            self.compare(run, self.run)

        n = net.n_params
        theta = self.get("theta", kinds="f", ndim=1, expect_shape=(n,),
                         shape_hint=f"the network has {n} parameters")
        moments = self.get("moments", kinds="f", ndim=2, expect_shape=(2, n),
                           shape_hint="velocity or Adam's two moments")
        for key, value in (("theta", theta), ("moments", moments)):
            if value.dtype != net.dtype:
                self.damaged(f"{key} has dtype {value.dtype}, the network is {net.dtype.name}")
            if not all_finite(value):
                self.damaged(f"{key} contains NaN or Inf")
        step = self.get("step", kinds="iu", ndim=1, expect_shape=(1,),
                        shape_hint="the update count")
        if step[0] < 0:
            self.damaged(f"step is {int(step[0])}, expected a count >= 0")
        iteration = int(self.scalar("iteration", "iu"))
        if iteration < 0:
            self.damaged(f"iteration is {iteration}, expected a count >= 0")
        history = self.get("history", kinds="f", ndim=1)
        if history.shape[0] > iteration:
            self.damaged(f"history has {history.shape[0]} entries but iteration is "
                         f"{iteration}; expected at most one cost per iteration")
        if not all_finite(history):
            self.damaged("history contains NaN or Inf")
        state = {"moments": moments.copy(), "step": step.astype(np.int64),
                 "iteration": iteration}
        rng = self.rng_entry()
        if rng is not None:
            state["rng"] = rng
        return theta, state, [float(J) for J in history]

    def json_entry(self, key):
        text = str(self.scalar(key, "U"))
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            self.damaged(f"{key} is not valid JSON ({exc})")

    def rng_entry(self):
        state = self.json_entry("rng")
        if state is None:
            return None
        try:
            np.random.default_rng().bit_generator.state = state  # validates every field
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            self.damaged(f"rng is not a state of numpy's default generator "
                         f"({type(exc).__name__}: {exc})")
        return state

    def run_entry(self):
        run = self.json_entry("run")
        if run is None:
            return None
        if not isinstance(run, dict) or not all(
                isinstance(run.get(k), dict) for k in ("network", "optimizer", "data")):
            self.damaged("run is not a run fingerprint")
        return run

    def compare(self, saved, now):
        if saved is None:
            self.fail("the checkpoint does not record the run it belongs to; start a new run")
        differences = []
        for part in ("network", "optimizer", "data"):
            old, new = saved.get(part, {}), now.get(part, {})
            for key in sorted(set(old) | set(new), key=str):
                if old.get(key) != new.get(key):
                    if key == "content":
                        differences.append("data content differs (same shapes, other values)")
                    else:
                        label = key if part == "optimizer" else f"{part} {key}"
                        differences.append(f"{label}: {_show(old.get(key))} in the checkpoint, "
                                           f"{_show(new.get(key))} now")
        if differences:
            shown = "; ".join(differences[:6])
            more = f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
            self.fail(f"the checkpoint belongs to another run — {shown}{more}. Resume with "
                      f"the same optimizer, settings and data, or start a new checkpoint")


def _show(value):
    if value is None:
        return "unset"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    return repr(value)
