"""Checkpoints: everything needed to resume training bit-identically.

A checkpoint holds θ, the optimizer state (velocity or Adam moments, step
count), the iteration count, the shuffling RNG's state and the cost history,
in an ``.npz`` written atomically: to a temporary file in the same directory,
flushed to disk, then renamed over the old checkpoint. A crash during the
write leaves the previous checkpoint intact. Loading never unpickles.
"""

import json
import os

import numpy as np

from .io import atomic_write

FORMAT = "fastbp-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or belongs to another network."""


def save_checkpoint(path, net, state, history):
    """Atomically write ``net``'s parameters, the optimizer ``state`` and the
    cost ``history`` to ``path``."""
    path = os.fspath(path)
    rng = state.get("rng")
    arrays = dict(
        format=np.array(FORMAT), format_version=np.array(VERSION),
        layer_sizes=np.array(net.layer_sizes, np.int64), dtype=np.array(net.dtype.name),
        theta=net.theta, moments=state["moments"], step=state["step"],
        iteration=np.array(state.get("iteration", 0), np.int64),
        history=np.asarray(history, np.float64),
        rng=np.array(json.dumps(rng) if rng is not None else ""))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, net):
    """Read a checkpoint for ``net``; returns (theta, state, history)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
    need = {"format", "format_version", "layer_sizes", "dtype", "theta", "moments", "step",
            "iteration", "history", "rng"}
    if set(data) != need or str(data["format"]) != FORMAT:
        raise CheckpointError(f"{path}: not a fastbp checkpoint")
    if int(data["format_version"]) != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {int(data['format_version'])}"
                              f", this fastbp reads version {VERSION}")
    if tuple(data["layer_sizes"].tolist()) != net.layer_sizes or str(data["dtype"]) != net.dtype.name:
        raise CheckpointError(
            f"{path}: the checkpoint is for a {data['layer_sizes'].tolist()} {data['dtype']} "
            f"network, not {list(net.layer_sizes)} {net.dtype.name}")
    theta, moments = data["theta"], data["moments"]
    if (theta.shape != (net.n_params,) or theta.dtype != net.dtype
            or moments.shape != (2, net.n_params) or moments.dtype != net.dtype
            or data["step"].shape != (1,) or not np.all(np.isfinite(theta))):
        raise CheckpointError(f"{path}: damaged checkpoint (parameters or optimizer state)")
    state = {"moments": moments.copy(), "step": data["step"].astype(np.int64),
             "iteration": int(data["iteration"])}
    if str(data["rng"]):
        state["rng"] = json.loads(str(data["rng"]))
    return theta, state, list(data["history"])
