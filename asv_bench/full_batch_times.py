#!/usr/bin/env python
"""Best-of-9 full-batch cost_and_gradient times at the UFLDL, MNIST and deep
shapes, float64 and float32, with fastbp's default threads — for comparing two
checkouts on one machine, alternating processes:

    python asv_bench/full_batch_times.py                          # this checkout
    PYTHONPATH=/path/to/other/checkout python asv_bench/full_batch_times.py

Run each a few times, alternating, and compare the ranges (the machine is noisy).
"""

import time

import numpy as np

import fastbp

SHAPES = {"ufldl": ((64, 25, 64), 10_000), "mnist": ((784, 256, 10), 10_000),
          "deep": ((256, 256, 256, 256, 10), 8_192)}


def main():
    cells = []
    for name, (sizes, m) in SHAPES.items():
        for dtype in (np.float64, np.float32):
            rng = np.random.default_rng(0)
            X = rng.random((m, sizes[0]), dtype=dtype)
            Y = rng.random((m, sizes[-1]), dtype=dtype)
            net = fastbp.Network(sizes, dtype=dtype)
            net.cost_and_gradient(X, Y, 1e-4)           # compile / warm up
            best = np.inf
            for _ in range(9):
                t = time.perf_counter()
                net.cost_and_gradient(X, Y, 1e-4)
                best = min(best, time.perf_counter() - t)
            cells.append(f"{name}-{np.dtype(dtype).name} {best * 1e3:.2f} ms")
    print(fastbp.__file__, "|", " | ".join(cells))


if __name__ == "__main__":
    main()
