"""The vectorisable exp and sigmoid, against numpy's."""

import numpy as np
import pytest
from numba import njit

from fastbp._exp import exp, sigmoid


@njit
def exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


@njit
def sigmoid_all(x, out):
    for i in range(x.shape[0]):
        out[i] = sigmoid(x[i])


@pytest.mark.parametrize("dtype,low,high,ulps", [(np.float64, -700, 700, 2),
                                                   (np.float32, -85, 85, 1)])
def test_exp_is_accurate_to_a_few_ulps(dtype, low, high, ulps):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(low, high, 200_000), rng.uniform(-5, 5, 100_000),
                        [0.0, -0.0, 1.0, -1.0, np.log(2)]]).astype(dtype)
    out = np.empty_like(x)
    exp_all(x, out)
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(out.astype(np.float64) - ref) / ref
    assert rel.max() <= ulps * np.finfo(dtype).eps
    assert out[-5] == 1 and out[-4] == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_saturates_instead_of_wrapping(dtype):
    x = np.array([-1e4, -800, 800, 1e4, np.inf, -np.inf], dtype)
    out = np.empty_like(x)
    exp_all(x, out)
    tiny, huge = np.finfo(dtype).tiny, np.finfo(dtype).max
    assert np.all(out[[0, 1, 5]] <= 10 * tiny) and np.all(out[[0, 1, 5]] >= 0)
    assert np.all(out[[2, 3, 4]] >= huge / 1e10) and np.all(np.isfinite(out[[2, 3, 4]]))
    # and the sigmoid built on it is exactly 0 or 1 there
    sig = 1 / (1 + out)
    assert np.all(sig[[2, 3, 4]] < 10 * tiny) and np.all(sig[[0, 1, 5]] == 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_keeps_nan(dtype):
    out = np.empty(3, dtype)
    exp_all(np.array([np.nan, 1.0, np.nan], dtype), out)
    assert np.isnan(out[0]) and np.isnan(out[2]) and out[1] == pytest.approx(np.e)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_accurate_to_two_ulps(dtype):
    """Against 1 / (1 + exp(−z)) in extended precision, wherever the result
    is a normal number: the tails where it underflows, the steep middle and
    the flat top where it rounds to 1."""
    rng = np.random.default_rng(1)
    top = 750 if dtype == np.float64 else 110
    z = np.concatenate([np.linspace(-top, top, 400_001), rng.normal(0, 5, 200_000),
                        rng.uniform(-1, 1, 100_000), [0.0, -0.0]]).astype(dtype)
    out = np.empty_like(z)
    sigmoid_all(z, out)
    exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    normal = exact >= np.finfo(dtype).tiny
    rel = np.abs(out.astype(np.longdouble) - exact)[normal] / exact[normal]
    assert rel.max() <= 2 * np.finfo(dtype).eps
    assert out[-1] == 0.5 and out[-2] == 0.5
    assert np.all(out[~normal] <= 10 * np.finfo(dtype).tiny) and np.all(out >= 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_saturates_and_keeps_nan(dtype):
    z = np.array([-np.inf, -1e30, -800, 800, 1e30, np.inf, np.nan], dtype)
    out = np.empty_like(z)
    sigmoid_all(z, out)
    assert np.all(out[:3] >= 0) and np.all(out[:3] <= 10 * np.finfo(dtype).tiny)
    assert np.all(out[3:6] == 1)
    assert np.isnan(out[6])
