#!/usr/bin/env python
"""Per-step overhead of data-parallel MPI training against one process.

    python asv_bench/mpi_overhead.py [--ranks 2] [--steps 10] [--m 10000]

Times gradient-descent steps at the MNIST shape (784-256-10, m examples,
float64): one process with all cores as threads, then ``mpiexec -n RANKS``
with cores/RANKS threads per rank and m/RANKS examples per rank. Prints the
best per-step time of each and the overhead (MPI / one process − 1). Needs
the ``mpi`` extra (mpi4py and the mpich wheel, which brings mpiexec).
"""

import argparse
import os
import shutil
import subprocess
import sys

STEP = r"""
import sys, time
import numpy as np, fastbp
steps, m, use_mpi = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
comm = None
rng = np.random.default_rng(0)
X = rng.random((m, 784)); Y = rng.random((m, 10))
if use_mpi:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    shard = np.array_split(np.arange(m), comm.size)[comm.rank]
    X, Y = X[shard], Y[shard]
net = fastbp.Network([784, 256, 10], seed=0)
fastbp.train(net, X, Y, learning_rate=0.1, iterations=2, comm=comm)   # warm up
best = float("inf")
for _ in range(steps):
    if comm is not None:
        comm.Barrier()
    t = time.perf_counter()
    fastbp.train(net, X, Y, learning_rate=0.1, iterations=1, comm=comm)
    best = min(best, time.perf_counter() - t)
if comm is None or comm.rank == 0:
    print(best)
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--m", type=int, default=10_000)
    args = p.parse_args()
    cores = os.cpu_count()
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("mpi_overhead: no mpiexec; pip install -e '.[mpi]'")
    one = subprocess.run([sys.executable, "-c", STEP, str(args.steps), str(args.m), "0"],
                         env=dict(os.environ, NUMBA_NUM_THREADS=str(cores)),
                         capture_output=True, text=True, check=True)
    per_rank = max(1, cores // args.ranks)
    mpi = subprocess.run([mpiexec, "-n", str(args.ranks), sys.executable, "-c", STEP,
                          str(args.steps), str(args.m), "1"],
                         env=dict(os.environ, NUMBA_NUM_THREADS=str(per_rank)),
                         capture_output=True, text=True, check=True)
    t1, t2 = float(one.stdout), float(mpi.stdout)
    print(f"MNIST shape 784-256-10, m={args.m}, float64, gradient-descent step (best of {args.steps})")
    print(f"one process, {cores} threads:            {t1 * 1e3:8.1f} ms")
    print(f"mpiexec -n {args.ranks}, {per_rank} thread(s) per rank: {t2 * 1e3:8.1f} ms")
    print(f"overhead: {100 * (t2 / t1 - 1):+.1f} %")


if __name__ == "__main__":
    main()
