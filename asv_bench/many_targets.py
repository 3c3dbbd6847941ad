#!/usr/bin/env python
"""The train_many targets: one parallel call against the loop of fastbp.train calls it
replaces, timed back to back in one process (ratios from one run; repeat on a busy machine).

    python asv_bench/many_targets.py tiny ufldl

tiny:  256 nets 2-8-1, gd 200 steps, m = 256, per-network α and λ   (target <= 0.1x)
ufldl: 32 nets 64-25-64, sgd batch 32, 3 epochs, m = 2,000          (target <= 0.55x)
Each round times loop, many, many, loop and keeps the better of each pair.
"""

import sys
import time

import numpy as np

import fastbp


def tiny():
    rng = np.random.default_rng(0)
    X = rng.random((256, 2)); Y = (X[:, :1] > X[:, 1:]).astype(float)
    n = 256
    lrs = list(np.linspace(0.1, 2.0, n)); lams = list(np.linspace(0, 1e-3, n))
    nets = [fastbp.Network([2, 8, 1], seed=s, epsilon=0.5) for s in range(n)]
    return nets, X, Y, dict(learning_rate=lrs, weight_decay=lams, iterations=200), {}


def ufldl():
    rng = np.random.default_rng(0)
    X = rng.random((2000, 64)); Y = X
    n = 32
    lrs = list(np.linspace(0.1, 1.0, n)); lams = list(np.linspace(0, 1e-3, n))
    nets = [fastbp.Network([64, 25, 64], seed=s, init="uniform") for s in range(n)]
    return nets, X, Y, dict(learning_rate=lrs, weight_decay=lams, iterations=3), dict(optimizer="sgd", batch_size=32)


def run(case, reps):
    nets, X, Y, per, shared = case()
    n = len(nets)
    def loop():
        a = [net.copy() for net in nets]
        t = time.perf_counter()
        for i in range(n):
            fastbp.train(a[i], X, Y, **{k: (v[i] if isinstance(v, list) else v) for k, v in per.items()}, **shared)
        return time.perf_counter() - t
    def many():
        a = [net.copy() for net in nets]
        t = time.perf_counter()
        fastbp.train_many(a, X, Y, **per, **shared)
        return time.perf_counter() - t
    loop(); many()  # warm-up / compile
    for r in range(reps):
        tl = loop(); tm = many(); tm2 = many(); tl2 = loop()
        tl, tm = min(tl, tl2), min(tm, tm2)
        print(f"{case.__name__}: train loop {tl:.3f}s  train_many {tm:.3f}s  ratio {tm/tl:.3f}", flush=True)


for name in sys.argv[1:] or ["tiny", "ufldl"]:
    run(globals()[name], 3)
