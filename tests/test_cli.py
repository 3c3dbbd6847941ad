"""The command line, run as users run it: ``python -m fastbp ...`` in
subprocesses on small data files. Every user error must be one
``fastbp: error:`` line and exit status 2, never a traceback."""

import os
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastbp
from fastbp import cli, plots
from fastbp import io as model_io

TIMEOUT = 600  # generous: a cold numba cache compiles the kernels (about a minute)


def fastbp_cmd(*args):
    return [sys.executable, "-m", "fastbp", *map(str, args)]


def run(*args, cwd):
    return subprocess.run(fastbp_cmd(*args), cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT)


def in_process(*args):
    return cli.main([str(a) for a in args])


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def png_size(path):
    """(width, height) of a PNG, after checking its signature, every chunk's
    CRC, that the image data inflates, and that it ends with IEND."""
    data = open(path, "rb").read()
    assert len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and pos == len(data)
    width, height = struct.unpack(">II", data[16:24])
    assert len(zlib.decompress(idat)) >= height * width
    return width, height


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", autouse=True)
def warm_kernels(tmp_path_factory):
    """Compile, in this process, every kernel signature the subprocesses use, so
    that they load it from numba's on-disk cache instead of each compiling it."""
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        X = rng.random((20, 6)).astype(dtype)
        Y = np.eye(2, dtype=dtype)[rng.integers(0, 2, 20)]
        for loss in ("squared", "cross_entropy"):
            for optimizer in ("gd", "sgd", "lbfgs"):
                net = fastbp.Network([6, 4, 2], loss=loss, dtype=dtype)
                fastbp.train(net, X, Y, optimizer=optimizer, iterations=2)
                net.predict(X)
    X = rng.random((50, 64))
    net = fastbp.Network([64, 25, 64], init="uniform")
    fastbp.train(net, X, X, optimizer="lbfgs", iterations=2, weight_decay=1e-4,
                 sparsity_target=0.01, sparsity_weight=3.0)
    net.mean_hidden_activation(X)
    path = tmp_path_factory.mktemp("warm") / "m.npz"
    model_io.save(net, path)
    model_io.load(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small data files in every supported format, and broken ones."""
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    X = rng.random((120, 6))
    labels = (X[:, 0] + X[:, 1] > 1).astype(int)
    Y = np.eye(2)[labels]
    np.savez(d / "xy.npz", X=X, Y=Y)
    np.savez(d / "x_only.npz", X=X)
    np.save(d / "x.npy", X)
    np.save(d / "x_uint8.npy", (X * 255).astype(np.uint8))
    with open(d / "xy.csv", "w") as f:
        f.write("a,b,c,d,e,f,no,yes\n")
        np.savetxt(f, np.hstack([X, Y]), delimiter=",", fmt="%.17g")
    np.savetxt(d / "x_noheader.csv", X, delimiter=",")
    # broken files
    (d / "text.npz").write_text("X = 1, 2, 3\n")
    (d / "text.npy").write_text("1,2,3\n")
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,c\n")
    (d / "letters.csv").write_text("a,b\n1,2\n3,x\n")
    (d / "ragged.csv").write_text("1,2\n3\n")
    (d / "nan.csv").write_text("1,2\nnan,4\n")
    (d / "data.txt").write_text("1 2 3\n")
    obj = np.empty(2, dtype=object)
    obj[:] = [{"a": 1}, None]
    np.save(d / "pickled.npy", obj, allow_pickle=True)
    np.savez(d / "wrong_keys.npz", inputs=X)
    np.savez(d / "extra_keys.npz", X=X, Y=Y, Z=X)
    np.save(d / "one_d.npy", X[:, 0])
    np.save(d / "complex.npy", X.astype(complex))
    np.save(d / "empty.npy", np.empty((0, 6)))
    np.savez(d / "rows_mismatch.npz", X=X, Y=Y[:-1])
    # models
    net = fastbp.Network([6, 4, 2], loss="cross_entropy", seed=1)
    model_io.save(net, d / "model.npz")
    good = (d / "model.npz").read_bytes()
    (d / "truncated_model.npz").write_bytes(good[: len(good) // 2])
    arrays = dict(np.load(d / "model.npz"))
    arrays["format_version"] = np.array(7)
    np.savez(d / "future_model.npz", **arrays)
    (d / "a_file").write_text("not a directory")
    return d


# ---------------------------------------------------------------- commands
def test_train_on_npz_with_targets(data, tmp_path):
    r = ok(run("train", "--data", data / "xy.npz", "--layers", "6,4,2", "--optimizer", "lbfgs",
               "--iterations", 15, "--weight-decay", 1e-4, "--out", "out", cwd=tmp_path))
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["loss.png", "model.npz"]  # no temporary files left
    assert f"out{os.sep}model.npz" in r.stdout and f"out{os.sep}loss.png" in r.stdout
    assert "J=" in r.stderr and "examples/s=" in r.stderr  # the progress bar's postfix
    net = model_io.load(out / "model.npz")
    assert net.layer_sizes == (6, 4, 2) and net.loss == "squared" and net.dtype == np.float64
    png_size(out / "loss.png")
    X, Y = np.load(data / "xy.npz")["X"], np.load(data / "xy.npz")["Y"]
    assert net.cost(X, Y) < fastbp.Network([6, 4, 2]).cost(X, Y)  # it learned something


def test_train_autoencoder_on_npy_and_npz_without_y(data, tmp_path):
    ok(run("train", "--data", data / "x.npy", "--layers", "6,3,6", "--iterations", 20,
           "--optimizer", "gd", "--learning-rate", 2, "--out", tmp_path / "a", cwd=tmp_path))
    net = model_io.load(tmp_path / "a" / "model.npz")
    assert net.layer_sizes == (6, 3, 6)
    # in-process from here on: the same code without another interpreter start-up
    assert in_process("train", "--data", data / "x_only.npz", "--layers", "6,3,6",
                      "--iterations", 2, "--activation", "tanh,identity", "--init", "uniform",
                      "--out", tmp_path / "b") == 0
    assert model_io.load(tmp_path / "b" / "model.npz").activations == ("tanh", "identity")
    # integer data are converted to float64
    assert in_process("train", "--data", data / "x_uint8.npy", "--layers", "6,2,6",
                      "--iterations", 2, "--out", tmp_path / "c") == 0
    assert model_io.load(tmp_path / "c" / "model.npz").layer_sizes == (6, 2, 6)


def test_train_on_csv_with_header_and_targets(data, tmp_path):
    ok(run("train", "--data", data / "xy.csv", "--targets", 2, "--layers", "6,5,2",
           "--loss", "cross_entropy", "--optimizer", "sgd", "--batch-size", 16,
           "--learning-rate", 0.5, "--iterations", 3, "--dtype", "float32", "--seed", 4,
           cwd=tmp_path))
    net = model_io.load(tmp_path / "fastbp-out" / "model.npz")  # the default --out
    assert net.dtype == np.float32 and net.loss == "cross_entropy"
    assert net.activations == ("sigmoid", "softmax")
    png_size(tmp_path / "fastbp-out" / "loss.png")
    assert in_process("train", "--data", data / "x_noheader.csv", "--layers", "6,2,6",
                      "--iterations", 2, "--out", tmp_path / "o") == 0
    assert model_io.load(tmp_path / "o" / "model.npz").layer_sizes == (6, 2, 6)


def test_predict_writes_exact_npy_and_csv(data, tmp_path):
    net = model_io.load(data / "model.npz")
    X = np.load(data / "xy.npz")["X"]
    expected = net.predict(X)
    r = ok(run("predict", "--model", data / "model.npz", "--data", data / "xy.npz",
               "--out", "p.npy", cwd=tmp_path))
    assert "p.npy" in r.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy", allow_pickle=False), expected)
    ok(run("predict", "--model", data / "model.npz", "--data", data / "xy.csv", "--targets", 2,
           "--out", tmp_path / "sub" / "p.csv", cwd=tmp_path))
    back = np.loadtxt(tmp_path / "sub" / "p.csv", delimiter=",", ndmin=2)
    np.testing.assert_array_equal(back, expected)  # %.17g round-trips exactly
    assert sorted(os.listdir(tmp_path / "sub")) == ["p.csv"]


def test_predict_float32_csv_round_trips(data, tmp_path):
    net = fastbp.Network([6, 3, 2], dtype=np.float32, seed=2, epsilon=1.0)
    model_io.save(net, tmp_path / "m32.npz")
    ok(run("predict", "--model", "m32.npz", "--data", data / "x.npy", "--out", "p.csv",
           cwd=tmp_path))
    back = np.loadtxt(tmp_path / "p.csv", delimiter=",", ndmin=2).astype(np.float32)
    np.testing.assert_array_equal(back, net.predict(np.load(data / "x.npy")))


def test_demo_writes_model_and_two_pngs(tmp_path):
    r = ok(run("demo", "--iterations", 5, "--patches", 500, "--out", "demo", cwd=tmp_path))
    out = tmp_path / "demo"
    assert sorted(os.listdir(out)) == ["features.png", "loss.png", "model.npz"]
    for name in ("model.npz", "loss.png", "features.png"):
        assert str(os.path.join("demo", name)) in r.stdout
    assert "iteration" in r.stdout and "done" in r.stdout
    net = model_io.load(out / "model.npz")
    assert net.layer_sizes == (64, 25, 64)
    w, h = png_size(out / "features.png")
    assert w >= 46 and h >= 46  # at least one pixel per weight of the 5x5 grid of 8x8
    png_size(out / "loss.png")


def test_demo_defaults_are_unchanged():
    args = cli.build_parser().parse_args(["demo"])
    assert (args.iterations, args.patches, args.seed, args.out) == (400, 10_000, 0, "fastbp-demo")


def test_console_script_and_version(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "fastbp")
    cmd = [script] if os.path.exists(script) else fastbp_cmd()
    r = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == f"fastbp {fastbp.__version__}"


def test_importing_fastbp_imports_neither_matplotlib_nor_tqdm():
    code = ("import sys, fastbp, fastbp.io, fastbp.cli, fastbp.plots; "
            "bad = [m for m in ('matplotlib', 'tqdm') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------- plots failing in-process
def _demo_in_process(out):
    return cli.main(["demo", "--iterations", "2", "--patches", "200", "--out", str(out)])


def test_a_failing_plot_still_saves_the_model(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the renderer exploded")

    monkeypatch.setattr(plots, "feature_grid", broken)
    assert _demo_in_process(tmp_path / "d") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastbp: warning:"), err
    assert "the renderer exploded" in err[0]
    assert model_io.load(tmp_path / "d" / "model.npz").layer_sizes == (64, 25, 64)
    assert not (tmp_path / "d" / "features.png").exists()


def test_missing_matplotlib_still_saves_the_model(tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    assert _demo_in_process(tmp_path / "d") == 0
    err = capsys.readouterr().err.strip().splitlines()
    # the demo's photograph comes from matplotlib too: synthetic images instead
    assert len(err) == 2 and all(e.startswith("fastbp: warning:") for e in err)
    assert "using synthetic images" in err[0] and "matplotlib" in err[1]
    model_io.load(tmp_path / "d" / "model.npz")
    assert sorted(os.listdir(tmp_path / "d")) == ["model.npz"]


def test_tile_features_is_ufldl_display_network():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((25, 64))
    grid = plots.tile_features(W)
    assert grid.shape == (1 + 5 * 9, 1 + 5 * 9)
    assert grid.min() >= -1 and grid.max() <= 1
    A = W - W.mean()
    for j in (0, 7, 24):
        r, c = divmod(j, 5)
        patch = grid[1 + 9 * r:9 + 9 * r, 1 + 9 * c:9 + 9 * c]
        np.testing.assert_allclose(patch, A[j].reshape(8, 8) / np.abs(A[j]).max())
        assert np.abs(patch).max() == 1
    assert np.all(grid[0] == -1) and np.all(grid[:, 9] == -1)  # the gaps
    assert plots.tile_features(rng.standard_normal((10, 16))).shape == (1 + 3 * 5, 1 + 4 * 5)
    assert plots.tile_features(np.zeros((4, 9))).max() == 0  # all-zero units: no division by 0
    with pytest.raises(ValueError, match="square"):
        plots.tile_features(W[:, :60])
    assert plots.tile_features(W[:, :60], patch_shape=(6, 10)).shape == (1 + 5 * 7, 1 + 5 * 11)


# ------------------------------------------------------------- user errors
D = "{data}"  # replaced with the data directory
BAD = {
    # data files
    "missing data": (["train", "--data", f"{D}/nope.npz", "--layers", "6,3,6"],
                     "no such data file"),
    "text as npz": (["train", "--data", f"{D}/text.npz", "--layers", "6,3,6"], "not a .npz"),
    "text as npy": (["train", "--data", f"{D}/text.npy", "--layers", "6,3,6"], "not a .npy"),
    "pickled npy": (["train", "--data", f"{D}/pickled.npy", "--layers", "6,3,6"], "allow_pickle"),
    "no X": (["train", "--data", f"{D}/wrong_keys.npz", "--layers", "6,3,6"], "no array 'X'"),
    "extra arrays": (["train", "--data", f"{D}/extra_keys.npz", "--layers", "6,3,2"], "['Z']"),
    "1-D X": (["train", "--data", f"{D}/one_d.npy", "--layers", "6,3,6"], "2-D"),
    "complex X": (["train", "--data", f"{D}/complex.npy", "--layers", "6,3,6"], "complex"),
    "no rows": (["train", "--data", f"{D}/empty.npy", "--layers", "6,3,6"], "empty"),
    "empty csv": (["train", "--data", f"{D}/empty.csv", "--layers", "6,3,6"], "no data rows"),
    "header only": (["train", "--data", f"{D}/header_only.csv", "--layers", "3,2,3"],
                    "no data rows"),
    "letters in csv": (["train", "--data", f"{D}/letters.csv", "--layers", "2,2,2"],
                       "line 3, column 2: 'x' is not a number"),
    "ragged csv": (["train", "--data", f"{D}/ragged.csv", "--layers", "2,2,2"],
                   "line 2 has 1 columns"),
    "nan in csv": (["train", "--data", f"{D}/nan.csv", "--layers", "2,2,2"], "NaN"),
    "unknown type": (["train", "--data", f"{D}/data.txt", "--layers", "3,2,3"], "unsupported"),
    "rows mismatch": (["train", "--data", f"{D}/rows_mismatch.npz", "--layers", "6,3,2"],
                      "X has 120 rows but Y has 119"),
    # shapes against --layers
    "input width": (["train", "--data", f"{D}/xy.npz", "--layers", "5,3,2"],
                    "--layers starts with 5"),
    "output width": (["train", "--data", f"{D}/xy.npz", "--layers", "6,3,3"],
                     "--layers ends with 3"),
    "autoencoder width": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,2"],
                          "must end with 6"),
    # flag values
    "layers text": (["train", "--data", f"{D}/x.npy", "--layers", "6,x,6"], "--layers"),
    "one layer": (["train", "--data", f"{D}/x.npy", "--layers", "6"], "--layers"),
    "zero width": (["train", "--data", f"{D}/x.npy", "--layers", "6,0,6"], "--layers"),
    "no iterations": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6", "--iterations", "0"],
                      "--iterations"),
    "negative alpha": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6",
                        "--learning-rate", "-1"], "--learning-rate"),
    "nan lambda": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6", "--weight-decay", "nan"],
                   "--weight-decay"),
    "zero batch": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6", "--optimizer", "sgd",
                    "--batch-size", "0"], "--batch-size"),
    "bad activation": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6",
                        "--activation", "swish"], "'swish'"),
    "activation count": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6",
                          "--activation", "relu,relu,relu"], "--activation"),
    "targets on npz": (["train", "--data", f"{D}/xy.npz", "--layers", "6,3,2", "--targets", "1"],
                       "--targets applies to .csv"),
    "all targets": (["train", "--data", f"{D}/xy.csv", "--layers", "6,3,2", "--targets", "8"],
                    "leaves no input columns"),
    "sparsity alone": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6",
                        "--sparsity-weight", "3"], "--sparsity-target"),
    "out is a file": (["train", "--data", f"{D}/x.npy", "--layers", "6,3,6",
                       "--out", f"{D}/a_file"], "not a directory"),
    # models
    "missing model": (["predict", "--model", f"{D}/nope.npz", "--data", f"{D}/x.npy",
                       "--out", "p.npy"], "no such file"),
    "data as model": (["predict", "--model", f"{D}/xy.npz", "--data", f"{D}/x.npy",
                       "--out", "p.npy"], "not a fastbp model"),
    "truncated model": (["predict", "--model", f"{D}/truncated_model.npz", "--data",
                         f"{D}/x.npy", "--out", "p.npy"], "model file"),
    "future model": (["predict", "--model", f"{D}/future_model.npz", "--data", f"{D}/x.npy",
                      "--out", "p.npy"], "format version 7"),
    "model input width": (["predict", "--model", f"{D}/model.npz", "--data", f"{D}/xy.csv",
                           "--out", "p.npy"], "takes 6 inputs"),
    "prediction type": (["predict", "--model", f"{D}/model.npz", "--data", f"{D}/x.npy",
                         "--out", "p.txt"], ".npy or .csv"),
    # demo
    "demo iterations": (["demo", "--iterations", "0"], "--iterations"),
    "demo patches": (["demo", "--patches", "-5"], "--patches"),
}
#: The cases also run end to end in subprocesses (all of them run in-process).
SUBPROCESS_BAD = ["pickled npy", "letters in csv", "input width", "negative alpha",
                  "future model", "demo iterations"]
ARGPARSE_BAD = {
    "no command": [],
    "unknown command": ["fit"],
    "no --data": ["train", "--layers", "6,3,6"],
    "bad choice": ["train", "--data", "x.npy", "--layers", "6,3,6", "--optimizer", "newton"],
    "not an integer": ["train", "--data", "x.npy", "--layers", "6,3,6", "--iterations", "ten"],
    "no --out": ["predict", "--model", "m.npz", "--data", "x.npy"],
}
SUBPROCESS_ARGPARSE_BAD = ["no command", "bad choice"]
DIVERGES = ["train", "--data", f"{D}/x.npy", "--layers", "6,3,6", "--activation", "relu,identity",
            "--optimizer", "gd", "--learning-rate", "1e9", "--iterations", "200"]


def with_data(args, data):
    return [a.replace(D, str(data)) for a in args]


def assert_one_error_line(stderr, expected):
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), stderr
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("case", list(BAD))
def test_user_errors_are_one_line_and_exit_2(data, tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    args, expected = BAD[case]
    assert cli.main(with_data(args, data)) == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, expected)
    assert os.listdir(tmp_path) == []  # nothing written, no output directory created


@pytest.mark.parametrize("case", list(ARGPARSE_BAD))
def test_argparse_errors_exit_2_in_process(case, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(ARGPARSE_BAD[case])
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


@pytest.fixture(scope="module")
def subprocess_results(data, tmp_path_factory):
    """Bad invocations run as users run them, several at a time (each one is
    mostly interpreter start-up)."""
    cwd = tmp_path_factory.mktemp("bad")
    jobs = {("bad", k): BAD[k][0] for k in SUBPROCESS_BAD}
    jobs.update({("argparse", k): ARGPARSE_BAD[k] for k in SUBPROCESS_ARGPARSE_BAD})
    jobs[("diverges", "")] = DIVERGES

    def one(args):
        return run(*with_data(args, data), cwd=cwd)

    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        results = dict(zip(jobs, pool.map(one, jobs.values())))
    results["cwd"] = cwd
    return results


@pytest.mark.parametrize("case", SUBPROCESS_BAD)
def test_user_errors_in_a_subprocess(subprocess_results, case):
    r = subprocess_results[("bad", case)]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert_one_error_line(r.stderr, BAD[case][1])


@pytest.mark.parametrize("case", SUBPROCESS_ARGPARSE_BAD)
def test_argparse_errors_exit_2(subprocess_results, case):
    r = subprocess_results[("argparse", case)]
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_divergence_is_a_clean_error(subprocess_results):
    r = subprocess_results[("diverges", "")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("fastbp: error: training diverged") and "--learning-rate" in last


def test_failed_runs_write_nothing(subprocess_results):
    assert os.listdir(subprocess_results["cwd"]) == []
