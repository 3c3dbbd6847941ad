#!/usr/bin/env python
"""Reproduce the measurements behind fastbp's kernel design choices.

    python asv_bench/kernel_choices.py

1. BLAS vs explicit loops per layer shape (one thread, m = 10,000, full-batch
   gradient), and for a mini-batch SGD epoch (UFLDL shape, batch 32) — the
   crossover behind ``BLAS_MIN_WEIGHTS`` in fastbp/_compiler.py.
2. Single-threaded GEMM rate on fastbp's per-chunk shapes (256 rows, MNIST
   layer) against a big 2048³ GEMM — why per-slot BLAS stays below the
   machine's GEMM roofline.
3. ``--exp``: fastbp's vectorisable exp against numba's scalar ``np.exp``,
   and the sigmoid through that exp, and the same rational written with a
   NaN select (the release before), against the one-division rational
   sigmoid the kernels use.
4. The cost of one numba parallel region (what a parallel mini-batch pays).
5. ``--threshold``: the work at which threads start to pay, quiet and beside
   one busy process per core — the measurement behind
   ``PARALLEL_MIN_FLOPS`` in fastbp/_threads.py.
6. ``--rows``: BLAS vs loops by the rows of a chunk (the gradient kernel on
   one chunk, one thread) — the measurement behind ``BLAS_MIN_ROWS``.
7. ``--overhead``: where a one-example call's time goes (input checks, the
   compiled call, BLAS pinning, the gradient's views), against an empty
   numba call with as many arguments — what the small-call path saves; and
   ``train(iterations=1)``, gd and sgd, beside what seeding a Generator costs;
   a 100-step gd run per step (m = 1 and 256), in compiled blocks and step by
   step; and 2-8-1's call with a pure-Python loop, rounds interleaved, to tell the
   machine's noise from fastbp's.
8. ``--loop-orders``: weight decay's loops, and other loop orders for the
   explicit-loop layers (fewer than 64 weights) on a 256-row chunk.
9. ``--chunk``: the full-batch gradient with chunks of 128 … 1,024 rows.
10. ``--split``: where a 64-25-64 chunk's time goes, step by step, for the
    full batch's 256-row chunks and SGD's 32-row batches, and with the hidden
    layer padded to 32 units.
11. ``--narrow``: the 2-8-1 gradient end to end at m = 256 and 10,000 (run
    it on an older checkout too, to compare releases).
12. ``--simd``: each product of a layer on OpenBLAS against the SIMD tiles
    of fastbp/_simd.py, by layer shape, on 256 and 32 rows (one thread) —
    the measurement behind ``SIMD_MAX_WEIGHTS``.
13. ``--scaling``: what the public calls cost beyond their compiled
    kernels, and what two threads gain: the UFLDL gradient kernel on one
    and two threads; two independent gradient calls on two Python threads
    against one; an SGD epoch's kernel against its batches' chunks alone
    and against ``train``; 2-8-1 at m = 256, ``cost_and_gradient`` against
    its compiled call. Run it with PYTHONPATH at an older checkout to
    compare releases (from this release on).
14. ``--first``: a new process's first 64-25-64 gradient with an empty
    numba cache (the first compile) and then with the cache it left; and
    the same for a first ``train`` call (gd, m = 1,000: the compiled
    blocks of steps).
15. ``--units``: a narrow network's chunk (every layer fewer than 64
    weights) row by row against unit-major, by the chunk's rows — the
    measurement behind ``UNITS_MIN_ROWS`` in fastbp/_kernels.py.
16. ``--views``: the one-chunk gradient kernel's compiled time without the
    Python call (1 and 32 rows); Wᵀ's packing element by element against
    ``transpose_into``'s register transpose (once per SGD batch); and the
    kernels' views made by slicing and reshaping against
    :func:`fastbp._views.block` — why the kernels cut their views as blocks
    that own nothing.
17. ``--products``: the float64 MNIST 784-256-10 gradient (m = 10,000)
    against its chunks' five matrix products alone, through the same BLAS
    calls, on one and two threads, with the 2048³ dgemm roof of the same
    thread count — how far fastbp is from what its own products cost.

Tried and measured, on this 2-core machine (issue 9), with what came of it:

* Weight decay as flat loops over 1-D views of each W (section 8): 1.4–1.5 µs
  against 2.9–3.6 for row-by-row loops over the 2-D views (64-25-64,
  float64) — kept. The same loops indexing θ at an offset
  (``theta[off + p]``) took 4.8–5.1 µs: LLVM does not vectorise them, so
  kernels loop over 0-based views. Fusing the decay sum into the
  gradient-update loop was slower too (one-off, not kept here).
* The finiteness scan as a sum of x·0 per 512-entry block instead of an
  early-exit loop (vectorises); fused into the one-chunk kernels, it saves a
  separate compiled call (~0.5 µs).
* BLAS pinned through plain ctypes calls instead of threadpoolctl's
  controllers (section 7): 2.9–3.5 µs against 3.4–3.6, little. What pays is
  not pinning at all when no product of the call can thread.
* Loops instead of BLAS below 4 rows (section 6): small gain at m = 1–3.
* Loop orders for narrow layers (section 8): ΔW as dot products over
  transposed copies of δ and a wins or ties for every width tried (8×2:
  2.2–2.7 vs 7.5 µs; 1×8: 1.5 vs 1.6), so ``accumulate`` uses it from 16
  rows on. Transposing W for the forward product wins only when a layer
  widens (2→8) and loses 2–5× when it narrows (8→1); the residual product
  with its sum innermost wins for 8→2 and loses 2.4× for 1→8. Those two
  keep the row-by-row order; what would win everywhere is unrolling for
  the actual widths (compile-time sizes), not tried.
* Products by columns (section 8, later): one output unit at a time over a
  transposed copy of the chunk, so the inner loop runs over the rows. On
  256 rows it won for every width tried, for the forward product of a
  widening layer (2→8: 3.2 → 2.4 µs; 3→20: 14.5 → 8.3, float64) and for
  every residual product (2→8: 6.2 → 4.1); on 128 rows it lost in 7 of
  those 22 cases, so ``forward_layer`` and ``hidden_residual`` use it from
  ``COLUMNS_MIN_ROWS`` = 256 rows. End to end, five processes each,
  alternating with the commit before it (2-8-1 ``cost_and_gradient``, best
  round; what section 11 measures): float32 m = 256 18.4–18.8 vs 19.0–20.4 µs, m = 10,000 451–470 vs
  513–524 µs; float64 m = 256 23.2–24.5 vs 24.4–25.0 µs (one outlier on
  each side), m = 10,000 no change (~650 µs).
* Hidden widths padded to a multiple of 16 (section 10, and one-off runs):
  OpenBLAS's products are up to 1.6× faster on 256 × 64 × 32 than on
  256 × 64 × 25 when timed alone, but the whole gradient of 64-32-64 was no
  faster than 64-25-64's (same process, alternating: float32 4.9 vs 5.1 ms,
  float64 9.5 vs 10.6 ms, one thread) — not adopted.
* Register-blocked numba loops for ΔW (blocks of 1×8 to 4×16 outputs held
  in scalars; one-off): 2–7 GFLOP/s against OpenBLAS's 20–56 on the same
  64 × 25 × 256 products. Beating OpenBLAS on these shapes needed explicit
  SIMD micro-kernels: next bullet.
* SIMD tiles (fastbp/_simd.py; section 12), adopted: an MR × NV block of
  vector accumulators (4×3, 6×2 or 8×1 vectors of 8 float32 / 4 float64)
  updated with llvm.fma, emitted as LLVM vector IR from a numba intrinsic
  (first written as a standalone probe against OpenBLAS, then integrated).
  A layer's three products, OpenBLAS time / tiles time, one thread: on 256
  rows 1.28–2.17× for 64–2,560 weights (8→8, 25→64, 64→25, 256→10;
  float32 10→256 0.90×), 0.73–0.90× at 100→100, 0.41–0.82× from 16,384
  weights up; on 32 rows 1.32–2.73× up to 100→100 in both dtypes. Hence
  ``SIMD_MAX_WEIGHTS`` = 10,000 and, on chunks of ≥ 128 rows,
  ``SIMD_MAX_WEIGHTS_WIDE`` = 4,096 (fastbp/_compiler.py). Packing Wᵀ for
  the forward product costs 0.5–0.7 µs per 1,600 weights, once per call
  (per batch in SGD); a column-outer or 8×8-blocked transpose was no
  faster there (one-off, 25×64 and 64×25: 0.51–0.81 and 1.44–1.72 µs
  against 0.50–0.54; at 100×100 column-outer was 5–7 % faster). The tiles
  on 2-8-1's narrow layers (one-off, 15 rounds alternating): 0–12 %
  faster, within this machine's noise, so layers under 64 weights keep the
  loops.
* The bias added inside the sigmoid's loop (one 2-D pass instead of a
  bias pass and a flat sigmoid pass; one-off): slower, 2.4–2.6 against
  1.7–1.8 ns per value in float64 and 0.8–1.5 against 0.8–0.9 in float32
  (the flat loop vectorises better). The sigmoid alone: 1.5–1.6 ns per
  value in float64, 0.63–0.66 in float32.
* Slots handed out dynamically (``numba.set_parallel_chunksize(1)``) and a
  software prefetch of the next chunk's X and Y rows (one-off): no change
  beyond noise at UFLDL m = 10,000.
* exp's polynomial by Estrin's scheme, as 1 + r + r²·q(r) (one-off; as
  accurate as Horner's form: 1.42 against 1.41 eps in float64, 0.71 against
  0.63 in float32). Alone it was up to 1.2× faster (float64 sigmoid 2.2 →
  1.8 ns per value); inside ``activate`` on a 256 × 64 chunk, alternating
  processes, 1.9–2.0 against 2.0–2.5 ns best and equal medians in float64,
  no gain in float32 — too little to change every sigmoid network's last
  bits, not adopted.
* Where a chunk's time goes (section 10): the five BLAS products took
  77–85 % of a 64-25-64 chunk, on 256 rows and on SGD's 32 rows, in both
  dtypes; with the SIMD tiles, 69–75 % of a chunk that takes 167–173 µs
  instead of 214–263 (float64, 256 rows, two runs). Of the products, the
  forward x·W1ᵀ is the slowest (27–31 µs against 19–21 for the residual
  product of the same shape): it reads X from memory, the other from cache.
* Chunk sizes 128–1,024 rows (section 9): no change beyond noise at the
  UFLDL and MNIST shapes.
* One scratch row per thread instead of one per slot (adopted; one-off A/B,
  UFLDL m = 10,000 float64, three pairs of alternating processes): the 16
  slots used to keep 16 × 364 KB of activations and residuals, each cold
  when its slot started; now each thread runs a contiguous run of slots in
  one row's scratch (every slot still sums into its own ΔW/Δb, so the bits
  do not change). Two threads, best 4.28 / 4.67 / 3.67 ms against 4.70 /
  4.57 / 4.00, medians 4.68 / 4.98 / 4.61 against 7.09 / 5.00 / 5.05; one
  thread 6.86 / 8.67 / 6.63 against 7.12 / 8.53 / 7.10.
* Two independent gradient calls on two Python threads (separate data and
  buffers, UFLDL m = 5,120; section 13): 5.25–5.27 ms for both against
  3.47–3.56 for one in float64 (2.67 against 1.58 in float32), while a pure arithmetic loop scales 2.0×, and a forward tile
  product over a 5 MB X 1.7× slower per thread when both threads stream
  (0.047 → 0.080 s) against 1.2× on a cache-resident chunk. The two cores
  of this VM share memory bandwidth and cache; this, not the slot layout,
  is most of what two threads lose on UFLDL.
* SGD epochs with one part using that part's buffer as the batch gradient
  (skipping one copy of θ-sized data per batch; one-off, three pairs of
  alternating processes, UFLDL b = 32): the epoch kernel's time beyond its
  chunks' went from 1.27–1.35 ms to 0.58–1.46 — within the noise, not
  adopted then. Adopted later, with the part accumulating straight into
  the step's gradient: the copy it saves took 0.49 µs per batch in float64
  and 0.13 in float32 (one-off numba loop, 64-25-64), 0.15 / 0.04 ms of an
  epoch — still below the epoch's noise, but the same bits with one loop
  fewer.
* An autoencoder's Y scanned for NaN only once when it is X (one-off,
  cProfile of ``train``, SGD epoch on 10,000 × 64 float64): 0.38 against
  0.36 ms per call — the second scan reads what the first just brought
  into cache; the cost is streaming X from memory once (~4 % of the
  epoch). Not adopted.
* Row blocks of 24 or 48 rows for the forward tiles over a streaming X
  (so each block's rows serve every column tile while in L1; one-off):
  20.8 and 19.8 against 20.2 µs per 256-row chunk (float64), 9.8 / 9.7
  against 9.6 (float32) — no gain, not adopted.
* The sigmoid as one rational function (adopted; ``--exp``): e^r =
  (Q + rP)/(Q − rP) with Cephes' [6/6] minimax (float64) or the [3/3] Padé
  approximant (float32), so f = D / (D + 2^k N) needs five multiply-adds and
  the one division instead of the Taylor chain's twelve: 1.29–1.42× faster
  per value (two runs: float64 1.15–1.16 against 1.65–1.94 ns, float32
  0.55–0.57 against 0.70–0.73), within 2 ulp of the
  exact sigmoid like the old one. Without the division (to find the floor)
  it still took 1.0 ns per value in float64: the rest is range reduction,
  clamps, and constants spilled from registers.
* Narrow networks unit-major (adopted; ``--units``, two runs): a 2-8-1
  chunk of 256 rows row by row takes 14.3–22.1 µs (float64) and 10.7–18.9
  (float32), most of it the transposed copies the 2→8 forward product and
  ΔW make; unit-major with xᵀ the only copy, 7.2–10.9 and 4.3–7.7. From 8
  rows on it won in every case measured (see ``UNITS_MIN_ROWS``).
* The last N mod W columns of a SIMD product as one more tile over a
  zero-padded copy of them, storing only their lanes (one-off, old / new
  time interleaved in one process, one thread): for 64→25 (one column past
  the vectors) 0.80–0.95× in float64 and 0.62–0.83× in float32, i.e. slower
  than the dot products and column loops it replaced; it won only with 6 of
  8 lanes used (float32 64→30: 1.35×). Not adopted.
* X and Y checked finite inside the gradient kernel's slots, chunk by chunk
  (adopted): the separate scan before the call takes 0.36–0.39 ms (float64)
  and 0.16–0.19 ms (float32) of a 10,000 × 64 X and Y (``--scaling``, one
  run; 0.21–0.29 / 0.09–0.14 in a one-off right after gradient calls), 5–10 %
  of the UFLDL gradient; inside the slots the rows are checked as they come into cache
  for the chunk anyway.
* Views as blocks that own nothing (adopted; ``--views``, fastbp/_views.py).
  ``perf`` on a loop of one-example 2-8-1 gradients put a third of the
  compiled time in two instructions of numba's reference counting (the
  atomic increment and decrement every slice and reshape makes on its
  owner) and in its reshape helper. Twelve views of a 2-8-1 backprop:
  236 ns sliced and reshaped, 2 ns as blocks. The compiled one-chunk
  gradient, called from a numba loop (float64, against the release before):
  2-8-1 m = 1 2.56 → 1.29 µs, m = 32 3.27 → 2.03; 64-25-64 m = 1 5.89 →
  4.28, m = 32 24.1 → 22.0. The price is a rule: a block must not outlive
  the array it was cut from (numba frees a local array after its last use,
  whatever blocks of it are still live), so the kernels cut blocks only
  from arrays their caller holds for the whole call.
* Wᵀ packed by a register transpose (adopted; ``--views``): whole squares of
  W × W (4 float64, 8 float32) loaded as vectors, transposed in log2 W
  rounds of shuffles, stored as vectors; the rows and columns past them
  element by element. 25×64 and 64×25: 0.50–0.51 → 0.35–0.39 µs (float64),
  0.51–0.52 → 0.15–0.27 µs (float32). An SGD epoch packs Wᵀ once per batch
  (313 batches at b = 32).
* An SGD or Adam epoch checks X and Y batch by batch as it reads them
  (adopted; ``--scaling``): ``train`` scanned both before every call,
  0.2–0.4 ms of a 4–8 ms epoch. ``train``'s time beyond the epoch kernel,
  best rounds: float64 0.23 and 0.30 ms in two runs, against 0.73 for the
  release before in the same session; float32 0.45 and 0.37 against 0.40,
  no difference visible (its scan took 0.11–0.19 ms).
* The sigmoid and exp without their NaN select, and the sigmoid without
  forming x = −z (adopted; ``--exp`` times the old form beside the new,
  three runs: 1.13–1.22× as long per value in float64, 1.13–1.14× in
  float32, the same bits on its 16,384 values): the clamps are written as two tests
  that a NaN fails, so NaN passes through them and makes r, and the result,
  NaN by itself; and the sigmoid reduces s = z + k ln 2 = −r, whose odd
  part flips the sign of r P(r²), so D = Q + s P and N = Q − s P. The
  same bits on 1.3 million arguments (normal, uniform to ±745, and NaN,
  ±Inf, ±0 and the clamp edges), in both dtypes (one-off, old and new
  kernels in one process, 2^16 values per call, best of 300: sigmoid
  float64 1.13 → 0.97 and 1.33 → 1.15 ns per value, float32 0.40 → 0.36;
  exp float64 1.27 → 1.25, float32 0.42–0.52 → 0.37–0.47).
* A mini-batch shared by two threads (one-off prototype, not adopted): an
  epoch in one parallel region, the calling thread publishing each batch
  through atomic flags and computing its first half, a helper thread taking
  the second half (a compare-and-swap, so that whoever gets there first
  computes it, and the result does not depend on who did), then the sum,
  the decay and the step on the calling thread. The same bits as the
  serial epoch cut into two parts, but 64-25-64 b = 32 (float64) took
  7.5–8.1 ms against 7.8–8.0 for the one-part serial epoch (float32 3.6–4.6
  against 3.5–3.6): each half is a 16-row gradient, 13 % less efficient
  per row than 32 rows, θ, Wᵀ and the half's ΔW cross between the cores
  every batch, and the serial epoch cut in two parts took 10.1–10.6 ms.
  The parts must depend on the batch, not the thread count, so one-thread
  users and ``train_many`` would pay that. Where a batch's time goes
  (float64, cycle counter around each step): the chunk 90 %, Wᵀ's packing
  4 %, the decay 3.4 %, the step 2.5 %.
* Slots taken dynamically (adopted; fastbp/_atomic.py): each thread takes
  the next slot not yet taken instead of a fixed run of slots, the same
  bits. Measured one-off, with the previous release's package copied under
  another name and imported beside this one in one process, calls
  interleaved, 10 rounds (best / median ms, float64, this
  release's sigmoid included): MNIST 784-256-10 m = 10,000 quiet 122.1 /
  129.1 → 113.8 / 132.6, right after 20 numpy 256×256 matmuls (whose
  OpenBLAS thread spins ~0.1 s after) 162.3 / 175.6 → 148.3 / 176.4; deep
  256×4-10 quiet 133.8 / 140.1 → 128.8 / 138.3, after numpy 170.4 / 184.7
  → 159.2 / 180.5; UFLDL quiet 5.62 / 7.74 → 5.14 / 7.84. Best times 4–9 %
  lower, medians unchanged on this noisy machine; ``compare_peers.py
  --contention`` (two runs, one of the previous release): loaded ratios in
  the same ranges. Right after numpy, two threads still gain little over
  one (after-numpy ratio 0.95–0.97 for the MNIST gradient).
* Step 2 for the squared loss as one flat loop with the sigmoid's f' in the
  same pass (adopted; ``--split``, two runs alternating with the release
  before): the row-by-row loop summed each row's entries and then made a
  second pass for f'. δ3 of a 64-25-64 chunk on SIMD tiles, 256 rows:
  12.3–12.6 → 9.8–12.0 µs (float64), 7.6–7.8 → 4.9–5.6 (float32); 32 rows
  1.6–1.9 → 1.2–1.4 and 1.1–1.4 → 0.5–0.6. End to end (one-off, the release
  before copied under another name into the same process, calls
  interleaved, four runs of 15 rounds, best ms): float32 SGD epoch
  4.31–4.64 → 4.13–4.53, UFLDL gradient 2.02–2.55 → 1.94–2.18; float64 no
  difference beyond noise (UFLDL 3.50–4.19 → 3.57–4.34, SGD 8.03–8.56 →
  7.93–8.20).
* ``train``'s per-call cost (adopted; ``--overhead``): it seeded two
  Generators per call, ~12 µs each — the shuffling one and the validation
  split's, built even with no split. An integer seed's first state is now
  computed once and cached, shuffled epochs load ``state["rng"]`` into a
  per-thread PCG64 for each draw (the same draws, the same state written
  back), the split builds its Generator only when there is a split, and gd,
  L-BFGS and unshuffled epochs build none. ``train(iterations=1)`` on one
  example, best rounds, alternating with the release before: 2-8-1 gd
  91.8–116.2 → 36.3–39.1 µs (four runs), sgd 101.9–118.9 → 57.7–59.5;
  64-25-64 gd 113.3–141.9 → 53.5–69.0, sgd 122.6–139.6 → 70.5–76.8.
* Whole runs of small full-batch steps in one compiled call (adopted;
  ``--overhead``): with nothing to do between steps (no callback,
  checkpoint, early stopping or MPI) and steps too small for threads,
  ``train`` runs them in blocks of ``_kernels.full_batch_steps`` — the
  routine train_many already ran per network — instead of ~12–16 µs of
  Python around each step (copies of θ and the moments for the rollback,
  the finiteness checks, the history and state). Per step of a 100-step
  run, best rounds of two runs, blocks against step by step (a callback):
  2-8-1 one example 1.68–1.70 against 13.3–18.2 µs, m = 256 7.3–7.8 against
  19.3–19.6; 64-25-64 one example 11.7–12.2 against 24.0–24.1, m = 256
  188–194 against 184–194. The same bits (tests/test_training.py). Blocks
  hold at most ~3·10⁸ flops (tens of ms), so Ctrl-C waits no longer.
  Not done for mini-batch epochs: their Python is ~15–20 µs an epoch
  around a permutation that numpy draws anyway (one-off cProfile, 2-8-1,
  m = 32–256), against 0.3–1.6 ms epochs at the UFLDL shape.
* MNIST 784-256-10 (float64, m = 10,000) against its own chunks' products
  alone (``--products``, two runs): on one thread the products alone took
  233.8 and 246.4 ms, fastbp's gradient 245.4 and 232.7; on two threads
  128.1 and 120.4 against 133.7 and 122.5. fastbp is within 5 % of what
  its products cost, either way, and the products themselves read 84–102 %
  of the 2048³ dgemm roof measured beside them, so the roof column of
  compare_peers moves with that measurement as much as with fastbp. What is
  left is spread thin: zeroing and summing the 16 slots' ΔW (16 × 1.6 MB;
  memset ~2 % of a deep gradient's ``perf`` samples in an earlier
  session), the sigmoid (2.56 M values, ~1.2 ns each on one thread), and
  whichever thread takes the last slot (40 chunks in 16 slots of 2 or 3).

Interleaved best-of-N (medians for 5); sections 1-4 want an otherwise idle machine.
"""

