"""Issue 10, item 13: validation gaps. Each bad argument is refused up front
with a message naming it."""

import numpy as np
import pytest

import fastbp
from fastbp import cli


@pytest.mark.parametrize("dtype, epsilon", [(np.float64, 1e308),
                                            (np.float32, 1e39)])
def test_an_epsilon_that_overflows_is_refused(dtype, epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        fastbp.Network([3, 50, 2], epsilon=epsilon, dtype=dtype)
    net = fastbp.Network([3, 50, 2], dtype=dtype)
    before = net.theta.copy()
    with pytest.raises(ValueError, match="epsilon"):
        net.initialize("normal", epsilon=epsilon)
    assert np.array_equal(net.theta, before)  # the network keeps its parameters


def test_large_but_finite_epsilon_still_works():
    net = fastbp.Network([3, 4, 2], epsilon=1e30)
    assert np.all(np.isfinite(net.theta)) and np.abs(net.theta).max() > 1e29


@pytest.mark.parametrize("net", ["net", None, 3, object()])
def test_train_needs_a_network(net):
    X = np.ones((4, 3))
    with pytest.raises(TypeError, match="net must be a fastbp.Network"):
        fastbp.train(net, X, X)


@pytest.mark.parametrize("seed, error", [(1.5, TypeError), (-1, ValueError), ("7", TypeError),
                                         (True, TypeError), (np.float64(2.0), TypeError),
                                         (-(2 ** 70), ValueError)])
def test_a_bad_seed_is_named(seed, error):
    X = np.ones((4, 3))
    with pytest.raises(error, match="seed"):
        fastbp.Network([3, 2], seed=seed)
    net = fastbp.Network([3, 3])
    with pytest.raises(error, match="seed"):
        net.initialize(seed=seed)
    with pytest.raises(error, match="seed"):
        fastbp.train(net, X, X, iterations=1, seed=seed)


@pytest.mark.parametrize("seed", [None, 0, 2 ** 80, np.int64(5), np.uint8(3),
                                  np.random.SeedSequence(4)])
def test_good_seeds(seed):
    fastbp.Network([3, 2], seed=seed)


def test_seeds_still_reproduce():
    assert np.array_equal(fastbp.Network([3, 4, 2], seed=7).theta,
                          fastbp.Network([3, 4, 2], seed=np.int64(7)).theta)


@pytest.fixture()
def csv(tmp_path):
    path = tmp_path / "d.csv"
    np.savetxt(path, np.random.default_rng(0).random((20, 3)), delimiter=",")
    return path


@pytest.mark.parametrize("command", ["train", "demo"])
def test_cli_negative_seed(tmp_path, csv, capsys, command):
    argv = ["train", "--data", str(csv), "--layers", "3,2,3"] if command == "train" else \
        ["demo"]
    code = cli.main(argv + ["--seed", "-1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--seed" in err and "Traceback" not in err


def test_cli_sparsity_target_without_weight(tmp_path, csv, capsys):
    code = cli.main(["train", "--data", str(csv), "--layers", "3,2,3", "--optimizer", "gd",
                     "--sparsity-target", "0.05", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 2
    assert "--sparsity-target" in captured.err and "--sparsity-weight" in captured.err
    assert "training" not in captured.out
