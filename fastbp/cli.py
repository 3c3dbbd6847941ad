"""Command line: ``fastbp demo``, ``fastbp train``, ``fastbp predict`` (also
``python -m fastbp ...``).

Every user error — a missing or unreadable file, bad data, shapes that do not
fit ``--layers`` or the model, a bad flag value, a bad model file, training
that diverges — prints one line ``fastbp: error: ...`` on stderr and exits with
status 2, never a traceback (set ``FASTBP_DEBUG=1`` to get the traceback).
argparse's own usage errors also exit with 2.
"""

import argparse
import math
import os
import sys
import time
import warnings

from . import io as model_io
from . import plots


class UsageError(Exception):
    """A mistake of the user's, reported as one ``fastbp: error:`` line."""


#: Exceptions that are the user's to fix: reported in one line, exit status 2.
#: (fastbp's ValueError and TypeError name the bad argument; ModelFileError
#: is a ValueError; DivergenceError is a FloatingPointError.)
USER_ERRORS = (UsageError, ValueError, TypeError, OSError, FloatingPointError)

DATA_FORMATS = (".npz", ".npy", ".csv")
PREDICTION_FORMATS = (".npy", ".csv")


# --------------------------------------------------------------------- demo
def demo(args):
    """Train UFLDL's sparse autoencoder on 8×8 patches of a whitened real
    photograph (or, with ``--images synthetic``, patches generated in code),
    then save the model, the cost curve and the learned features in ``args.out``."""
    import numpy as np

    import fastbp
    from fastbp.datasets import PHOTO, filter_locality, photo_patches, sample_patches

    _check_int(args.iterations, "--iterations", low=1)
    _check_int(args.patches, "--patches", low=1)
    out = _output_dir(args.out)

    t0 = time.perf_counter()
    images = args.images
    if images == "photo":
        try:
            X = photo_patches(args.patches, seed=args.seed)
        except (ImportError, OSError) as exc:  # matplotlib or its sample data missing
            print(f"fastbp: warning: could not read {PHOTO} from matplotlib's sample data "
                  f"({_reason(exc)}); using synthetic images", file=sys.stderr)
            images = "synthetic"
    if images == "photo":
        print(f"data      {X.shape[0]:,} 8x8 patches of {PHOTO} (matplotlib's sample "
              f"data, no download), whitened, scaled to [0.1, 0.9]")
    else:
        X = sample_patches(args.patches, seed=args.seed)
        print(f"data      {X.shape[0]:,} 8x8 patches generated in code (no download), "
              f"scaled to [0.1, 0.9]")
    net = fastbp.Network([64, 25, 64], activations="sigmoid", init="uniform", seed=args.seed)
    print(f"network   {net}  ({net.n_params:,} parameters)")
    kw = dict(weight_decay=1e-4, sparsity_target=0.01, sparsity_weight=3.0)
    print(f"cost      sparse autoencoder, lambda={kw['weight_decay']}, "
          f"rho={kw['sparsity_target']}, beta={kw['sparsity_weight']}")
    J0 = net.cost(X, X, **kw)
    print(f"training  L-BFGS, {args.iterations} iterations, {fastbp.get_num_threads()} threads; "
          f"J = {J0:.5f} at the start")

    def progress(it, J, _net):
        if (it + 1) % max(1, args.iterations // 8) == 0:
            print(f"          iteration {it + 1:4d}  J = {J:.5f}", flush=True)

    t1 = time.perf_counter()
    history = fastbp.train(net, X, X, optimizer="lbfgs", iterations=args.iterations,
                           callback=progress, **kw)
    t2 = time.perf_counter()
    rho_hat = net.mean_hidden_activation(X)
    J_end = history[-1] if len(history) else J0
    print(f"done      J = {J_end:.5f} after {len(history)} iterations in {t2 - t1:.1f} s "
          f"({(t2 - t1) / max(1, len(history)) * 1e3:.1f} ms per iteration); "
          f"mean hidden activation {rho_hat.mean():.4f} (target 0.01); total {t2 - t0:.1f} s")
    locality = float(np.median(filter_locality(net.weights[0])))
    print(f"features  median share of a filter's energy in its 16 strongest pixels: "
          f"{locality:.2f} (random filters about 0.71; small localized edges near 1)")

    files = _save_outputs(net, history, out, initial=J0, features=True,
                          features_title=f"learned features (rows of W1)\nenergy in 16 "
                                         f"strongest pixels: median {locality:.2f}")
    _print_files(files)
    return 0


# -------------------------------------------------------------------- train
def train(args):
    """Train a network on a data file; save model.npz and loss.png in ``args.out``."""
    import fastbp

    layers = _parse_layers(args.layers)
    activations = _parse_activations(args.activation, len(layers) - 1, args.loss)
    _resolve_training_defaults(args)
    _check_int(args.iterations, "--iterations", low=1)
    _check_int(args.batch_size, "--batch-size", low=1)
    _check_int(args.targets, "--targets", low=0)
    _check_float(args.learning_rate, "--learning-rate", positive=True)
    _check_float(args.weight_decay, "--weight-decay")
    _check_float(args.sparsity_weight, "--sparsity-weight")
    if args.sparsity_target is not None and not args.sparsity_weight:
        raise UsageError(f"--sparsity-target {args.sparsity_target} needs --sparsity-weight "
                         f"BETA > 0 (the sparsity penalty's weight); without it the target "
                         f"would be ignored")
    if args.sparsity_weight:
        if args.sparsity_target is None or not 0 < args.sparsity_target < 1:
            raise UsageError(f"--sparsity-weight needs --sparsity-target, the target mean "
                             f"activation in (0, 1); got {args.sparsity_target}")
        if len(layers) < 3:
            raise UsageError("--sparsity-weight needs a hidden layer (at least 3 --layers)")
        first = activations if isinstance(activations, str) else activations[0]
        if first != "sigmoid":
            raise UsageError(f"--sparsity-weight needs a sigmoid first hidden layer "
                             f"(mean activations in (0, 1)), not {first}")
        if args.optimizer not in ("gd", "lbfgs"):
            raise UsageError(f"--sparsity-weight needs the full batch: use --optimizer gd or "
                             f"lbfgs, not {args.optimizer}")

    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.checkpoint and args.optimizer == "lbfgs":
        raise UsageError("--checkpoint works with --optimizer gd, sgd or adam")
    _check_int(args.checkpoint_every, "--checkpoint-every", low=0)
    if args.checkpoint:
        _check_output_file(args.checkpoint, "--checkpoint")
    comm = _mpi_comm() if args.mpi else None
    if comm is not None and args.optimizer not in ("gd", "lbfgs"):
        raise UsageError("--mpi needs a full-batch optimizer: --optimizer gd or lbfgs")
    lead = comm is None or comm.rank == 0

    notes = []
    X, Y = read_data(args.data, targets=args.targets, purpose="train", notes=notes)
    name = args.data
    autoencoder = Y is None
    if X.shape[1] != layers[0]:
        raise UsageError(f"{name}: X has {X.shape[1]} columns, but --layers starts with "
                         f"{layers[0]} (the input width)"
                         + _targets_hint(name, X.shape[1], layers, args.targets))
    if autoencoder:
        if layers[-1] != X.shape[1]:
            raise UsageError(f"{name} has no targets, so fastbp trains an autoencoder (Y = X) "
                             f"and --layers must end with {X.shape[1]}, not {layers[-1]}")
        Y = X
    else:
        if Y.shape[0] != X.shape[0]:
            raise UsageError(f"{name}: X has {X.shape[0]} rows but Y has {Y.shape[0]}")
        if Y.shape[1] != layers[-1]:
            raise UsageError(f"{name}: Y has {Y.shape[1]} columns, but --layers ends with "
                             f"{layers[-1]} (the output width)")

    if comm is not None:
        # Each rank trains on its own contiguous slice of the examples.
        import numpy as np
        shard = np.array_split(np.arange(X.shape[0]), comm.size)[comm.rank]
        X, Y = X[shard], Y[shard]
        if X.shape[0] == 0:
            raise UsageError(f"{name}: {comm.size} MPI ranks but fewer examples")
    net = fastbp.Network(layers, activations=activations, loss=args.loss, dtype=args.dtype,
                         init=args.init, seed=args.seed)
    out = _output_dir(args.out)
    m = X.shape[0]
    say = print if lead else _quiet  # only rank 0 talks and writes files
    what = "autoencoder, Y = X" if autoencoder else f"{Y.shape[1]} target columns"
    say(f"data      {name}: {m:,} examples x {X.shape[1]} features ({what})")
    for note in notes:
        say(f"          {note}")
    say(f"network   {net}  ({net.n_params:,} parameters)")
    kw = dict(learning_rate=args.learning_rate, weight_decay=args.weight_decay,
              iterations=args.iterations, optimizer=args.optimizer, batch_size=args.batch_size,
              seed=args.seed, comm=comm)
    if args.checkpoint:
        kw.update(checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                  resume=args.resume)
    if args.sparsity_weight:
        kw.update(sparsity_target=args.sparsity_target, sparsity_weight=args.sparsity_weight)
    unit = "epochs" if args.optimizer in ("sgd", "adam") else "iterations"
    chosen = " (default)" if args.default_optimizer else ""
    alpha = "" if args.optimizer == "lbfgs" else f", learning rate {args.learning_rate:g}"
    say(f"training  {args.optimizer}{chosen}{alpha}, {args.iterations} {unit}, "
          f"{fastbp.get_num_threads()} threads")

    bar = _progress_bar(args.iterations, unit) if lead else None
    t1 = time.perf_counter()

    def progress(it, J, _net):
        elapsed = max(time.perf_counter() - t1, 1e-9)
        if bar is not None:
            bar.set_postfix({"J": f"{J:.5g}", "examples/s": f"{(it + 1) * m / elapsed:,.0f}"},
                            refresh=False)
            bar.update(1)

    try:
        history = fastbp.train(net, X, Y, callback=progress, **kw)
    except fastbp.DivergenceError as exc:
        hint = "; try a smaller --learning-rate" if args.optimizer != "lbfgs" else ""
        raise UsageError(f"training diverged: {exc}{hint}") from None
    except fastbp.TrainingInterrupted as exc:
        if bar is not None:
            bar.close()
            bar = None
        if lead:
            sys.stderr.write(f"fastbp: interrupted by {exc}; run the same command with "
                             f"--resume to continue\n")
        return 130
    finally:
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()
    if len(history):
        say(f"done      J = {history[-1]:.6g} after {len(history)} {unit} in {t2 - t1:.1f} s "
              f"({len(history) * m / max(t2 - t1, 1e-9):,.0f} examples/s)")
        note = _barely_moved(history[0], history[-1], args) if len(history) > 1 else None
        if note and lead:
            print(f"fastbp: warning: {note}", file=sys.stderr)
    else:
        say(f"done      no {unit} run")
    if lead:
        files = _save_outputs(net, history, out, initial=None, features=False,
                              xlabel=unit[:-1])
        _print_files(files)
    return 0


def _quiet(*args, **kwargs):
    pass


#: What ``fastbp train`` uses when --optimizer / --learning-rate are not given.
#: L-BFGS needs no learning rate and trains unscaled data (64-30-10 on
#: scikit-learn's digits: 99 % training accuracy in 100 iterations); it can
#: not checkpoint, so --checkpoint without --optimizer gets Adam instead.
DEFAULT_OPTIMIZER = "lbfgs"
CHECKPOINT_OPTIMIZER = "adam"
DEFAULT_LEARNING_RATE = {"gd": 0.1, "sgd": 0.1, "adam": 0.001, "lbfgs": 0.1}
#: A run whose cost fell by less than this fraction "barely moved".
BARELY_MOVED = 0.01


def _resolve_training_defaults(args):
    """Fill in --optimizer and --learning-rate when the user gave none."""
    args.default_optimizer = args.optimizer is None
    if args.optimizer is None:
        args.optimizer = CHECKPOINT_OPTIMIZER if args.checkpoint else DEFAULT_OPTIMIZER
    if args.learning_rate is None:
        args.learning_rate = DEFAULT_LEARNING_RATE[args.optimizer]
    elif args.optimizer == "lbfgs":
        default = " (the default optimizer)" if args.default_optimizer else ""
        raise UsageError(f"--learning-rate is not used by lbfgs{default}; pass "
                         f"--optimizer gd, sgd or adam to train with a learning rate")


def _barely_moved(first, last, args):
    """A sentence when J fell by less than BARELY_MOVED of its first value, else None."""
    if not (math.isfinite(first) and math.isfinite(last)) or first <= 0:
        return None
    if first - last >= BARELY_MOVED * first:
        return None
    tips = ["more --iterations"]
    if args.optimizer != "lbfgs":
        tips.append("a larger --learning-rate (now {:g})".format(args.learning_rate))
        tips.append("--optimizer lbfgs")
    tips.append("inputs scaled to about [0, 1]")
    return (f"the cost barely moved (J {first:.5g} -> {last:.5g}, "
            f"{(first - last) / first:+.2%}): the network has learned little; try "
            + ", ".join(tips))


def _targets_hint(name, columns, layers, targets):
    """A hint for the forgotten --targets: more columns than --layers takes."""
    if columns <= layers[0] or not os.fspath(name).lower().endswith(".csv"):
        return ""
    extra = columns - layers[0]
    if targets:
        return f"; the file has {columns + targets} columns, of which --targets {targets} are Y"
    return (f"; if its last {extra} columns are the targets Y, pass --targets {extra}"
            + (f" (--layers ends with {layers[-1]})" if extra != layers[-1] else ""))


def _mpi_comm():
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("--mpi needs mpi4py: pip install 'fastbp[mpi]'") from None
    return MPI.COMM_WORLD


# ------------------------------------------------------------------ predict
def predict(args):
    """Write the network's outputs h(x) for every row of a data file."""
    out_ext = os.path.splitext(args.out)[1].lower()
    if out_ext not in PREDICTION_FORMATS:
        raise UsageError(f"--out {args.out!r}: predictions are written as .npy or .csv, "
                         f"not {out_ext or '(no extension)'!r}")
    _check_int(args.targets, "--targets", low=0)
    net = model_io.load(args.model)
    notes = []
    X, _ = read_data(args.data, targets=args.targets, purpose="predict", notes=notes)
    if X.shape[1] != net.layer_sizes[0]:
        sizes = "-".join(map(str, net.layer_sizes))
        raise UsageError(f"{args.data}: X has {X.shape[1]} columns, but the model "
                         f"{args.model} takes {net.layer_sizes[0]} inputs (layers {sizes})")
    P = net.predict(X)
    _makedirs_for(args.out)
    if out_ext == ".npy":
        model_io.atomic_write(args.out, lambda f: _save_npy(f, P))
    else:
        fmt = "%.9g" if P.dtype.itemsize == 4 else "%.17g"  # exact round trip
        model_io.atomic_write(args.out, lambda f: _save_csv(f, P, fmt))
    for note in notes:
        print(f"data         {args.data}: {note}")
    print(f"predictions  {P.shape[0]:,} x {P.shape[1]} ({P.dtype.name}) written to {args.out}")
    return 0


def _save_npy(f, array):
    import numpy as np

    np.save(f, array, allow_pickle=False)


def _save_csv(f, array, fmt):
    import numpy as np

    np.savetxt(f, array, fmt=fmt, delimiter=",")


# --------------------------------------------------------------------- data
def read_data(path, targets=0, purpose="train", notes=None):
    """X (and Y, or None) from a .npz (arrays X, optional Y), .npy (X) or .csv
    (numbers, optional header line, the last ``targets`` columns are Y) file.

    Integer and boolean data become float64; everything else that is not a
    finite real number is refused. Raises :class:`UsageError` naming the file.
    For ``purpose="predict"`` a .npz file's Y is ignored and a .csv file's
    target columns are dropped. A .csv file's first line is a header only if
    none of its fields is a number; ``notes`` (a list), if given, then gets a
    line saying so.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in DATA_FORMATS:
        raise UsageError(f"{name}: unsupported data file type {ext or '(no extension)'!r}; "
                         f"use .npz (arrays X and optionally Y), .npy (X) or .csv")
    if targets and ext != ".csv":
        held = "its targets as array Y" if ext == ".npz" else "X only (an autoencoder)"
        raise UsageError(f"--targets applies to .csv data only; a {ext} file holds {held}")
    try:
        # Only regular files: a FIFO would block in open(), a device never end.
        f = model_io.open_regular_file(name)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such data file") from None
    except model_io.NotARegularFile as exc:
        raise UsageError(f"{name}: {exc}; a data file must be a regular file") from None
    except OSError as exc:
        raise UsageError(f"{name}: can not be read: {exc.strerror or exc}") from None
    try:
        with f:
            head = f.read(8)
            f.seek(0)
            if ext == ".npz":
                X, Y = _read_npz(name, f, head, purpose)
            elif ext == ".npy":
                X, Y = _read_npy(name, f, head), None
            else:
                X, Y = _read_csv(name, f, targets, notes)
    except UsageError:
        raise
    except OSError as exc:
        raise UsageError(f"{name}: can not be read: {exc.strerror or exc}") from None
    except Exception as exc:  # including MemoryError
        raise UsageError(f"{name}: not a readable {ext} file: {_reason(exc)}") from None
    X = _as_matrix(X, "X", name)
    if Y is not None:
        Y = _as_matrix(Y, "Y", name, allow_1d=True)
    return X, Y


def _read_npz(name, f, head, purpose):
    import numpy as np

    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise UsageError(f"{name}: not a .npz archive (np.savez writes them)")

    def fail(problem):
        raise UsageError(f"{name}: {problem}")

    # Each member's header is checked before its data is read (compression
    # method, sizes, dtype): a hostile archive can not inflate without bound.
    model_io.check_entry_count(f, 64, fail)
    with np.load(f, allow_pickle=False) as z:
        archive = model_io.SafeArchive(z, os.fstat(f.fileno()).st_size, fail)
        keys = list(archive.members)
        if "X" not in keys:
            raise UsageError(f"{name}: has no array 'X' (it has "
                             f"{model_io.preview(sorted(keys)) if keys else 'none'}); "
                             f"expected X and optionally Y")
        extra = sorted(set(keys) - {"X", "Y"})
        if extra:
            raise UsageError(f"{name}: unexpected arrays {model_io.preview(extra)}; "
                             f"expected X and optionally Y")
        # Any plain dtype and rank here: _as_matrix explains what is wrong with them.
        anything = dict(kinds="biufcUSmM", ndim=tuple(range(33)))
        X = archive.array("X", **anything)
        Y = archive.array("Y", **anything) if "Y" in keys and purpose == "train" else None
    return X, Y


def _read_npy(name, f, head):
    import numpy as np
    import numpy.lib.format as npy_format

    if not head.startswith(b"\x93NUMPY"):
        raise UsageError(f"{name}: not a .npy file (np.save writes them)")
    # The header's shape must match the file's size before numpy allocates it.
    try:
        version = npy_format.read_magic(f)
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else \
            npy_format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except ValueError as exc:
        raise UsageError(f"{name}: not a readable .npy file: {exc}") from None
    n_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = os.fstat(f.fileno()).st_size - f.tell()
    if not dtype.hasobject and n_bytes != held:  # (np.load refuses object arrays itself)
        raise UsageError(f"{name}: declares shape {tuple(shape)} of {dtype} ({n_bytes} bytes) "
                         f"but holds {held} bytes of data")
    f.seek(0)
    return np.load(f, allow_pickle=False)


def _read_csv(name, f, targets, notes=None):
    import numpy as np

    # Read at most the size the file had when opened: a file that keeps
    # growing (or pretends to be endless) can not exhaust memory.
    size = os.fstat(f.fileno()).st_size
    raw = f.read(size + 1)
    if len(raw) > size:
        raise UsageError(f"{name}: grew while being read ({size} bytes when opened)")
    lines = raw.decode("utf-8-sig").splitlines()
    numbered = [(k + 1, line) for k, line in enumerate(lines) if line.strip()]
    header = None
    if numbered and _header_row(numbered[0][1]):
        # A first line none of whose fields is a number is a header; one with
        # some numbers is a data row, and its bad fields are reported below.
        header = numbered.pop(0)
    if not numbered:
        raise UsageError(f"{name}: has no data rows" + _delimiter_hint(lines))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.loadtxt([line for _, line in numbered], delimiter=",", ndmin=2,
                              dtype=np.float64, comments=None)
    except ValueError:
        hint = _delimiter_hint(lines)
        if hint:
            raise UsageError(f"{name}: not comma-separated numbers{hint}") from None
        raise UsageError(f"{name}: {_first_bad_csv_line(numbered)}") from None
    if targets >= data.shape[1]:
        raise UsageError(f"{name}: --targets {targets} leaves no input columns "
                         f"(the file has {data.shape[1]} columns)")
    if header is not None and notes is not None:
        notes.append(f"line {header[0]} has no numbers, read as a header: "
                     f"{header[1].strip()[:60]!r}")
    if targets:
        return data[:, :-targets], data[:, -targets:]
    return data, None


def _header_row(line):
    """True when no field of the line can be read as a number."""
    for v in line.split(","):
        try:
            float(v)
            return False
        except ValueError:
            pass
    return True


def _delimiter_hint(lines):
    """Name the separator of a file whose first line has no comma, or ''."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            if "," in line:
                return ""
            for sep, label in ((";", "semicolons ';'"), ("\t", "tabs"), ("|", "bars '|'")):
                if sep in line:
                    return (f" (line {number} has no commas: its values are separated by "
                            f"{label}; fastbp reads comma-separated values, write the file "
                            f"with ',' as the delimiter)")
            return ""
    return ""


def _first_bad_csv_line(numbered):
    width = None
    for number, line in numbered:
        fields = line.split(",")
        for column, field in enumerate(fields, 1):
            try:
                float(field)
            except ValueError:
                return f"line {number}, column {column}: {field.strip()!r} is not a number"
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            return f"line {number} has {len(fields)} columns, earlier lines have {width}"
    return "could not be parsed as comma-separated numbers"


def _as_matrix(a, what, name, allow_1d=False):
    import numpy as np

    if not isinstance(a, np.ndarray):
        raise UsageError(f"{name}: {what} is not an array")
    if a.dtype.kind in "biu":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise UsageError(f"{name}: {what} has dtype {a.dtype}; expected real numbers")
    if allow_1d and a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise UsageError(f"{name}: {what} must be a 2-D array (examples x features), "
                         f"got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise UsageError(f"{name}: {what} is empty (shape {a.shape})")
    bad = ~np.isfinite(a)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UsageError(f"{name}: {what} contains NaN or Inf (first at row {row}, "
                         f"column {col}); every value must be finite")
    return a


# ---------------------------------------------------------------- outputs
def _save_outputs(net, history, out, *, initial, features, xlabel="iteration",
                  features_title=None):
    """Save the model, then (best effort) the plots; returns [(label, path)]."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out!r}: can not create the directory: "
                         f"{exc.strerror or exc}") from None
    model_path = os.path.join(out, "model.npz")
    model_io.save(net, model_path)
    files = [("model", model_path)]
    try:
        loss_path = plots.loss_curve(history, os.path.join(out, "loss.png"), initial=initial,
                                     title=f"cost J per {xlabel}", xlabel=xlabel)
        files.append(("loss curve", loss_path))
        if features:
            extra = {} if features_title is None else {"title": features_title}
            features_path = plots.feature_grid(net.weights[0],
                                               os.path.join(out, "features.png"), **extra)
            files.append(("features", features_path))
    except Exception as exc:  # plots are a bonus: never lose the model over them
        print(f"fastbp: warning: could not draw the plots ({_reason(exc)}); "
              f"the model is saved at {model_path}", file=sys.stderr)
    return files


def _print_files(files):
    width = max(len(label) for label, _ in files)
    for k, (label, path) in enumerate(files):
        print(f"{'saved' if k == 0 else '':10s}{label:{width}s}  {path}")


def _output_dir(path):
    """Check up front that ``path`` is, or can be created as, a writable
    directory, so a bad --out fails before training; it is created only when
    there is something to save."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise UsageError(f"--out {path!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"--out {path!r}: the directory is not writable")
        return path
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"--out {path!r}: can not create it inside {parent!r}, "
                         f"which is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path!r}: can not create it, {parent!r} is not writable")
    return path


def _check_output_file(path, flag):
    """Check before training that a file can be written at ``path``: it is not
    a directory (nor another non-regular file), and its directory exists and
    takes a new file — tried for real, so read-only mounts and ACLs count."""
    import tempfile

    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a directory; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"{flag} {path!r} exists and is not a regular file")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        raise UsageError(f"{flag} {path!r}: its directory {directory!r} {what}")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path!r}: can not write in {directory!r}: "
                         f"{exc.strerror or exc}") from None


