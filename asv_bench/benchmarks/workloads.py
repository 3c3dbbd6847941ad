"""The workloads every fastbp benchmark uses (sigmoid, random data), shared by
the asv suite and by compare_peers.py."""

import numpy as np

import fastbp

#: name: (layer sizes, m)
WORKLOADS = {
    "tiny": ((2, 8, 1), 256),
    "ufldl": ((64, 25, 64), 10_000),
    "mnist": ((784, 256, 10), 10_000),
    "deep": ((256, 256, 256, 256, 10), 8_192),
}
WEIGHT_DECAY = 1e-4


def make(name, dtype, m=None, seed=0):
    """(net, X, Y) for a workload: X, Y ~ U(0, 1), parameters ~ N(0, 0.01²)."""
    sizes, default_m = WORKLOADS[name]
    m = default_m if m is None else m
    rng = np.random.default_rng(seed)
    X = rng.random((m, sizes[0]), dtype=dtype)   # drawn in dtype: no temporary copy
    Y = rng.random((m, sizes[-1]), dtype=dtype)
    net = fastbp.Network(sizes, dtype=dtype, seed=seed, epsilon=0.01)
    return net, X, Y


#: Every thread count the suite compares: one, and all that fastbp uses.
THREADS = sorted({1, fastbp.get_num_threads()})


class Tracked:
    """Timing settings that keep a full (non ``--quick``) ``asv run`` of the
    whole suite to about two minutes per commit on 2 cores, with results that
    ``asv publish`` keeps: one process per benchmark (``rounds``), a short
    warm-up, then 3-5 samples within about a second."""

    rounds = 1
    repeat = (3, 5, 1.0)      # (min samples, max samples, seconds to stop adding samples)
    warmup_time = 0.1
    sample_time = 0.02
    timeout = 120
