"""Shared test helpers: random data and networks."""

import numpy as np

import fastbp


def make_data(sizes, m, dtype=np.float64, seed=0, loss="squared"):
    """Random inputs in (0,1) and targets the output layer can reach."""
    rng = np.random.default_rng(seed)
    X = rng.random((m, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], m)]
    else:
        Y = rng.random((m, sizes[-1])).astype(dtype)
    return X, Y


def net_for(sizes, activations="sigmoid", dtype=np.float64, seed=0, epsilon=0.5, loss="squared"):
    """A network with parameters large enough that every layer matters."""
    return fastbp.Network(sizes, activations=activations, dtype=dtype, seed=seed,
                          epsilon=epsilon, loss=loss)
