"""The public API research code imports: parameter views, dtypes, shapes."""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastbp


def test_weights_and_biases_are_views_into_theta():
    net = fastbp.Network([64, 25, 64], seed=0)
    assert net.layer_sizes == (64, 25, 64)
    assert [W.shape for W in net.weights] == [(25, 64), (64, 25)]
    assert [b.shape for b in net.biases] == [(25,), (64,)]
    assert net.theta.ndim == 1 and net.theta.flags.c_contiguous
    assert net.n_params == 25 * 65 + 64 * 26 == net.theta.size
    for p in (*net.weights, *net.biases):
        assert np.shares_memory(p, net.theta)
    # writing θ changes the views, and the other way round
    net.theta = np.arange(net.n_params, dtype=float)
    assert net.weights[0][0, 1] == 1.0 and net.biases[0][0] == 25 * 64
    assert net.weights[1][0, 0] == 25 * 65
    net.biases[1][-1] = -7.0
    assert net.theta[-1] == -7.0


def test_theta_assignment_keeps_the_same_buffer():
    net = fastbp.Network([3, 2])
    buf = net.theta
    net.theta = np.ones(net.n_params, dtype=np.float32)
    assert net.theta is buf and np.all(buf == 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_result_keeps_the_network_dtype(dtype):
    net = fastbp.Network([5, 4, 3], dtype=dtype)
    X = np.random.default_rng(0).random((20, 5))
    J, gW, gb = net.cost_and_gradient(X, X[:, :3], 1e-4)
    assert isinstance(J, float)
    assert all(g.dtype == dtype for g in (*gW, *gb))
    assert net.predict(X).dtype == dtype and net.predict(X).shape == (20, 3)
    _, g = net.cost_and_gradient_flat(net.theta, X, X[:, :3])
    assert g.dtype == np.float64  # what scipy.optimize works in


FLOAT32_IR = textwrap.dedent("""
    import re, sys
    import numpy as np, fastbp
    from fastbp import _kernels as K
    net = fastbp.Network([6, 5, 4], dtype=np.float32, activations=["tanh", "sigmoid"])
    X = np.random.default_rng(0).random((600, 6)).astype(np.float32)
    for threads in (1, 2):  # the serial path, then the parallel one
        fastbp.set_num_threads(threads)
        net.cost_and_gradient(X, X[:, :4], 1e-4)
        net.cost(X, X[:, :4], 1e-4)
        fastbp.train(net, X, X[:, :4], iterations=1, optimizer="sgd", shuffle=True)
        net.predict(X)
    for kernel in (K.cost_and_gradient_kernel, K.minibatch_epoch_kernel, K.predict_kernel,
                   K.gradient_slots_parallel, K.minibatch_parts_parallel,
                   K.predict_slots_parallel):
        (sig,) = kernel.signatures
        ir = kernel.inspect_llvm(sig)
        arith = re.findall(r"= (?:fadd|fsub|fmul|fdiv|fneg)[a-z ]* (float|double) ", ir)
        calls = re.findall(r"@(?:llvm\\.)?(?:exp|log|tanh)[a-z]*\\.?(f32|f64|f)?\\(", ir)
        widened = [l for l in ir.splitlines() if " fpext " in l]
        print(kernel.__name__, arith.count("float"), arith.count("double"), len(widened), sorted(set(calls)))
""")


def test_float32_kernels_never_compute_in_float64():
    # A Python float constant would promote float32 arithmetic to double.
    # Compile the float32 kernels afresh (an empty cache, so the IR is there)
    # and read their LLVM IR: float arithmetic, and no double arithmetic.
    # FASTBP_PARALLEL_MIN_FLOPS=0 runs (and so compiles) the parallel routines too.
    env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(), FASTBP_PARALLEL_MIN_FLOPS="0",
               NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", FLOAT32_IR], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")[:6]
    assert len(lines) == 6 and all(lines), out.stdout
    for line in lines:
        name, n_float, n_double, n_widened, _ = line.split(" ", 4)
        assert int(n_float) > 50, line
        assert int(n_double) == 0, line
        # the only widening is the boxing of the returned cost into a Python float
        assert int(n_widened) <= 1, line


def test_repr_names_the_architecture():
    net = fastbp.Network([3, 4, 2], activations=["tanh", "identity"], dtype=np.float32)
    assert repr(net) == ("Network([3, 4, 2], activations=['tanh', 'identity'], "
                         "loss='squared', dtype=np.float32)")


def test_copy_is_independent():
    net = fastbp.Network([3, 4, 2])
    other = net.copy()
    other.theta = np.zeros(net.n_params)
    assert np.any(net.theta != 0)
    np.testing.assert_array_equal(other.weights[0], 0)


def test_pickling_keeps_weights_as_views_of_theta():
    import pickle
    net = fastbp.Network([3, 4, 2], dtype=np.float32)
    other = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(other.theta, net.theta)
    assert other.dtype == np.float32 and other.theta.flags.writeable
    other.weights[0][0, 0] = 42.0
    assert other.theta[0] == 42.0 and net.theta[0] != 42.0
