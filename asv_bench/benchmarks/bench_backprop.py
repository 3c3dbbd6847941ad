"""The kernels: full-batch cost and gradient per workload, dtype and thread
count; one SGD epoch; and a correctness tracker. Data and JIT warm-up live in
setup, never in the timed code.

    cd asv_bench && asv run --python=same --set-commit-hash $(git rev-parse HEAD)
"""

import numpy as np

import fastbp

from .workloads import THREADS, WEIGHT_DECAY, WORKLOADS, Tracked, make

ALL = fastbp.get_num_threads()
DTYPES = ["float32", "float64"]


class FullBatch(Tracked):
    """Full-batch cost and gradient (forward pass and backpropagation over all m),
    with all threads; MNIST also with one thread, for the parallel speed-up."""

    params = (list(WORKLOADS), DTYPES, THREADS)
    param_names = ["workload", "dtype", "threads"]

    def setup(self, workload, dtype, threads):
        if threads != ALL and workload != "mnist":
            raise NotImplementedError("one thread is tracked on mnist only")  # asv: skipped
        fastbp.set_num_threads(threads)
        self.net, self.X, self.Y = make(workload, np.dtype(dtype))
        self.net.cost_and_gradient(self.X, self.Y, WEIGHT_DECAY)           # compile / warm up

    def teardown(self, *params):
        fastbp.set_num_threads(ALL)

    def time_cost_and_gradient(self, workload, dtype, threads):
        self.net.cost_and_gradient(self.X, self.Y, WEIGHT_DECAY)


class SGDEpoch(Tracked):
    """One epoch of mini-batch SGD, batch 32, on the UFLDL shape (m = 10,000)."""

    params = (DTYPES, THREADS)
    param_names = ["dtype", "threads"]

    def setup(self, dtype, threads):
        fastbp.set_num_threads(threads)
        self.net, self.X, self.Y = make("ufldl", np.dtype(dtype))
        self.time_sgd_epoch(dtype, threads)

    def teardown(self, *params):
        fastbp.set_num_threads(ALL)

    def time_sgd_epoch(self, dtype, threads):
        fastbp.train(self.net, self.X, self.Y, optimizer="sgd", batch_size=32, iterations=1,
                     learning_rate=0.1, weight_decay=WEIGHT_DECAY, shuffle=False)


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
