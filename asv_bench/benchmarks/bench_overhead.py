"""What a small call costs beyond its arithmetic, and how long a new process
takes to its first result."""

import subprocess
import sys
import textwrap

import numpy as np

import fastbp

from .workloads import Tracked


class Overhead(Tracked):
    """Per-call overhead: one example through a 2-8-1 network, so the time is
    almost all dispatch, input checks and the trainer's bookkeeping (issue 9's
    target: ≤ 8 µs for the gradient)."""

    sizes = (2, 8, 1)

    def setup(self):
        sizes = self.sizes
        rng = np.random.default_rng(0)
        self.net = fastbp.Network(sizes, seed=0)
        self.theta = self.net.theta.copy()
        self.X, self.Y = rng.random((1, sizes[0])), rng.random((1, sizes[-1]))
        self.net.cost_and_gradient(self.X, self.Y, 1e-4)
        self.net.cost_and_gradient_flat(self.theta, self.X, self.Y, 1e-4)
        self.net.predict(self.X)
        fastbp.train(self.net, self.X, self.Y, learning_rate=0.1, iterations=1)
        fastbp.train(self.net, self.X, self.Y, iterations=1, optimizer="sgd")

    def time_cost_and_gradient_one_example(self):
        self.net.cost_and_gradient(self.X, self.Y, 1e-4)

    def time_cost_and_gradient_flat_one_example(self):
        """What scipy.optimize calls, thousands of times."""
        self.net.cost_and_gradient_flat(self.theta, self.X, self.Y, 1e-4)

    def time_predict_one_example(self):
        self.net.predict(self.X)

    def time_train_one_step(self):
        fastbp.train(self.net, self.X, self.Y, learning_rate=0.1, iterations=1)

    def time_train_100_steps(self):
        """100 gd steps in one call: what the trainer adds per step. With
        nothing to do between steps (no callback, checkpoint or early
        stopping) small steps run in compiled blocks, with no Python per step."""
        fastbp.train(self.net, self.X, self.Y, learning_rate=0.1, iterations=100)

    def time_train_one_sgd_epoch(self):
        """One shuffled mini-batch epoch per call, the shuffling generator's
        set-up included (seeding a Generator per call cost 12–24 µs before
        train cached an integer seed's first state)."""
        fastbp.train(self.net, self.X, self.Y, iterations=1, optimizer="sgd")


class OverheadUFLDL(Overhead):
    """The same for one example through the UFLDL 64-25-64 autoencoder
    (target: ≤ 12 µs for the gradient)."""

    sizes = (64, 25, 64)


_FIRST_RESULT = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import numpy as np, fastbp
    net = fastbp.Network([64, 25, 64])
    X = np.random.default_rng(0).random((1000, 64))
    net.cost_and_gradient(X, X, 1e-4)
    print(time.perf_counter() - t0)
""")


def _first_result():
    return float(subprocess.run([sys.executable, "-c", _FIRST_RESULT], check=True,
                                capture_output=True, text=True).stdout)


def track_first_result_seconds_warm_cache():
    """A new process, JIT cache already warm: import, build a network, first
    gradient (best of two, after one run that fills the cache). Measured
    inside the child, after interpreter start-up."""
    _first_result()
    return min(_first_result() for _ in range(2))


track_first_result_seconds_warm_cache.unit = "seconds"
track_first_result_seconds_warm_cache.timeout = 300