def _makedirs_for(path):
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--out {path!r} is a directory; give a file name ending .npy or .csv")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {path!r}: can not create {directory!r}: "
                         f"{exc.strerror or exc}") from None


def _progress_bar(total, unit):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit[:-1] if unit.endswith("s") else unit,
                desc="training", file=sys.stderr, dynamic_ncols=True)


# ------------------------------------------------------------ flag values
def _parse_layers(text):
    fields = [f.strip() for f in text.split(",")]
    try:
        sizes = [int(f) for f in fields]
    except ValueError:
        sizes = None
    if sizes is None or len(sizes) < 2 or min(sizes) < 1:
        raise UsageError(f"--layers must be at least two comma-separated positive integers "
                         f"(input, hidden..., output widths) such as 64,25,64; got {text!r}")
    return sizes


def _parse_activations(text, n_transitions, loss):
    from .network import ACTIVATIONS

    names = [f.strip() for f in text.split(",")]
    if len(names) not in (1, n_transitions):
        raise UsageError(f"--activation takes one name or one per layer transition "
                         f"({n_transitions} for these --layers); got {len(names)}: {text!r}")
    for k, name in enumerate(names):
        softmax_ok = loss == "cross_entropy" and k == n_transitions - 1 and len(names) > 1
        if name not in ACTIVATIONS and not (name == "softmax" and softmax_ok):
            raise UsageError(f"--activation: unknown activation {name!r}; choose from "
                             f"{', '.join(sorted(ACTIVATIONS))}")
    return names[0] if len(names) == 1 else names