import inspect
import os
import sys
import time

import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

import fastbp
from fastbp import _kernels
from fastbp._blas import gemm_accumulate
from fastbp._exp import exp
try:
    from fastbp._exp import (_bits_to_float32, _bits_to_float64, _float32_to_bits,
                             _float64_to_bits, sigmoid)
except ImportError:  # PYTHONPATH at a checkout from before the rational sigmoid
    sigmoid = None
from fastbp._compiler import kernel


#: The gradient kernel's ``check`` argument (False: the finiteness check is
#: not timed), absent before it had one, so that sections run with PYTHONPATH
#: at an older checkout call that checkout's kernel.
_NO_CHECK = ((False,) if "check" in inspect.signature(
    _kernels.cost_and_gradient_kernel.py_func).parameters else ())
#: The same for the SGD epoch kernel's ``check`` (from the release after).
_NO_EPOCH_CHECK = ((False,) if "check" in inspect.signature(
    _kernels.minibatch_epoch_kernel.py_func).parameters else ())


def best(fns, rounds=7, number=5):
    res = [np.inf] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            for _ in range(number):
                f()
            res[i] = min(res[i], (time.perf_counter() - t) / number)
    return res


def with_paths(net):
    blas, loops = net.copy(), net.copy()
    blas._products = np.ones_like(net._products)
    loops._products = np.zeros_like(net._products)
    blas._any_blas, loops._any_blas = True, False
    return blas, loops


