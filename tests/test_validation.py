"""Bad input gets a clear error naming the argument, before any kernel runs;
input that converts safely is accepted without touching the caller's array."""

import re

import numpy as np
import pytest

import fastbp

SIZES = [4, 3, 2]


@pytest.fixture
def net():
    return fastbp.Network(SIZES)


@pytest.fixture
def XY():
    rng = np.random.default_rng(0)
    return rng.random((10, 4)), rng.random((10, 2))


# ---------------------------------------------------------------- network
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(layer_sizes=[4]), ValueError, "layer_sizes needs at least 2"),
    (dict(layer_sizes=[4, 0, 2]), ValueError, r"layer_sizes\[1\] must be a positive"),
    (dict(layer_sizes=[4, -3, 2]), ValueError, r"layer_sizes\[1\] must be a positive"),
    (dict(layer_sizes=[4, 2.5, 2]), TypeError, r"layer_sizes\[1\] must be an integer"),
    (dict(layer_sizes=[4, True, 2]), TypeError, r"layer_sizes\[1\] must be an integer"),
    (dict(layer_sizes=7), TypeError, "layer_sizes must be a sequence"),
    (dict(activations="softplus"), ValueError, r"activations\[0\] must be one of"),
    (dict(activations=["tanh"]), ValueError, "activations has 1 entries; expected one name or 2"),
    (dict(activations=["tanh", "softmax"]), ValueError, r"activations\[1\] must be one of"),
    (dict(init="zeros"), ValueError, "init must be one of"),
    (dict(epsilon=0), ValueError, "epsilon must be > 0"),
    (dict(epsilon=float("nan")), ValueError, "epsilon must be finite"),
    (dict(dtype=np.int32), TypeError, "dtype must be np.float32 or np.float64"),
    (dict(dtype=np.float16), TypeError, "dtype must be np.float32 or np.float64"),
    (dict(dtype="banana"), TypeError, "dtype must be np.float32 or np.float64"),
    (dict(loss="hinge"), ValueError, "loss must be one of"),
])
def test_bad_network_arguments(kwargs, error, match):
    kwargs = {"layer_sizes": SIZES, **kwargs}
    with pytest.raises(error, match=match):
        fastbp.Network(**kwargs)


# ------------------------------------------------------------------ data
def bad_data_cases():
    rng = np.random.default_rng(0)
    X, Y = rng.random((10, 4)), rng.random((10, 2))
    nan_X = X.copy(); nan_X[3, 1] = np.nan
    inf_Y = Y.copy(); inf_Y[0, 0] = np.inf
    return [
        (X[0], Y, ValueError, "X must be a 2-D array, got shape (4,)"),
        (X[None], Y, ValueError, "X must be a 2-D array"),
        (X[:, :3], Y, ValueError, "X has 3 columns, the network expects 4"),
        (X, Y[:, :1], ValueError, "Y has 1 columns, the network has 2 outputs"),
        (X, Y[:9], ValueError, "X has 10 rows but Y has 9"),
        (X[:0], Y[:0], ValueError, "X has 0 rows"),
        ((X * 10).astype(np.int64), Y, TypeError, "X has dtype int64; expected a floating-point"),
        (X, Y.astype(np.complex128), TypeError, "Y has dtype complex128"),
        (X.astype(object), Y, TypeError, "X has dtype object"),
        (X > 0.5, Y, TypeError, "X has dtype bool"),
        ("data.csv", Y, TypeError, "X must be a numeric array"),
        (None, Y, TypeError, "X must be a numeric array"),
        ([[1.0, 2.0], [3.0]], Y, TypeError, "X must be a numeric array"),
        (nan_X, Y, ValueError, "X contains NaN or Inf"),
        (X, inf_Y, ValueError, "Y contains NaN or Inf"),
    ]