def _check_int(value, flag, low):
    if value < low:
        raise UsageError(f"{flag} must be >= {low}, got {value}")


def _check_float(value, flag, positive=False):
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UsageError(f"{flag} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value}")


def _reason(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _message(exc):
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, (UsageError, ValueError, FloatingPointError)):
        return " ".join(str(exc).split()) or type(exc).__name__
    return _reason(exc)


# ----------------------------------------------------------------- parser
def build_parser():
    from . import __version__
    from .network import INITS, LOSSES
    from .training import OPTIMIZERS

    parser = argparse.ArgumentParser(
        prog="fastbp",
        description="fastbp: the UFLDL backpropagation algorithm on parallel CPU kernels")
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train the UFLDL sparse autoencoder on 8x8 photo patches",
                       description="Train UFLDL's sparse autoencoder (64-25-64) with L-BFGS on "
                                   "8x8 patches of a whitened real photograph (matplotlib's "
                                   "sample data); save model.npz, loss.png and features.png "
                                   "in --out.")
    p.add_argument("--iterations", type=int, default=400, help="L-BFGS iterations (default 400)")
    p.add_argument("--patches", type=int, default=10_000, help="number of patches (default 10,000)")
    p.add_argument("--images", choices=("photo", "synthetic"), default="photo",
                   help="photo: a real photograph, whitened (default); synthetic: "
                        "gratings and blobs generated in code")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fastbp-demo", metavar="DIR",
                   help="output directory (default ./fastbp-demo)")
    p.set_defaults(run=demo)

    p = sub.add_parser("train", help="train a network on a .npz/.npy/.csv data file",
                       description="Train a network on a data file: .npz with arrays X and "
                                   "optionally Y, .npy (X), or .csv (numbers, optional header "
                                   "line; --targets K: the last K columns are Y). Without Y "
                                   "it trains an autoencoder (Y = X). Writes model.npz and "
                                   "loss.png in --out.")
    p.add_argument("--data", required=True, metavar="FILE", help=".npz, .npy or .csv")
    p.add_argument("--layers", required=True, metavar="SIZES",
                   help="layer widths, input to output, e.g. 64,25,64")
    p.add_argument("--targets", type=int, default=0, metavar="K",
                   help=".csv only: the last K columns are the targets Y (default 0: autoencoder)")
    p.add_argument("--activation", default="sigmoid", metavar="NAME[,NAME...]",
                   help="sigmoid (default), tanh, relu or identity; one for every layer or one "
                        "per layer transition")
    p.add_argument("--loss", choices=sorted(LOSSES), default="squared",
                   help="squared (default) or cross_entropy (softmax output)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help="default lbfgs (adam with --checkpoint: lbfgs can not checkpoint)")
    p.add_argument("--learning-rate", type=float, default=None, metavar="ALPHA",
                   help="default 0.1 for gd and sgd, 0.001 for adam (not used by lbfgs)")
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="LAMBDA", help="default 0")
    p.add_argument("--iterations", type=int, default=100,
                   help="gd/lbfgs iterations or sgd/adam epochs (default 100)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="mini-batch size for sgd/adam (default 32)")
    p.add_argument("--sparsity-target", type=float, default=None, metavar="RHO",
                   help="sparse autoencoder's target activation (with --sparsity-weight)")
    p.add_argument("--sparsity-weight", type=float, default=0.0, metavar="BETA",
                   help="sparse autoencoder's penalty weight (default 0: off)")
    p.add_argument("--init", choices=INITS, default="normal",
                   help="normal: N(0, 0.01^2) (default); uniform: UFLDL's exercise code")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--out", default="fastbp-out", metavar="DIR",
                   help="output directory (default ./fastbp-out)")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="write a checkpoint here every --checkpoint-every iterations and on "
                        "Ctrl-C/SIGTERM (gd, sgd, adam)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="iterations between checkpoints (default 0: only when interrupted)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists (--iterations is the total)")
    p.add_argument("--mpi", action="store_true",
                   help="data-parallel over MPI ranks: run under mpiexec -n N; each rank "
                        "trains on its slice of the rows (gd, lbfgs)")
    p.set_defaults(run=train)

    p = sub.add_parser("predict", help="write a model's predictions for a data file",
                       description="Load a model file and write its outputs for every row of "
                                   "a data file (.npz: its X; .npy; .csv: all columns but the "
                                   "last --targets) to --out (.npy or .csv).")
    p.add_argument("--model", required=True, metavar="FILE", help="a model.npz")
    p.add_argument("--data", required=True, metavar="FILE", help=".npz, .npy or .csv")
    p.add_argument("--out", required=True, metavar="FILE", help="predictions, .npy or .csv")
    p.add_argument("--targets", type=int, default=0, metavar="K",
                   help=".csv only: drop the last K columns (targets) first")
    p.set_defaults(run=predict)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "seed", None) is not None:
            _check_int(args.seed, "--seed", low=0)
        return args.run(args)
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130
    except (*USER_ERRORS, MemoryError) as exc:
        if os.environ.get("FASTBP_DEBUG"):
            raise
        message = "out of memory" if isinstance(exc, MemoryError) else _message(exc)
        print(f"fastbp: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