def crossover():
    print("1. BLAS vs loops, one thread, full-batch gradient, m = 10,000 (ms)")
    fastbp.set_num_threads(1)
    for sizes in [(2, 8, 1), (8, 8, 8), (16, 16, 16), (32, 16, 32), (64, 25, 64)]:
        for dt in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            X = rng.random((10_000, sizes[0]), dtype=dt)
            Y = rng.random((10_000, sizes[-1]), dtype=dt)
            blas, loops = with_paths(fastbp.Network(sizes, dtype=dt))
            fns = [lambda n=n: n.cost_and_gradient(X, Y, 1e-4) for n in (blas, loops)]
            for f in fns:
                f()
            b, l = best(fns)
            print(f"   {'-'.join(map(str, sizes)):10s} {dt.__name__:8s} blas {b * 1e3:7.2f}  "
                  f"loops {l * 1e3:7.2f}  loops/blas {l / b:4.2f}")
    fastbp.set_num_threads(fastbp._threads.numba.config.NUMBA_NUM_THREADS)
    print("   SGD epoch, 64-25-64, batch 32, m = 10,000, all threads (ms)")
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        X = rng.random((10_000, 64), dtype=dt)
        blas, loops = with_paths(fastbp.Network([64, 25, 64], dtype=dt))
        fns = [lambda n=n: fastbp.train(n, X, X, optimizer="sgd", batch_size=32, iterations=1,
                                        shuffle=False) for n in (blas, loops)]
        for f in fns:
            f()
        b, l = best(fns, number=1)
        print(f"   {dt.__name__:8s} blas {b * 1e3:7.2f}  loops {l * 1e3:7.2f}")


def gemm_rates():
    print("2. single-thread GEMM rate (GFLOP/s): big 2048^3 vs fastbp's chunk products")
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        A, B = rng.random((2048, 2048), dtype=dt), rng.random((2048, 2048), dtype=dt)
        a, W = rng.random((256, 784), dtype=dt), rng.random((256, 784), dtype=dt)
        d = rng.random((256, 256), dtype=dt)
        with threadpool_limits(1):
            big = best([lambda: A @ B], rounds=3, number=1)[0]
            chunk = best([lambda: (np.dot(a, W.T), np.dot(d.T, a))], number=10)[0]
        print(f"   {dt.__name__:8s} big {2 * 2048 ** 3 / big / 1e9:6.1f}   "
              f"chunk (256x784x256, forward + dW) {4 * 256 * 784 * 256 / chunk / 1e9:6.1f}")


@njit(fastmath=True)
def _fast_exp(x, out):
    for i in range(x.shape[0]):
        out[i] = exp(x[i])


@njit(fastmath=True)
def _libm_exp(x, out):
    for i in range(x.shape[0]):
        out[i] = np.exp(x[i])


@kernel()
def _sigmoid_by_exp(x, out):
    one = x.dtype.type(1)
    for i in range(x.shape[0]):
        out[i] = one / (one + exp(-x[i]))


@kernel()
def _sigmoid_rational(x, out):
    for i in range(x.shape[0]):
        out[i] = sigmoid(x[i])