@pytest.mark.parametrize("X,Y,error,match", bad_data_cases())
@pytest.mark.parametrize("call", ["cost", "cost_and_gradient", "flat", "train", "gradcheck", "predict"])
def test_bad_data_is_named(net, X, Y, error, match, call):
    if call == "predict" and "Y" in match:
        return
    before = net.theta.copy()
    with pytest.raises(error, match=re.escape(match) if "(" in match else match):
        if call == "cost":
            net.cost(X, Y)
        elif call == "cost_and_gradient":
            net.cost_and_gradient(X, Y)
        elif call == "flat":
            net.cost_and_gradient_flat(net.theta, X, Y)
        elif call == "train":
            fastbp.train(net, X, Y, iterations=2)
        elif call == "gradcheck":
            fastbp.check_gradient(net, X, Y)
        else:
            net.predict(X)
    np.testing.assert_array_equal(net.theta, before)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(weight_decay=-1e-4), ValueError, "weight_decay must be >= 0"),
    (dict(weight_decay="a lot"), TypeError, "weight_decay must be a real number"),
    (dict(weight_decay=float("inf")), ValueError, "weight_decay must be finite"),
    (dict(learning_rate=0), ValueError, "learning_rate must be > 0"),
    (dict(learning_rate=-0.1), ValueError, "learning_rate must be > 0"),
    (dict(learning_rate=None), TypeError, "learning_rate must be a real number"),
    (dict(iterations=-1), ValueError, "iterations must be >= 0"),
    (dict(iterations=2.5), TypeError, "iterations must be an integer"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of"),
    (dict(optimizer="sgd", batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(callback=3), TypeError, "callback must be callable"),
    (dict(sparsity_weight=3.0), ValueError, "needs sparsity_target"),
    (dict(sparsity_weight=3.0, sparsity_target=1.5), ValueError, r"sparsity_target must be in \(0, 1\)"),
])
def test_bad_training_arguments(net, XY, kwargs, error, match):
    before = net.theta.copy()
    with pytest.raises(error, match=match):
        fastbp.train(net, *XY, **kwargs)
    np.testing.assert_array_equal(net.theta, before)


def test_bad_weight_decay_in_cost(net, XY):
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        net.cost_and_gradient(*XY, weight_decay=-1)


@pytest.mark.parametrize("theta,error,match", [
    (np.zeros(5), ValueError, "theta has 5 entries, the network has 23 parameters"),
    (np.zeros((23, 1)), ValueError, "theta must be a 1-D array"),
    (np.full(23, np.nan), ValueError, "theta contains NaN or Inf"),
    (np.zeros(23, np.int64), TypeError, "theta has dtype int64"),
])
def test_bad_theta(net, XY, theta, error, match):
    with pytest.raises(error, match=match):
        net.cost_and_gradient_flat(theta, *XY)
    before = net.theta.copy()
    with pytest.raises(error, match=match):
        net.theta = theta
    np.testing.assert_array_equal(net.theta, before)


def test_nan_in_parameters_is_caught_before_the_kernel(net, XY):
    net.weights[0][1, 1] = np.inf
    with pytest.raises(ValueError, match="theta contains NaN or Inf"):
        net.cost(*XY)


@pytest.mark.parametrize("n,error", [(0, ValueError), (10**6, ValueError), (1.5, TypeError),
                                     ("2", TypeError)])
def test_bad_thread_count(n, error):
    with pytest.raises(error, match="n must be"):
        fastbp.set_num_threads(n)


def test_check_gradient_arguments(net, XY):
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        fastbp.check_gradient(net, *XY, epsilon=0)
    with pytest.raises(ValueError, match="points must be 3"):
        fastbp.check_gradient(net, *XY, points=4)


# ------------------------------------------------- inputs that convert safely
def test_safe_inputs_are_accepted_and_left_untouched(net, XY, tmp_path):
    X, Y = XY
    J, gW, gb = net.cost_and_gradient(X, Y, 1e-3)

    big = np.zeros((10, 8)); big[:, ::2] = X
    strided = big[:, ::2]
    assert not strided.flags.c_contiguous
    fortran = np.asfortranarray(X)
    readonly = X.copy(); readonly.flags.writeable = False
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape); mm[...] = X; mm.flush()
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    for variant in (strided, fortran, readonly, mm, X.tolist()):
        snapshot = np.array(variant, copy=True)
        J2, gW2, gb2 = net.cost_and_gradient(variant, Y, 1e-3)
        assert J2 == J
        np.testing.assert_array_equal(np.asarray(variant), snapshot)
    # float32 data given to a float64 network is converted once
    J32 = net.cost(X.astype(np.float32), Y.astype(np.float32), 1e-3)
    assert J32 == pytest.approx(J, rel=1e-6)
    # a 1-D target for a single-output network
    one = fastbp.Network([4, 3, 1])
    assert one.cost(X, Y[:, 0]) == one.cost(X, Y[:, :1])


def test_cost_and_gradient_does_not_touch_the_inputs(net, XY):
    X, Y = XY
    Xc, Yc = X.copy(), Y.copy()
    fastbp.train(net, X, Y, iterations=3)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(Y, Yc)
