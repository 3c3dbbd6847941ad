"""Results do not depend on the thread count, and memory does not grow with m.
Each configuration runs in its own process: NUMBA_NUM_THREADS is read at import."""

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp

TRAIN = textwrap.dedent("""
    import hashlib, sys
    import numpy as np, fastbp
    assert fastbp.get_num_threads() == int(sys.argv[1])
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        # 80x60 is a BLAS layer, 60x5 and 5x3 loop layers; m spans many slots.
        net = fastbp.Network([80, 60, 5, 3], activations="tanh", dtype=dtype, epsilon=0.1)
        X = rng.random((9000, 80)).astype(dtype)
        Y = rng.random((9000, 3)).astype(dtype)
        hist = fastbp.train(net, X, Y, learning_rate=0.1, weight_decay=1e-4, iterations=3)
        fastbp.train(net, X, Y, learning_rate=0.1, iterations=1, optimizer="sgd", batch_size=64)
        print(hashlib.sha256(net.theta.tobytes() + hist.tobytes()).hexdigest())
        print(hashlib.sha256(net.predict(X).tobytes()).hexdigest())
""")


def run_with_threads(n, code, *args):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(n))
    out = subprocess.run([sys.executable, "-c", code, str(n), *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_training_is_bit_identical_for_one_and_two_threads():
    one = run_with_threads(1, TRAIN)
    two = run_with_threads(2, TRAIN)
    assert len(one.split()) == 4
    assert one == two


def test_set_num_threads_changes_nothing_in_the_result():
    rng = np.random.default_rng(1)
    X, Y = rng.random((5000, 30)), rng.random((5000, 4))
    results = []
    for n in range(1, fastbp.get_num_threads() + 1):
        fastbp.set_num_threads(n)
        net = fastbp.Network([30, 20, 4])
        J, gW, gb = net.cost_and_gradient(X, Y, 1e-3)
        results.append(hashlib.sha256(b"".join(g.tobytes() for g in (*gW, *gb))).hexdigest() + str(J))
    fastbp.set_num_threads(fastbp._threads.numba.config.NUMBA_NUM_THREADS)
    assert len(set(results)) == 1


MEMORY = textwrap.dedent("""
    import resource, sys
    import numpy as np, fastbp
    m = int(sys.argv[2])
    net = fastbp.Network([64, 100, 64])
    X = np.ones((m, 64)); X[::7] = 0.5
    # compile, start the threads, allocate the runtime: on a call that takes the
    # same (parallel) path as the measured one, 1/80 of its size
    net.cost_and_gradient(X[:5000], X[:5000])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    J, gW, gb = net.cost_and_gradient(X, X, 1e-4)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_full_batch_gradient_memory_does_not_grow_with_m():
    # X is 400,000 x 64 float64 = 205 MB; per-example activations for all m
    # would add 400,000 x 228 x 8 = 730 MB. The chunked kernels need at most
    # MAX_SLOTS x (CHUNK x widths + parameters) ~ 16 x (2 x 256 x 164 + 13,000) x 8 B.
    grown = int(run_with_threads(2, MEMORY, "400000"))
    assert grown < 30e6, grown
