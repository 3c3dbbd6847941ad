"""Memory: the gradient over m = 200,000 MNIST-shaped examples must need
little beyond the data itself."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from .workloads import WEIGHT_DECAY, make

DTYPES = ["float32", "float64"]


class Memory:
    """Peak memory of a full-batch gradient at large m (MNIST shape)."""

    params = [DTYPES]
    param_names = ["dtype"]
    timeout = 300

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
track_memory_over_data_mnist_m200k.timeout = 300
