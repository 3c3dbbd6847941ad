"""asv benchmarks for fastbp's kernels. Data and JIT warm-up live in setup.

    cd asv_bench && asv run --python=same --quick --show-stderr
    cd asv_bench && asv check --python=same
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

import fastbp

from .workloads import WEIGHT_DECAY, WORKLOADS, make

ALL = fastbp.get_num_threads()
DTYPES = ["float32", "float64"]


class FullBatch:
    """Full-batch cost and gradient, and one gradient-descent iteration."""

    params = (list(WORKLOADS), DTYPES, [1, ALL])
    param_names = ["workload", "dtype", "threads"]
    timeout = 300

    def setup(self, workload, dtype, threads):
        fastbp.set_num_threads(threads)
        self.net, self.X, self.Y = make(workload, np.dtype(dtype))
        self.net.cost_and_gradient(self.X, self.Y, WEIGHT_DECAY)           # compile / warm up
        fastbp.train(self.net, self.X, self.Y, 0.1, WEIGHT_DECAY, iterations=1)

    def teardown(self, *params):
        fastbp.set_num_threads(ALL)

    def time_cost_and_gradient(self, workload, dtype, threads):
        self.net.cost_and_gradient(self.X, self.Y, WEIGHT_DECAY)

    def time_train_iteration(self, workload, dtype, threads):
        fastbp.train(self.net, self.X, self.Y, 0.1, WEIGHT_DECAY, iterations=1)


class SGDEpoch:
    """One epoch of mini-batch SGD, batch 32, on the UFLDL shape (m = 10,000)."""

    params = (DTYPES, [1, ALL])
    param_names = ["dtype", "threads"]

    def setup(self, dtype, threads):
        fastbp.set_num_threads(threads)
        self.net, self.X, self.Y = make("ufldl", np.dtype(dtype))
        self.epoch()

    def teardown(self, *params):
        fastbp.set_num_threads(ALL)

    def epoch(self):
        fastbp.train(self.net, self.X, self.Y, optimizer="sgd", batch_size=32, iterations=1,
                     learning_rate=0.1, weight_decay=WEIGHT_DECAY, shuffle=False)

    def time_sgd_epoch(self, dtype, threads):
        self.epoch()


class Memory:
    """Peak memory of a full-batch gradient at large m (MNIST shape)."""

    params = [DTYPES]
    param_names = ["dtype"]
    timeout = 600

    def setup(self, dtype):
        self.net, self.X, self.Y = make("mnist", np.dtype(dtype), m=200_000)
        self.net.cost_and_gradient(self.X[:1000], self.Y[:1000], WEIGHT_DECAY)

    def peakmem_full_batch_gradient_m200k(self, dtype):
        # The process's peak: X and Y (1.27 GB in float64), the interpreter and
        # compiled code, plus what the gradient needs.
        self.net.cost_and_gradient(self.X, self.Y, WEIGHT_DECAY)


# A fresh process: build the data, then measure the peak RSS a full-batch
# gradient adds, as a fraction of the bytes of X and Y.
_MEMORY_RATIO = textwrap.dedent("""
    import resource, sys
    import numpy as np, fastbp
    from benchmarks.workloads import make
    dtype = np.dtype(sys.argv[1])
    small, Xs, Ys = make("mnist", dtype, m=1000)
    small.cost_and_gradient(Xs, Ys, 1e-4)              # compile, start the thread pool
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    net, X, Y = make("mnist", dtype, m=200_000)
    data = X.nbytes + Y.nbytes
    net.cost_and_gradient(X, Y, 1e-4)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print((peak - base) / data)
""")


def track_memory_over_data_mnist_m200k(dtype):
    """(peak RSS − RSS before the data) / bytes of X and Y; 1.0 means the
    gradient needed nothing beyond the data."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _MEMORY_RATIO, dtype], cwd=here,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


track_memory_over_data_mnist_m200k.params = [DTYPES]
track_memory_over_data_mnist_m200k.param_names = ["dtype"]
track_memory_over_data_mnist_m200k.unit = "ratio"
track_memory_over_data_mnist_m200k.timeout = 600


def track_cost_after_50_iterations(dtype):
    """J after 50 gradient-descent steps on the UFLDL shape: a speed-up that
    breaks training moves this number."""
    net, X, Y = make("ufldl", np.dtype(dtype))
    history = fastbp.train(net, X, Y, learning_rate=0.5, weight_decay=WEIGHT_DECAY,
                           iterations=50)
    return float(history[-1])


track_cost_after_50_iterations.params = [DTYPES]
track_cost_after_50_iterations.param_names = ["dtype"]
track_cost_after_50_iterations.unit = "J"


_FIRST_RESULT = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import numpy as np, fastbp
    net = fastbp.Network([64, 25, 64])
    X = np.random.default_rng(0).random((1000, 64))
    net.cost_and_gradient(X, X, 1e-4)
    print(time.perf_counter() - t0)
""")


def track_first_result_seconds_warm_cache():
    """A new process, JIT cache already warm: import, build a network, first
    gradient. Measured inside the child, after interpreter start-up."""
    subprocess.run([sys.executable, "-c", _FIRST_RESULT], check=True, capture_output=True)
    best = min(float(subprocess.run([sys.executable, "-c", _FIRST_RESULT], check=True,
                                    capture_output=True, text=True).stdout)
               for _ in range(3))
    return best


track_first_result_seconds_warm_cache.unit = "seconds"
