"""``fastbp train`` with no tuning flags learns typical data, and tells the
user when it did not, when --targets was forgotten, or when a CSV file is not
comma-separated (issue 12, item 3)."""

import numpy as np
import pytest

import fastbp
from fastbp import cli


def main(*args):
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """scikit-learn's digits as a user writes them: 64 raw pixel columns (0-16),
    then 10 one-hot target columns."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    path = tmp_path_factory.mktemp("digits") / "digits.csv"
    np.savetxt(path, np.hstack([digits.data, np.eye(10)[digits.target]]), fmt="%g",
               delimiter=",")
    return path, digits.data, digits.target


def test_defaults_reach_90_percent_training_accuracy_on_digits(digits_csv, tmp_path, capsys):
    path, X, labels = digits_csv
    assert main("train", "--data", path, "--layers", "64,30,10", "--targets", 10,
                "--loss", "cross_entropy", "--out", tmp_path) == 0
    out, err = capsys.readouterr()
    assert "lbfgs (default)" in out
    assert "barely moved" not in err
    net = fastbp.load(tmp_path / "model.npz")
    accuracy = np.mean(net.predict(X).argmax(axis=1) == labels)
    assert accuracy >= 0.9, accuracy


def test_a_run_whose_cost_barely_moved_says_so(digits_csv, tmp_path, capsys):
    # The old defaults (gd, alpha = 0.1) for three steps: J moves by < 1 %.
    path, _, _ = digits_csv
    assert main("train", "--data", path, "--layers", "64,30,10", "--targets", 10,
                "--loss", "cross_entropy", "--optimizer", "gd", "--iterations", 3,
                "--out", tmp_path) == 0
    err = capsys.readouterr().err
    assert "fastbp: warning: the cost barely moved" in err
    assert "--learning-rate (now 0.1)" in err and "--iterations" in err


def test_barely_moved_threshold():
    args = cli.build_parser().parse_args(["train", "--data", "x.csv", "--layers", "2,1"])
    cli._resolve_training_defaults(args)
    assert cli._barely_moved(2.3031, 2.3017, args).startswith("the cost barely moved")
    assert cli._barely_moved(2.3031, 2.0, args) is None
    assert cli._barely_moved(float("nan"), 1.0, args) is None


@pytest.mark.parametrize("given, optimizer, alpha", [
    ([], "lbfgs", 0.1),
    (["--checkpoint", "c.npz"], "adam", 0.001),      # lbfgs can not checkpoint
    (["--optimizer", "adam"], "adam", 0.001),
    (["--optimizer", "sgd"], "sgd", 0.1),
    (["--optimizer", "gd", "--learning-rate", "2"], "gd", 2.0),
])
def test_default_optimizer_and_learning_rate(given, optimizer, alpha):
    args = cli.build_parser().parse_args(["train", "--data", "x.csv", "--layers", "2,1",
                                          *given])
    cli._resolve_training_defaults(args)
    assert (args.optimizer, args.learning_rate) == (optimizer, alpha)


def test_forgotten_targets_gets_a_hint(tmp_path, capsys):
    path = tmp_path / "xy.csv"
    np.savetxt(path, np.random.default_rng(0).random((20, 7)), delimiter=",")
    assert main("train", "--data", path, "--layers", "4,3,3", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastbp: error:") and len(err.splitlines()) == 1
    assert "X has 7 columns, but --layers starts with 4" in err
    assert "pass --targets 3" in err


@pytest.mark.parametrize("sep, name", [(";", "semicolons ';'"), ("\t", "tabs")])
@pytest.mark.parametrize("header", [False, True])
def test_a_csv_that_is_not_comma_separated_names_its_delimiter(tmp_path, capsys, sep, name,
                                                                  header):
    path = tmp_path / "semi.csv"
    rows = np.random.default_rng(0).random((5, 4))
    np.savetxt(path, rows, delimiter=sep, header=sep.join("abcd") if header else "",
               comments="")
    assert main("train", "--data", path, "--layers", "4,2,4", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"separated by {name}" in err and "','" in err
    assert repr(open(path).read().splitlines()[-1]) not in err  # not the whole line as a value


def test_a_single_semicolon_line_names_its_delimiter(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("1;2;3\n")
    assert main("train", "--data", path, "--layers", "3,2,3", "--out", tmp_path / "o") == 2
    assert "semicolons" in capsys.readouterr().err


@pytest.mark.parametrize("given", [[], ["--optimizer", "lbfgs"]])
def test_a_learning_rate_lbfgs_would_ignore_is_refused(given):
    args = cli.build_parser().parse_args(["train", "--data", "x.csv", "--layers", "2,1",
                                          "--learning-rate", "0.5", *given])
    with pytest.raises(cli.UsageError, match="--learning-rate is not used by lbfgs"):
        cli._resolve_training_defaults(args)
