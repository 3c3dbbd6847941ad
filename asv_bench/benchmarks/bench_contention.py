"""fastbp beside other work: default threads against one thread, same conditions.

One busy process per core (``python -c "while ...: pass"``, bounded in time and
killed at the end) runs beside fastbp; each case times the call with fastbp's
default threads and with one thread, interleaved, and reports the ratio of the
medians. The thread policy's target is a ratio of at most 1.5 for every call.
The same cases run by ``python asv_bench/compare_peers.py --contention``, which
prints the table (quiet and loaded) for the README.
"""

import contextlib
import statistics
import subprocess
import sys
import time

import numpy as np

import fastbp

#: name: (layer sizes, m, what is timed)
CASES = {
    "10-100-1 m=331 gradient": ((10, 100, 1), 331, "gradient"),
    "64-32-10 m=1203 gradient": ((64, 32, 10), 1203, "gradient"),
    "64-25-64 m=10000 gradient": ((64, 25, 64), 10_000, "gradient"),
    "2-10-1 m=500 gradient": ((2, 10, 1), 500, "gradient"),
    "784-256-10 m=2048 gradient": ((784, 256, 10), 2048, "gradient"),
    "64-25-64 m=10000 predict": ((64, 25, 64), 10_000, "predict"),
    "64-25-64 m=2000 sgd epoch b=32": ((64, 25, 64), 2000, "sgd"),
    "784-256-10 m=4096 sgd epoch b=512": ((784, 256, 10), 4096, "sgd512"),
    "10-20-1 m=331 lbfgs 20 it": ((10, 20, 1), 331, "lbfgs"),
}

BUSY = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


@contextlib.contextmanager
def competitors(n, seconds=120):
    """n busy processes, each ending by itself after ``seconds`` at most."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=seconds)])
             for _ in range(n)]
    try:
        time.sleep(0.2)  # let them start spinning
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def make_call(name, dtype=np.float64, seed=0):
    """A zero-argument callable running the case's public call."""
    sizes, m, what = CASES[name]
    rng = np.random.default_rng(seed)
    X = rng.random((m, sizes[0]), dtype=dtype)
    Y = rng.random((m, sizes[-1]), dtype=dtype)
    net = fastbp.Network(sizes, dtype=dtype, seed=seed)
    if what == "gradient":
        return lambda: net.cost_and_gradient(X, Y, 1e-4)
    if what == "predict":
        return lambda: net.predict(X)
    if what == "sgd":
        return lambda: fastbp.train(net, X, Y, 0.1, 1e-4, iterations=1, optimizer="sgd",
                                    batch_size=32)
    if what == "sgd512":
        return lambda: fastbp.train(net, X, Y, 0.1, 1e-4, iterations=1, optimizer="sgd",
                                    batch_size=512)
    if what == "lbfgs":
        def fit():
            net.initialize(seed=seed)
            fastbp.train(net, X, Y, weight_decay=1e-4, iterations=20, optimizer="lbfgs")
        return fit
    raise ValueError(name)


def numpy_burst():
    """A multi-threaded numpy matmul, as user code runs right before fastbp:
    it leaves numpy's BLAS threads spinning for a while."""
    a = np.ones((384, 384))
    return lambda: a @ a


def measure(call, n_busy, reps=9, before=None):
    """(median seconds with the default threads, median with one thread),
    interleaved, with ``n_busy`` competitors; ``before`` runs before every call."""
    default = fastbp.get_num_threads()
    runs = {default: [], 1: []}
    for n in runs:                      # warm up both paths (compilation)
        fastbp.set_num_threads(n)
        call()
    try:
        with competitors(n_busy) if n_busy else contextlib.nullcontext():
            for _ in range(reps):
                for n in (default, 1):
                    fastbp.set_num_threads(n)
                    if before is not None:
                        before()
                    t = time.perf_counter()
                    call()
                    runs[n].append(time.perf_counter() - t)
    finally:
        fastbp.set_num_threads(default)
    return statistics.median(runs[default]), statistics.median(runs[1])


def available_cores():
    """CPUs this process may use (fastbp's own count when it has one, so an
    older fastbp on PYTHONPATH can be measured by the same cases)."""
    try:
        from fastbp._threads import available_cpus
    except ImportError:
        import os
        return len(os.sched_getaffinity(0))
    return available_cpus()


#: The cases asv tracks (a short subset: asv runs each in its own process);
#: ``compare_peers.py --contention`` runs them all.
ASV_CASES = ["10-100-1 m=331 gradient", "64-32-10 m=1203 gradient",
             "64-25-64 m=10000 gradient", "64-25-64 m=2000 sgd epoch b=32"]


class Contention:
    """Ratio default threads / one thread with one busy process per core
    (target ≤ 1.5), and on a quiet machine (the 2-thread speed-up where < 1)."""

    params = (ASV_CASES, ["loaded", "quiet"])
    param_names = ["case", "machine"]
    unit = "ratio"
    number = 1
    repeat = 1
    timeout = 120

    def setup(self, case, machine):
        self.call = make_call(case)

    def track_default_over_one_thread(self, case, machine):
        busy = available_cores() if machine == "loaded" else 0
        default, one = measure(self.call, busy, reps=9)
        return default / one


class AfterNumpy:
    """Ratio default threads / one thread when every call follows a
    multi-threaded numpy matmul (its BLAS threads still spinning)."""

    params = (["64-25-64 m=10000 gradient"],)
    param_names = ["case"]
    unit = "ratio"
    number = 1
    repeat = 1
    timeout = 120

    def setup(self, case):
        self.call = make_call(case)

    def track_default_over_one_thread(self, case):
        default, one = measure(self.call, 0, reps=5, before=numpy_burst())
        return default / one