@kernel(reassociate=False)
def _sigmoid_select64(z):
    """fastbp's float64 sigmoid as the release before this one wrote it: x = −z
    formed, min/max clamps, NaN caught by a compare and a select."""
    x = -z
    nan = x != x
    x = min(max(x, -708.0), 709.0)
    k = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    rr = r * r
    rp = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    q = (((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
          + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0)
    d = q - rp
    two_k = _bits_to_float64(_float64_to_bits(k + 4503599627371519.0) << 52)
    return np.nan if nan else d / (d + two_k * (q + rp))


@kernel(reassociate=False)
def _sigmoid_select32(z):
    """The float32 one, likewise."""
    f = np.float32
    x = -z
    nan = x != x
    x = min(max(x, f(-87.0)), f(88.0))
    k = np.floor(x * f(1.44269504) + f(0.5))
    r = (x - k * f(0.693359375)) - k * f(-2.12194440e-4)
    rr = r * r
    rp = r * (rr * f(1.0 / 120.0) + f(0.5))
    q = rr * f(0.1) + f(1.0)
    d = q - rp
    two_k = _bits_to_float32(_float32_to_bits(k + f(8388735.0)) << 23)
    return f(np.nan) if nan else d / (d + two_k * (q + rp))


@kernel()
def _sigmoid_select(x, out):
    for i in range(x.shape[0]):
        out[i] = _sigmoid_select64(x[i]) if x.itemsize == 8 else _sigmoid_select32(x[i])


def exp_speed():
    """Section 3 (``--exp``): fastbp's exp against numba's scalar np.exp on
    1,000,000 values, and the sigmoid as ``1 / (1 + exp(−z))`` against
    fastbp._exp.sigmoid (one rational e^r, D / (D + 2^k N)) and against the
    same rational as the release before wrote it (a NaN select, x = −z
    formed), on a 16,384-value chunk (what one 256 × 64 layer holds),
    interleaved; the last two are checked to give the same bits."""
    print("3. exp and sigmoid, ns per value")
    for dt in (np.float32, np.float64):
        x = np.random.default_rng(0).uniform(-30, 30, 1_000_000).astype(dt)
        out = np.empty_like(x)
        fns = [lambda: _fast_exp(x, out), lambda: _libm_exp(x, out)]
        for f in fns:
            f()
        f, l = best(fns)
        z = np.random.default_rng(1).normal(0, 4, 256 * 64).astype(dt)
        a = np.empty_like(z)
        b = np.empty_like(z)
        sig = [lambda: _sigmoid_by_exp(z, a), lambda: _sigmoid_rational(z, a),
               lambda: _sigmoid_select(z, b)]
        for g in sig:
            g()
        same = np.array_equal(a, b)
        by_exp, rational, select = best(sig, number=200)
        print(f"   {dt.__name__:8s} exp: fastbp {f / x.size * 1e9:5.2f}  np.exp in numba "
              f"{l / x.size * 1e9:5.2f}  ({l / f:.1f}x);  sigmoid: 1/(1+exp(-z)) "
              f"{by_exp / z.size * 1e9:5.2f}  rational {rational / z.size * 1e9:5.2f}  "
              f"({by_exp / rational:.2f}x);  with a NaN select {select / z.size * 1e9:5.2f} "
              f"({select / rational:.2f}x, {'same bits' if same else 'BITS DIFFER'})")


@njit(parallel=True)
def _regions(a, n):
    for _ in range(n):
        for p in prange(2):
            a[p] += 1.0


def region_cost():
    a = np.zeros(2)
    _regions(a, 10)
    t = best([lambda: _regions(a, 3000)], number=1)[0]
    print(f"4. one numba parallel region (prange over 2): {t / 3000 * 1e6:.2f} us")


def threshold():
    """Full-batch gradient: one thread against the parallel path on all
    threads (forced by PARALLEL_MIN_FLOPS = 0), quiet and loaded."""
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmarks.bench_contention import available_cores, measure
    from fastbp import _threads
    print(f"5. threads against one thread by work (full-batch gradient, float64, "
          f"{fastbp.get_num_threads()} threads; ratio = threads / one thread, median of 9)")
    print(f"   {'shape':12s} {'m':>6s} {'MFLOP':>8s} {'1 thread':>10s} {'quiet':>7s} "
          f"{'loaded':>7s}")
    saved = _threads.PARALLEL_MIN_FLOPS
    _threads.PARALLEL_MIN_FLOPS = 0.0
    try:
        for sizes, ms in [((10, 100, 1), (331, 1024, 4096, 16384)),
                          ((64, 32, 10), (600, 1203, 2400, 4800, 9600)),
                          ((64, 25, 64), (600, 1200, 2400, 4800, 10_000)),
                          ((784, 256, 10), (300, 600, 1200, 2400))]:
            for m in ms:
                rng = np.random.default_rng(0)
                X, Y = rng.random((m, sizes[0])), rng.random((m, sizes[-1]))
                net = fastbp.Network(sizes)
                call = lambda: net.cost_and_gradient(X, Y, 1e-4)
                flops = 3 * net._forward_flops * m
                qd, q1 = measure(call, 0)
                ld, l1 = measure(call, available_cores())
                print(f"   {'-'.join(map(str, sizes)):12s} {m:6d} {flops / 1e6:8.1f} "
                      f"{q1 * 1e3:8.3f}ms {qd / q1:7.2f} {ld / l1:7.2f}", flush=True)
    finally:
        _threads.PARALLEL_MIN_FLOPS = saved


def _rounds(f, number=2000, rounds=40, warmup=200):
    """Per-call times in µs of many short rounds, sorted (short rounds dodge
    other processes' time slices; the spread between them is the machine's)."""
    for _ in range(warmup):
        f()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(number):
            f()
        times.append((time.perf_counter() - t) / number * 1e6)
    return sorted(times)


def _per_call(f, number=2000, rounds=40, warmup=200):
    """Best per-call time in µs over many short rounds."""
    return _rounds(f, number, rounds, warmup)[0]


def rows():
    """The gradient kernel on one chunk of m rows with every layer on BLAS or
    every layer on loops (BLAS_MIN_ROWS set to 1 so that BLAS really runs)."""
    from fastbp import _kernels as K, _compiler
    from fastbp.network import _NO_SPARSITY
    print(f"6. BLAS vs loops by chunk rows (one chunk, one thread, us; BLAS_MIN_ROWS is "
          f"{_compiler.BLAS_MIN_ROWS}: below it BLAS layers run the loops too)")
    with threadpool_limits(1, user_api="blas"):
        for sizes in [(64, 25, 64), (784, 256, 10), (8, 8, 8)]:
            for dt in (np.float64, np.float32):
                net = fastbp.Network(sizes, dtype=dt)
                line = []
                for m in (1, 2, 4, 8, 16, 32):
                    rng = np.random.default_rng(0)
                    X = rng.random((m, sizes[0]), dtype=dt)
                    Y = rng.random((m, sizes[-1]), dtype=dt)
                    grad = np.empty(net.n_params, dt)
                    times = []
                    for use in (np.ones_like(net._products), np.zeros_like(net._products)):
                        args = (net.theta, net._sizes, net._activation_codes, use,
                                net._loss_code, X, Y, dt(1e-4), _NO_SPARSITY[dt], True, False,
                                grad)
                        times.append(_per_call(lambda: K.small_batch_kernel(*args),
                                               number=max(50, 2000 // m)))
                    line.append(f"m={m}: {times[0]:.1f}/{times[1]:.1f}")
                print(f"   {'-'.join(map(str, sizes)):10s} {np.dtype(dt).name:7s} "
                      f"blas/loops  " + "  ".join(line), flush=True)


def overhead():
    """One example through 2-8-1 and 64-25-64: the public calls and their
    parts. The public calls run on any fastbp, so the same section measures a
    previous release: ``PYTHONPATH=<its checkout> python kernel_choices.py
    --overhead``, alternating with this one."""
    from numba import njit as _njit
    from threadpoolctl import ThreadpoolController
    from fastbp import _kernels as K, _threads
    from fastbp._validation import check_data

    @_njit(nogil=True)
    def empty(a, b, c, d, e, f, g, h, i, j, k, grad):
        return 0, 0.0

    controllers = ThreadpoolController().select(user_api="blas").lib_controllers

    def pin_with_threadpoolctl():  # what fastbp did per call before
        saved = [c.get_num_threads() for c in controllers]
        for c, n in zip(controllers, saved):
            if n != 1:
                c.set_num_threads(1)
        for c, n in zip(controllers, saved):
            if n != 1:
                c.set_num_threads(n)

    def pin():
        with _threads.blas_single_threaded():
            pass

    small = hasattr(K, "small_batch_kernel")  # not in releases before issue 9
    print(f"7. one example, where the time goes (us: best / median of 60 rounds of 1,000 "
          f"calls; fastbp from {os.path.dirname(fastbp.__file__)})")
    for sizes in [(2, 8, 1), (64, 25, 64)]:
        net = fastbp.Network(sizes)
        rng = np.random.default_rng(0)
        X, Y = rng.random((1, sizes[0])), rng.random((1, sizes[-1]))
        theta, grad = net.theta.copy(), np.empty(net.n_params)
        parts = {
            "cost_and_gradient": lambda: net.cost_and_gradient(X, Y, 1e-4),
            "cost_and_gradient_flat": lambda: net.cost_and_gradient_flat(theta, X, Y, 1e-4),
            "cost": lambda: net.cost(X, Y, 1e-4),
            "predict": lambda: net.predict(X),
            "train(iterations=1), gd": lambda: fastbp.train(net, X, Y, iterations=1),
            "train(iterations=1), sgd": lambda: fastbp.train(net, X, Y, iterations=1,
                                                            optimizer="sgd"),
            "  np.random.default_rng(seed)": lambda: np.random.default_rng(0),
        }
        if small:
            from fastbp.network import _NO_SPARSITY
            args = (theta, net._sizes, net._activation_codes, net._products, net._loss_code,
                    X, Y, 1e-4, _NO_SPARSITY[np.float64], True, True, grad)
            empty(*args)
            parts.update({
                "  shape checks": lambda: check_data(X, Y, net.layer_sizes, net.dtype,
                                                     finite=False),
                "  compiled call (with its check)": lambda: K.small_batch_kernel(*args),
                "  empty numba call, same arguments": lambda: empty(*args),
                "  views of the gradient": lambda: net.unflatten(grad),
                "  BLAS pinned and restored (ctypes)": pin,
                "  the same through threadpoolctl": pin_with_threadpoolctl,
            })
        print(f"   {'-'.join(map(str, sizes))}")
        for name, f in parts.items():
            times = _rounds(f, number=1000, rounds=60)
            print(f"     {name:36s} {times[0]:7.2f} / {times[len(times) // 2]:7.2f}",
                  flush=True)
        # Per step of a 100-step run: in compiled blocks (train's default when
        # nothing runs between steps), and step by step (a callback forces it).
        X256, Y256 = rng.random((256, sizes[0])), rng.random((256, sizes[-1]))
        for m, (Xm, Ym) in ((1, (X, Y)), (256, (X256, Y256))):
            for name, callback in ((f"train(iterations=100), gd, m = {m}, per step", None),
                                   ("  the same, step by step (a callback)", _no_op)):
                times = _rounds(
                    lambda: fastbp.train(net, Xm, Ym, iterations=100, callback=callback),
                    number=10, rounds=30, warmup=5)
                print(f"     {name:36s} {times[0] / 100:7.2f} / "
                      f"{times[len(times) // 2] / 100:7.2f}", flush=True)
    _noise_reference()


def _no_op(t, J, net):
    return None


def _python_loop():
    """Fixed pure-Python work (no numpy, no fastbp), ~10 µs: a reference for
    how much the machine itself moves between rounds."""
    s = 0
    for i in range(300):
        s += i * i
    return s


def _noise_reference(rounds=150, number=1000):
    """2-8-1's one-example ``cost_and_gradient`` and :func:`_python_loop`,
    their rounds interleaved, so both see the same stretches of the
    machine's time: when the median round of the Python loop sits as far
    above its best as fastbp's does, the gap between fastbp's best and
    median rounds is the machine's, not fastbp's."""
    net = fastbp.Network([2, 8, 1])
    rng = np.random.default_rng(0)
    X, Y = rng.random((1, 2)), rng.random((1, 1))
    calls = {"cost_and_gradient, 2-8-1": lambda: net.cost_and_gradient(X, Y, 1e-4),
             "a pure-Python loop": _python_loop}
    for f in calls.values():
        for _ in range(200):
            f()
    print(f"   the machine's noise: rounds interleaved ({rounds} of {number:,} calls each; "
          f"us: best / median, median ÷ best)")
    for name, (low, mid) in _best_median(calls, rounds, number).items():
        print(f"     {name:36s} {low * 1e3:7.2f} / {mid * 1e3:7.2f}   {mid / low:5.2f}",
              flush=True)


def loop_orders():
    """Section 8: each routine's loop order against the alternatives, one
    256-row chunk, compiled with fastbp's compiler policy."""
    from fastbp._compiler import kernel
    from fastbp._kernels import bias_view, weight_view

    @kernel()
    def forward_rows(a_prev, W, a):          # fastbp's: Σ_j innermost
        for r in range(a.shape[0]):
            for i in range(a.shape[1]):
                z = a.dtype.type(0)
                for j in range(a_prev.shape[1]):
                    z += W[i, j] * a_prev[r, j]
                a[r, i] = z

    @kernel()
    def forward_transposed(a_prev, W, a):    # units innermost, over Wᵀ
        Wt = np.ascontiguousarray(W.T)
        for r in range(a.shape[0]):
            for i in range(a.shape[1]):
                a[r, i] = 0
            for j in range(a_prev.shape[1]):
                x = a_prev[r, j]
                for i in range(a.shape[1]):
                    a[r, i] += Wt[j, i] * x

    @kernel()
    def dW_rows(delta, a_prev, dW):          # fastbp's: row by row
        for r in range(delta.shape[0]):
            for i in range(delta.shape[1]):
                d = delta[r, i]
                for j in range(a_prev.shape[1]):
                    dW[i, j] += d * a_prev[r, j]

    @kernel()
    def dW_dots(delta, a_prev, dW):          # dot products over transposed copies
        dT = np.ascontiguousarray(delta.T)
        aT = np.ascontiguousarray(a_prev.T)
        for i in range(dT.shape[0]):
            for j in range(aT.shape[0]):
                total = dW.dtype.type(0)
                for r in range(dT.shape[1]):
                    total += dT[i, r] * aT[j, r]
                dW[i, j] += total

    @kernel()
    def residual_axpy(delta_next, W, delta):  # fastbp's: units innermost
        for r in range(delta.shape[0]):
            for i in range(delta.shape[1]):
                delta[r, i] = 0
            for j in range(delta_next.shape[1]):
                d = delta_next[r, j]
                for i in range(delta.shape[1]):
                    delta[r, i] += W[j, i] * d

    @kernel()
    def residual_sums(delta_next, W, delta):  # Σ_j innermost
        for r in range(delta.shape[0]):
            for i in range(delta.shape[1]):
                z = delta.dtype.type(0)
                for j in range(delta_next.shape[1]):
                    z += W[j, i] * delta_next[r, j]
                delta[r, i] = z

    @kernel()
    def decay_rows(theta, sizes, inv_m, weight_decay, want_gradient, grad):
        """Weight decay row by row over the 2-D views of W (before issue 9)."""
        decay = theta.dtype.type(0)
        for l in range(sizes.shape[0] - 1):
            W, dW = weight_view(theta, sizes, l), weight_view(grad, sizes, l)
            db = bias_view(grad, sizes, l)
            for i in range(W.shape[0]):
                for j in range(W.shape[1]):
                    decay += W[i, j] * W[i, j]
            for i in range(W.shape[0]):
                for j in range(W.shape[1]):
                    dW[i, j] = dW[i, j] * inv_m + weight_decay * W[i, j]
                db[i] *= inv_m
        return decay

    @kernel()
    def decay_offsets(theta, sizes, inv_m, weight_decay, want_gradient, grad):
        """The flat loops indexing θ at an offset instead of over 1-D views."""
        decay = theta.dtype.type(0)
        off = 0
        for l in range(sizes.shape[0] - 1):
            n_weights = sizes[l + 1] * sizes[l]
            end = off + n_weights + sizes[l + 1]
            for p in range(off, off + n_weights):
                decay += theta[p] * theta[p]
            for p in range(off, off + n_weights):
                grad[p] = grad[p] * inv_m + weight_decay * theta[p]
            for p in range(off + n_weights, end):
                grad[p] *= inv_m
            off = end
        return decay

    from fastbp import _kernels as K
    print("8. weight decay over 64-25-64's parameters (us): fastbp's flat loops over 1-D "
          "views / rows of 2-D views / θ at an offset")
    for dt in (np.float64, np.float32):
        net = fastbp.Network((64, 25, 64), dtype=dt)
        grad = np.ones(net.n_params, dt)
        args = (net.theta, net._sizes, dt(1.0), dt(1e-4), True, grad)
        t = [_per_call(lambda f=f: f(*args)) for f in (K.apply_weight_decay, decay_rows,
                                                        decay_offsets)]
        print(f"   {np.dtype(dt).name:7s} " + " / ".join(f"{x:.2f}" for x in t), flush=True)
    print("   loop orders for narrow layers, one chunk (us). forward: fastbp's row by row "
          "(Σ_j innermost) / units innermost over Wᵀ / by columns (product_by_columns); "
          "dW: row by row / dot products over transposed copies (fastbp's from "
          f"{K.DOTS_MIN_ROWS} rows); residual: row by row (units innermost) / Σ_j innermost "
          f"/ by columns. fastbp uses columns from {K.COLUMNS_MIN_ROWS} rows for every "
          "residual and for the forward product of a widening layer")

    def columns(x, W, out):
        K.product_by_columns(x, W, False, out)

    def columns_residual(delta_next, W, delta):
        K.product_by_columns(delta_next, W, True, delta)

    for dt in (np.float64, np.float32):
        for rows in (128, 256):
            for n_in, n_out in [(2, 8), (1, 8), (3, 20), (5, 7), (8, 7), (8, 2), (8, 1)]:
                rng = np.random.default_rng(0)
                a_prev = rng.random((rows, n_in)).astype(dt)
                W = rng.random((n_out, n_in)).astype(dt)
                a, delta = np.empty((rows, n_out), dt), rng.random((rows, n_out)).astype(dt)
                dW, back = np.zeros((n_out, n_in), dt), np.empty((rows, n_in), dt)
                cells = []
                for label, fs, args in [
                        ("forward", (forward_rows, forward_transposed, columns), (a_prev, W, a)),
                        ("dW", (dW_rows, dW_dots), (delta, a_prev, dW)),
                        ("residual", (residual_axpy, residual_sums, columns_residual),
                         (delta, W, back))]:
                    t = [_per_call(lambda f=f: f(*args), number=300, rounds=30) for f in fs]
                    cells.append(f"{label} " + "/".join(f"{x:.2f}" for x in t))
                print(f"   {np.dtype(dt).name:7s} {rows} rows {n_in}->{n_out}  " + "  ".join(cells),
                      flush=True)


def chunk_sizes():
    """Section 9: the full-batch gradient kernel with other chunk sizes."""
    from fastbp import _kernels as K, _threads
    from fastbp._compiler import MAX_SLOTS
    from fastbp.network import _NO_SPARSITY
    print(f"9. full-batch gradient by chunk rows, m = 10,000, "
          f"{fastbp.get_num_threads()} threads (ms, best of 15)")
    for sizes in [(64, 25, 64), (784, 256, 10)]:
        for dt in (np.float64, np.float32):
            net = fastbp.Network(sizes, dtype=dt)
            rng = np.random.default_rng(0)
            X = rng.random((10_000, sizes[0]), dtype=dt)
            Y = rng.random((10_000, sizes[-1]), dtype=dt)
            grad, cells = np.empty(net.n_params, dt), []
            for chunk in (128, 256, 512, 1024):
                work = np.empty((min(MAX_SLOTS, -(-10_000 // chunk)),
                                 2 * chunk * sum(sizes[1:]) + net.n_params), dt)
                args = (net.theta, net._sizes, net._activation_codes, net._products,
                        net._loss_code, X, Y, dt(1e-4), _NO_SPARSITY[dt], True, *_NO_CHECK,
                        10_000, chunk,
                        MAX_SLOTS, fastbp.get_num_threads(), work, grad)

                def call():
                    with _threads.blas_single_threaded(), \
                            _threads.parallel_region(fastbp.get_num_threads()):
                        K.cost_and_gradient_kernel(*args)
                cells.append(f"{chunk}: {_per_call(call, number=1, rounds=15, warmup=1) / 1e3:.2f}")
            print(f"   {'-'.join(map(str, sizes)):10s} {np.dtype(dt).name:7s} " + "  ".join(cells),
                  flush=True)


def split():
    """Section 10: where a 64-25-64 chunk's time goes, step by step, inside the
    compiled code (the CPU's cycle counter around each of fastbp's routines),
    one thread, over the m = 10,000 examples of the UFLDL workload in chunks
    of 256 rows (full batch) and of 32 rows (an SGD batch). Also the same
    chunks with the hidden layer padded to 32 units (a multiple of OpenBLAS's
    kernel widths, where its products alone ran faster)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic
    from fastbp import _kernels as K
    from fastbp._simd import simd_forward
    from fastbp._compiler import BLAS, SIMD

    @intrinsic
    def cycles(typingctx):
        def codegen(context, builder, signature, args):
            fn = builder.module.declare_intrinsic(
                "llvm.readcyclecounter", fnty=ir.FunctionType(ir.IntType(64), []))
            return builder.call(fn, [])
        return types.int64(), codegen

    @njit
    def steps(theta, theta_t, sizes, X, Y, rows, grad, T, product):
        """backprop_chunk's steps for a 2-layer sigmoid net, each timed, with
        the products on BLAS or on the SIMD tiles (``product``). The kernels'
        views are blocks that own nothing (fastbp/_views.py), so θ_t comes
        in as an argument: it must outlive its blocks W1t, W2t."""
        simd = product == K.SIMD
        acts = np.empty(K.work_size(sizes, rows), theta.dtype)
        deltas = np.empty(K.work_size(sizes, rows), theta.dtype)
        W1, b1 = K.weight_view(theta, sizes, 0), K.bias_view(theta, sizes, 0)
        W2, b2 = K.weight_view(theta, sizes, 1), K.bias_view(theta, sizes, 1)
        W1t, W2t = K.weight_t_view(theta_t, sizes, 0), K.weight_t_view(theta_t, sizes, 1)
        for start in range(0, X.shape[0] - rows + 1, rows):
            x, y = K.data_rows(X, start, rows), K.data_rows(Y, start, rows)
            a1, a2 = K.rows_view(acts, 1, sizes, rows, rows), K.rows_view(acts, 2, sizes, rows, rows)
            d1, d2 = K.rows_view(deltas, 1, sizes, rows, rows), K.rows_view(deltas, 2, sizes, rows, rows)
            t0 = cycles()
            if simd:
                simd_forward(x, W1, W1t, a1)
            else:
                np.dot(x, W1.T, a1)
            t1 = cycles()
            K.activate(a1, b1, K.SIGMOID)
            t2 = cycles()
            if simd:
                simd_forward(a1, W2, W2t, a2)
            else:
                np.dot(a1, W2.T, a2)
            t3 = cycles()
            K.activate(a2, b2, K.SIGMOID)
            t4 = cycles()
            K.output_residual(a2, y, K.SIGMOID, K.SQUARED, d2, a1, W2, b2)
            t5 = cycles()
            K.accumulate(d2, a1, product, K.weight_view(grad, sizes, 1),
                         K.bias_view(grad, sizes, 1))
            t6 = cycles()
            K.hidden_residual(d2, W2, W2t, a1, K.SIGMOID, product, np.empty(0, theta.dtype), d1)
            t7 = cycles()
            K.accumulate(d1, x, product, K.weight_view(grad, sizes, 0),
                         K.bias_view(grad, sizes, 0))
            t8 = cycles()
            for k, (u, v) in enumerate(((t0, t1), (t2, t3), (t6, t7), (t5, t6), (t7, t8),
                                        (t1, t2), (t3, t4), (t4, t5))):
                T[k] += v - u

    names = ("x·W1ᵀ", "a2·W2ᵀ", "δ2 = (δ3·W2)•f'", "ΔW2 (+Δb2)", "ΔW1 (+Δb1)", "f layer 2",
             "f layer 3", "δ3")
    print("10. one chunk of 64-25-64, step by step (one thread, us per chunk, best of 15 passes "
          "over m = 10,000; the first five are the matrix products, on BLAS or SIMD tiles)")
    with threadpool_limits(1, user_api="blas"):
        for dt in (np.float64, np.float32):
          for product in (BLAS, SIMD):
            for hidden in (25, 32):
                for rows in (256, 32):
                    net = fastbp.Network((64, hidden, 64), dtype=dt)
                    rng = np.random.default_rng(0)
                    X = rng.random((10_000, 64)).astype(dt)
                    Y = rng.random((10_000, 64)).astype(dt)
                    grad = np.zeros(net.n_params, dt)
                    theta_t = K.transposed_weights(net.theta, net._sizes, np.full(2, K.SIMD),
                                                   rows)
                    T = np.zeros(8, np.int64)
                    best_time, best_T = np.inf, None
                    for _ in range(15):
                        T[:] = 0
                        t = time.perf_counter()
                        steps(net.theta, theta_t, net._sizes, X, Y, rows, grad, T, product)
                        t = time.perf_counter() - t
                        if t < best_time:
                            best_time, best_T = t, T.copy()
                    per_chunk = best_time / (10_000 // rows) * 1e6
                    share = best_T / best_T.sum()
                    products = share[:5].sum()
                    print(f"   {np.dtype(dt).name:7s} {'SIMD' if product == K.SIMD else 'BLAS'} "
                          f"64-{hidden}-64 {rows:3d} rows: "
                          f"{per_chunk:6.1f} us, products {100 * products:.0f} %  ("
                          + ", ".join(f"{n} {per_chunk * f:.1f}" for n, f in zip(names, share))
                          + ")", flush=True)


def simd():
    """Section 12: GFLOP/s of a layer's three products on one thread, BLAS
    (``np.dot``, gemm with β = 1) against the SIMD tiles (Wᵀ packed once;
    ``+pack`` packs it on every call), interleaved, best of 7 rounds."""
    from fastbp import _simd as S

    @njit
    def forward_blas(a, W, W_t, z, n):
        for _ in range(n):
            np.dot(a, W.T, z)

    @njit
    def forward_simd(a, W, W_t, z, n):
        for _ in range(n):
            S.simd_forward(a, W, W_t, z)

    @njit
    def forward_pack(a, W, W_t, z, n):
        for _ in range(n):
            S.transpose_into(W, W_t)
            S.simd_forward(a, W, W_t, z)

    @njit
    def residual_blas(d, W, W_t, delta, n):
        for _ in range(n):
            np.dot(d, W, delta)

    @njit
    def residual_simd(d, W, W_t, delta, n):
        for _ in range(n):
            S.simd_residual(d, W, W_t, delta)

    @njit
    def dW_blas(d, a, dW, n):
        for _ in range(n):
            gemm_accumulate(d, a, dW)

    @njit
    def dW_simd(d, a, dW, n):
        for _ in range(n):
            S.simd_accumulate(d, a, dW)

    def interleaved(fns, rounds=7, number=200):
        for f, args in fns:
            f(*args, 2)
        best = [np.inf] * len(fns)
        for _ in range(rounds):
            for k, (f, args) in enumerate(fns):
                t = time.perf_counter()
                f(*args, number)
                best[k] = min(best[k], (time.perf_counter() - t) / number)
        return best

    print("12. a layer's products, OpenBLAS vs SIMD tiles (one thread, GFLOP/s, best of 7; "
          "'layer' = the three products' total time, BLAS / SIMD)")
    shapes = [(8, 8), (25, 64), (64, 25), (100, 100), (128, 128), (256, 10), (10, 256),
              (64, 256), (256, 64), (150, 150), (200, 200), (256, 256), (784, 256)]
    rng = np.random.default_rng(0)
    with threadpool_limits(1, user_api="blas"):
        for dt in (np.float64, np.float32):
            for rows in (256, 32):
                for n_in, n_out in shapes:
                    a = rng.standard_normal((rows, n_in)).astype(dt)
                    W = rng.standard_normal((n_out, n_in)).astype(dt)
                    W_t = np.ascontiguousarray(W.T)
                    d = rng.standard_normal((rows, n_out)).astype(dt)
                    z, delta = np.empty((rows, n_out), dt), np.empty((rows, n_in), dt)
                    dW = np.zeros((n_out, n_in), dt)
                    f = interleaved([(forward_blas, (a, W, W_t, z)), (forward_simd, (a, W, W_t, z)),
                                     (forward_pack, (a, W, W_t.copy(), z))])
                    r = interleaved([(residual_blas, (d, W, W_t, delta)),
                                     (residual_simd, (d, W, W_t, delta))])
                    g = interleaved([(dW_blas, (d, a, dW)), (dW_simd, (d, a, dW))])
                    flop = 2e-9 * rows * n_in * n_out
                    print(f"   {np.dtype(dt).name:7s} {rows:3d} rows {n_in:3d}->{n_out:<3d} "
                          f"({n_in * n_out:6d} weights)  forward {flop / f[0]:5.1f} / "
                          f"{flop / f[1]:5.1f} (+pack {flop / f[2]:5.1f})  residual "
                          f"{flop / r[0]:5.1f} / {flop / r[1]:5.1f}  dW {flop / g[0]:5.1f} / "
                          f"{flop / g[1]:5.1f}  layer {(f[0] + r[0] + g[0]) / (f[1] + r[1] + g[1]):4.2f}x",
                          flush=True)


def _best_median(fns, rounds, number=1):
    """{name: (best, median)} in ms per call, the calls interleaved."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(number):
                f()
            times[k].append((time.perf_counter() - t) / number * 1e3)
    return {k: (min(v), float(np.median(v))) for k, v in times.items()}


def _show(label, res, unit="ms", scale=1.0):
    print(f"   {label}: " + "  ".join(f"{k} {b * scale:.2f} / {m * scale:.2f}"
                                        for k, (b, m) in res.items()) + f" {unit}", flush=True)


def scaling():
    """Section 13 (best / median over interleaved rounds)."""
    import threading
    from fastbp import _kernels as K, _threads
    from fastbp._compiler import CHUNK, MAX_SLOTS
    from fastbp._validation import check_finite

    @njit
    def sgd_chunks(theta, theta_t, sizes, activations, products, X, acts, deltas, grad):
        """backprop_chunk over X's consecutive 32-row batches, with nothing
        else of an SGD epoch (no update, no Wᵀ packing)."""
        no_sparsity = np.empty(0, theta.dtype)
        cost = theta.dtype.type(0)
        for start in range(0, X.shape[0] - 31, 32):
            x = K.data_rows(X, start, 32)
            cost += K.backprop_chunk(theta, theta_t, sizes, activations, products, 0, x, x,
                                     no_sparsity, acts, deltas, 32, grad)
        return cost

    print(f"13. calls against their kernels, and two threads against one (best / median; fastbp "
          f"from {os.path.dirname(fastbp.__file__)})")
    rng = np.random.default_rng(0)
    for dt in (np.float64, np.float32):
        name = np.dtype(dt).name
        net = fastbp.Network([64, 25, 64], dtype=dt, seed=0)
        grad = np.empty(net.n_params, dt)

        def kernel(X, threads, ws, g=grad, net=net):
            args = (net.theta, net._sizes, net._activation_codes, net._products, net._loss_code,
                    X, X, dt(1e-4), np.empty(0, dt), True, *_NO_CHECK, X.shape[0], CHUNK,
                    MAX_SLOTS)
            if threads:
                with _threads.parallel_region(threads):
                    return K.cost_and_gradient_kernel(*args, threads, ws, g)
            return K.cost_and_gradient_kernel(*args, 0, ws, g)

        X = rng.random((10_000, 64)).astype(dt)
        Y = rng.random((10_000, 64)).astype(dt)
        ws = net._new_workspace(MAX_SLOTS)
        _show(f"{name} UFLDL m = 10,000 gradient", _best_median({
            "kernel, 1 thread": lambda: kernel(X, 0, ws),
            "kernel, 2 threads": lambda: kernel(X, 2, ws),
            "cost_and_gradient": lambda: net.cost_and_gradient(X, X, 1e-4),
            # what the call scanned before the check moved into the slots
            "separate NaN scan of X, Y, θ": lambda: check_finite(X, Y, net.theta)}, 30))

        # Two independent calls (own data, buffers, θ) on two Python threads.
        half = [rng.random((5_120, 64)).astype(dt) for _ in range(2)]
        bufs = [(net._new_workspace(MAX_SLOTS), np.empty(net.n_params, dt)) for _ in range(2)]

        def both():
            ts = [threading.Thread(target=kernel, args=(half[i], 0, bufs[i][0], bufs[i][1]))
                  for i in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        _show(f"{name} UFLDL m = 5,120 serial kernel", _best_median({
            "one call": lambda: kernel(half[0], 0, *bufs[0]), "two calls on two threads": both},
            20))

        order = np.arange(10_000)
        state, step = np.zeros((2, net.n_params), dt), np.zeros(1, np.int64)
        epoch = (net.theta, net._sizes, net._activation_codes, net._products, net._loss_code,
                 X, X, order, False, 32, 1, dt(1e-4), CHUNK, K.PLAIN, dt(0.01), dt(0), dt(0.9),
                 dt(0.999), dt(1e-8), state, step, *_NO_EPOCH_CHECK, False)
        theta_t = K.transposed_weights(net.theta, net._sizes, net._products, 32)
        acts = np.empty(K.work_size(net._sizes, 32), dt)
        deltas = np.empty_like(acts)
        _show(f"{name} SGD epoch b = 32", _best_median({
            "train": lambda: fastbp.train(net, X, X, optimizer="sgd", batch_size=32, iterations=1,
                                          shuffle=False, weight_decay=1e-4, learning_rate=0.01),
            "epoch kernel": lambda: K.minibatch_epoch_kernel(*epoch),
            "its chunks alone": lambda: sgd_chunks(net.theta, theta_t, net._sizes,
                                                    net._activation_codes, net._products, X,
                                                    acts, deltas, grad)}, 12))

        tiny = fastbp.Network([2, 8, 1], dtype=dt, seed=0)
        Xt, Yt = rng.uniform(size=(256, 2)).astype(dt), rng.uniform(size=(256, 1)).astype(dt)
        gt = np.empty(tiny.n_params, dt)
        small = (tiny.theta, tiny._sizes, tiny._activation_codes, tiny._products,
                 tiny._loss_code, Xt, Yt, dt(1e-4), np.empty(0, dt), True, True, gt)
        _show(f"{name} 2-8-1 m = 256", _best_median({
            "cost_and_gradient": lambda: tiny.cost_and_gradient(Xt, Yt, 1e-4),
            "small_batch_kernel": lambda: K.small_batch_kernel(*small)}, 20, number=500),
            unit="us", scale=1e3)


_FIRST = """
import time; t0 = time.perf_counter()
import numpy as np
t_numpy = time.perf_counter()
import numba
t_numba = time.perf_counter()
import fastbp
t_fastbp = time.perf_counter()
net = fastbp.Network([64, 25, 64], seed=0)
t_net = time.perf_counter()
X = np.random.default_rng(0).random((1000, 64))
net.cost_and_gradient(X, X)
t1 = time.perf_counter()
fastbp.Network([37, 13, 5, 3], seed=0).cost_and_gradient(X[:, :37], X[:, :3])
print(f"{t1 - t0:.2f} {time.perf_counter() - t1:.3f} {t_numpy - t0:.3f} {t_numba - t_numpy:.3f} "
      f"{t_fastbp - t_numba:.3f} {t_net - t_fastbp:.3f} {t1 - t_net:.3f}")
"""


_FIRST_TRAIN = """
import time
import numpy as np, fastbp
net = fastbp.Network([64, 25, 64], seed=0)
X = np.random.default_rng(0).random((1000, 64))
t = time.perf_counter()
fastbp.train(net, X, X, iterations=2)
print(f"{time.perf_counter() - t:.1f}")
"""


def first():
    """Section 14: new processes, an empty numba cache, then a warm one. The
    first gradient's time is split into its stages: importing numpy, numba
    and fastbp; building the network, whose check of θ is the process's
    first compiled call (numba then loads its own typing and lowering
    registries, which import scipy.linalg for BLAS); and the gradient."""
    import subprocess
    import tempfile
    print("14. a new process's first 64-25-64 gradient (s), and then a 37-13-5-3 one")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty cache", "warm cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _FIRST], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            print(f"   {label:11s} first gradient {out[0]} s, new architecture after it "
                  f"{out[1]} s", flush=True)
            if len(out) > 2:
                print(f"               of it: import numpy {out[2]}, numba {out[3]}, fastbp "
                      f"{out[4]}; Network() {out[5]}; the gradient {out[6]}", flush=True)
    print("   a new process's first train call (gd, 64-25-64, m = 1,000: the compiled blocks "
          "of steps, fastbp._kernels.full_batch_steps), s")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _FIRST_TRAIN], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            print(f"   {label:11s} {out[0]} s", flush=True)
    start = subprocess.run([sys.executable, "-X", "importtime", "-c", "import numpy, scipy.linalg"],
                           capture_output=True, text=True).stderr.splitlines()
    total = [line for line in start if line.rstrip().endswith("| scipy.linalg")]
    if total:
        print(f"   importing scipy.linalg after numpy (numba does, for BLAS, at its first "
              f"compiled call): {int(total[-1].split('|')[1]) / 1e6:.3f} s", flush=True)


def narrow():
    """Section 11: the 2-8-1 gradient end to end (``cost_and_gradient``, best
    and median of 25 rounds), m = 256 (one chunk) and m = 10,000. Run it with
    PYTHONPATH set to an older checkout, alternating, to compare releases."""
    print(f"11. 2-8-1 cost_and_gradient, us per call (best / median of 25 rounds; fastbp "
          f"from {os.path.dirname(fastbp.__file__)})")
    for dt in (np.float64, np.float32):
        for m in (256, 10_000):
            rng = np.random.default_rng(0)
            X = rng.uniform(size=(m, 2)).astype(dt)
            Y = rng.uniform(size=(m, 1)).astype(dt)
            net = fastbp.Network([2, 8, 1], dtype=dt, seed=0)
            number = max(20, 200_000 // m)
            for _ in range(50):
                net.cost_and_gradient(X, Y, weight_decay=1e-4)
            rounds = []
            for _ in range(25):
                t = time.perf_counter()
                for _ in range(number):
                    net.cost_and_gradient(X, Y, weight_decay=1e-4)
                rounds.append((time.perf_counter() - t) / number * 1e6)
            rounds.sort()
            print(f"   {np.dtype(dt).name:7s} m = {m:6d}  {rounds[0]:8.1f} / {rounds[12]:8.1f}",
                  flush=True)


def units():
    """Section 15 (``--units``): one chunk's four steps for narrow networks
    (every layer fewer than 64 weights), row by row against unit-major
    (``backprop_chunk_units``), by the rows of the chunk, one thread, best
    of four interleaved rounds — the measurement behind ``UNITS_MIN_ROWS``."""
    from fastbp import _kernels as K

    @njit
    def repeat(unit_major, theta, sizes, activations, products, x, y, reps):
        rows = x.shape[0]
        grad = np.zeros_like(theta)
        acts = np.empty(K.work_size(sizes, rows), theta.dtype)
        deltas = np.empty(K.work_size(sizes, rows), theta.dtype)
        sparse = np.empty(0, theta.dtype)
        cost = theta.dtype.type(0)
        for _ in range(reps):
            if unit_major:
                cost += K.backprop_chunk_units(theta, sizes, activations, K.SQUARED, x, y,
                                               sparse, acts, deltas, rows, grad)
            else:
                cost += K.backprop_chunk_rows(theta, theta, sizes, activations, products,
                                              K.SQUARED, x, y, sparse, acts, deltas, rows,
                                              grad)
        return cost

    print("15. one chunk of a narrow network, row by row / unit-major (us, one thread)")
    for layers in ((2, 8, 1), (5, 3, 4), (4, 9, 6, 3)):
        for dt in (np.float64, np.float32):
            line = []
            for rows in (1, 2, 4, 8, 16, 32, 64, 128, 256):
                net = fastbp.Network(layers, dtype=dt, seed=0)
                rng = np.random.default_rng(0)
                x = rng.random((rows, layers[0])).astype(dt)
                y = rng.random((rows, layers[-1])).astype(dt)
                args = (net.theta, net._sizes, net._activation_codes, net._products, x, y)
                reps = max(50, 100_000 // rows)
                best_of = {False: np.inf, True: np.inf}
                for unit_major in (False, True):
                    repeat(unit_major, *args, 5)
                for _ in range(4):
                    for unit_major in (False, True):
                        t = time.perf_counter()
                        repeat(unit_major, *args, reps)
                        t = (time.perf_counter() - t) / reps * 1e6
                        best_of[unit_major] = min(best_of[unit_major], t)
                line.append(f"{rows}: {best_of[False]:.2f}/{best_of[True]:.2f}")
            print(f"   {'-'.join(map(str, layers)):8s} {np.dtype(dt).name:7s} " + "  ".join(line),
                  flush=True)


def views():
    """Section 16: the one-chunk gradient kernel's compiled time, called from
    a numba loop (no Python call around it), on 1 and 32 rows; and, on a
    release that has :func:`fastbp._views.block`, the views of one 2-8-1
    backprop (12: W, b and Wᵀ per layer, a chunk of X and Y, two activation
    and two residual blocks) made by slicing and reshaping against blocks.
    Run it with PYTHONPATH at an older checkout to compare releases."""
    from fastbp import _kernels as K
    from fastbp.network import _NO_SPARSITY

    def loop_time(f, *args):
        f(10, *args)
        best = np.inf
        for _ in range(15):
            t = time.perf_counter()
            f(20_000, *args)
            best = min(best, (time.perf_counter() - t) / 20_000 * 1e6)
        return best

    @njit
    def gradient_calls(n, theta, sizes, activations, products, loss, X, Y, sparsity, grad):
        total = 0.0
        for _ in range(n):
            total += K.small_batch_kernel(theta, sizes, activations, products, loss, X, Y,
                                          theta.dtype.type(1e-4), sparsity, True, True,
                                          grad)[1]
        return total

    print(f"16. the one-chunk gradient kernel called from a numba loop (us per call, best of 15 "
          f"rounds of 20,000; fastbp from {os.path.dirname(fastbp.__file__)})")
    for dt in (np.float64, np.float32):
        for sizes in [(2, 8, 1), (64, 25, 64)]:
            net = fastbp.Network(sizes, dtype=dt, seed=0)
            rng = np.random.default_rng(0)
            cells = []
            for m in (1, 32):
                X = rng.random((m, sizes[0])).astype(dt)
                Y = rng.random((m, sizes[-1])).astype(dt)
                cells.append(f"m = {m}: {loop_time(gradient_calls, net.theta, net._sizes, net._activation_codes, net._products, net._loss_code, X, Y, _NO_SPARSITY[dt], np.empty(net.n_params, dt)):.2f}")
            print(f"   {np.dtype(dt).name:7s} {'-'.join(map(str, sizes)):9s} " + "  ".join(cells),
                  flush=True)
    from fastbp._simd import transpose_into

    @njit
    def element_by_element(W, W_t):  # transpose_into before the register transpose
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                W_t[j, i] = W[i, j]

    @njit
    def packings(n, transpose, W, W_t):
        for _ in range(n):
            transpose(W, W_t)

    rng = np.random.default_rng(0)
    for dt in (np.float64, np.float32):
        cells = []
        for shape in ((25, 64), (64, 25)):
            W = rng.random(shape).astype(dt)
            W_t = np.empty(shape[::-1], dt)
            times = [loop_time(packings, f, W, W_t) for f in (element_by_element, transpose_into)]
            assert np.array_equal(W_t, W.T)
            cells.append(f"{shape[0]}x{shape[1]} {times[0]:.2f} / {times[1]:.2f}")
        print(f"   {np.dtype(dt).name:7s} W^T packing (us, element by element / transpose_into): "
              + "  ".join(cells), flush=True)

    block = getattr(K, "block", None)  # fastbp._views.block, in the kernels from issue 9 on
    if block is None:
        return

    @njit
    def sliced(n, theta, theta_t, X, acts, deltas, offsets):
        total = 0.0
        for i in range(n):
            o = offsets[i]  # offsets not known in advance: no view is hoisted out of the loop
            W1 = theta[o:o + 16].reshape((8, 2))
            b1 = theta[o + 16:o + 24]
            W2 = theta[o + 24:o + 32].reshape((1, 8))
            b2 = theta[o + 32:o + 33]
            W1t = theta_t[o:o + 16].reshape((2, 8))
            W2t = theta_t[o + 24:o + 32].reshape((8, 1))
            x = X.reshape(X.size)[2 * o:2 * o + 64].reshape((32, 2))
            y = X.reshape(X.size)[o + 64:o + 96].reshape((32, 1))
            a1, a2 = acts[o:o + 256].reshape((32, 8)), acts[o + 256:o + 288].reshape((32, 1))
            d1 = deltas[o:o + 256].reshape((32, 8))
            d2 = deltas[o + 256:o + 288].reshape((32, 1))
            total += (W1[1, 1] + b1[1] + W2[0, 1] + b2[0] + W1t[1, 1] + W2t[1, 0] + x[1, 1]
                      + y[1, 0] + a1[1, 1] + a2[1, 0] + d1[1, 1] + d2[1, 0])
        return total

    @njit
    def blocks(n, theta, theta_t, X, acts, deltas, offsets):
        total = 0.0
        for i in range(n):
            o = offsets[i]
            W1, b1 = block(theta, o, (8, 2)), block(theta, o + 16, (8,))
            W2, b2 = block(theta, o + 24, (1, 8)), block(theta, o + 32, (1,))
            W1t, W2t = block(theta_t, o, (2, 8)), block(theta_t, o + 24, (8, 1))
            x, y = block(X, 2 * o, (32, 2)), block(X, o + 64, (32, 1))
            a1, a2 = block(acts, o, (32, 8)), block(acts, o + 256, (32, 1))
            d1, d2 = block(deltas, o, (32, 8)), block(deltas, o + 256, (32, 1))
            total += (W1[1, 1] + b1[1] + W2[0, 1] + b2[0] + W1t[1, 1] + W2t[1, 0] + x[1, 1]
                      + y[1, 0] + a1[1, 1] + a2[1, 0] + d1[1, 1] + d2[1, 0])
        return total

    rng = np.random.default_rng(0)
    theta, theta_t = rng.random(34), rng.random(34)
    X, acts, deltas = rng.random((49, 2)), rng.random(289), rng.random(289)
    offsets = rng.integers(0, 2, 20_010)
    assert sliced(20, theta, theta_t, X, acts, deltas, offsets) == blocks(
        20, theta, theta_t, X, acts, deltas, offsets)
    print(f"   the 12 views of one 2-8-1 backprop: sliced and reshaped "
          f"{loop_time(sliced, theta, theta_t, X, acts, deltas, offsets) * 1e3:.0f} ns, blocks "
          f"{loop_time(blocks, theta, theta_t, X, acts, deltas, offsets) * 1e3:.0f} ns "
          f"(each with 12 loads and adds)", flush=True)


@njit(nogil=True)
def _mnist_products(X, W1, W1_t, W2, W2_t, chunk, first, stop, z2, z3, d2, d3, dW1, dW2):
    """The five products of chunks [first, stop) of a 784-256-10 gradient:
    z2 = x W1ᵀ, z3 = a2 W2ᵀ, ΔW2 += δ3ᵀ a2, δ2 = δ3 W2, ΔW1 += δ2ᵀ x (no
    activations, no residual arithmetic: the products alone)."""
    m = X.shape[0]
    for c in range(first, stop):
        start = c * chunk
        rows = min(chunk, m - start)
        x = X[start:start + rows]
        np.dot(x, W1_t, z2[:rows])
        np.dot(z2[:rows], W2_t, z3[:rows])
        gemm_accumulate(d3[:rows], z2[:rows], dW2)
        np.dot(d3[:rows], W2, d2[:rows])
        gemm_accumulate(d2[:rows], x, dW1)


@njit(parallel=True)
def _mnist_products_parallel(X, W1, W1_t, W2, W2_t, chunk, n_parts, z2, z3, d2, d3, dW1, dW2):
    n_chunks = (X.shape[0] + chunk - 1) // chunk
    for w in prange(n_parts):
        _mnist_products(X, W1, W1_t, W2, W2_t, chunk, w * n_chunks // n_parts,
                        (w + 1) * n_chunks // n_parts, z2[w], z3[w], d2[w], d3[w], dW1[w],
                        dW2[w])


def products():
    """Section 17 (``--products``): the MNIST gradient against its products
    alone, best of 5 interleaved rounds per thread count (BLAS held to one
    thread inside both, as fastbp holds it), with numpy's 2048³ dgemm rate on
    that many threads as the roof."""
    import numba
    sizes, m, chunk = (784, 256, 10), 10_000, 256
    rng = np.random.default_rng(0)
    X, Y = rng.random((m, sizes[0])), rng.random((m, sizes[-1]))
    net = fastbp.Network(list(sizes), seed=0)
    W1, W2 = (np.ascontiguousarray(w) for w in net.weights)
    W1_t, W2_t = np.ascontiguousarray(W1.T), np.ascontiguousarray(W2.T)
    flops = 2 * m * (2 * (W1.size + W2.size) + W2.size)
    a, b = rng.random((2048, 2048)), rng.random((2048, 2048))
    print("17. MNIST 784-256-10 float64, m = 10,000: fastbp's gradient against its chunks' "
          "products alone (best of 5, ms; % of the 2048^3 dgemm roof)")
    for threads in (1, 2):
        bufs = [rng.random((threads, chunk, n)) for n in (256, 10, 256, 10)]
        dW = [np.zeros((threads,) + W.shape) for W in (W1, W2)]
        fastbp.set_num_threads(threads)
        numba.set_num_threads(threads)
        with threadpool_limits(1, user_api="blas"):
            t_alone, t_grad = best([
                lambda: _mnist_products_parallel(X, W1, W1_t, W2, W2_t, chunk, threads, *bufs,
                                                 *dW),
                lambda: net.cost_and_gradient(X, Y, 1e-4)], rounds=5, number=1)
        with threadpool_limits(threads, user_api="blas"):
            t_gemm = best([lambda: np.dot(a, b)], rounds=3, number=1)[0]
        roof = flops / (2 * 2048 ** 3 / t_gemm)
        print(f"   {threads} thread(s): dgemm {2 * 2048 ** 3 / t_gemm / 1e9:.1f} GFLOP/s, roof "
              f"{roof * 1e3:.1f} ms | products alone {t_alone * 1e3:.1f} ms "
              f"({roof / t_alone * 100:.0f} %) | fastbp {t_grad * 1e3:.1f} ms "
              f"({roof / t_grad * 100:.0f} %)", flush=True)


SECTIONS = {"--exp": exp_speed, "--simd": simd, "--narrow": narrow, "--split": split, "--loop-orders": loop_orders,
            "--chunk": chunk_sizes, "--threshold": threshold, "--rows": rows,
            "--overhead": overhead, "--scaling": scaling, "--first": first, "--units": units,
            "--views": views, "--products": products}

if __name__ == "__main__":
    chosen = [f for flag, f in SECTIONS.items() if flag in sys.argv[1:]]
    for section in chosen or [crossover, gemm_rates, exp_speed, region_cost]:
        section()
