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
