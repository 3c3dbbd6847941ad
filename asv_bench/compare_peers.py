#!/usr/bin/env python
"""Peer comparison: fastbp against numpy, PyTorch (CPU) and scikit-learn.

Run from the repository root (no install needed; the checkout's ``fastbp/`` is used)::

    python asv_bench/compare_peers.py                    # everything, float32 and float64
    python asv_bench/compare_peers.py --dtype float64 --rounds 5 --workloads ufldl mnist
    python asv_bench/compare_peers.py --threads 1        # single-threaded everywhere
    python asv_bench/compare_peers.py --markdown         # tables as Markdown (for the README)

torch and scikit-learn are optional; a missing one is reported as "skipped (not installed)".

What is timed
-------------
*Full-batch cost and gradient* (workloads ``tiny``, ``ufldl``, ``mnist``, ``deep``): one
evaluation of the UFLDL cost J(W,b) = (1/2m) sum ||h(x)-y||^2 + (lam/2) sum W^2 and its
gradient (forward pass + backpropagation, as in docs/math.md) on all m examples:

* ``fastbp``  -- ``net.cost_and_gradient(X, Y, weight_decay=lam)``;
* ``numpy``   -- the seed's matrix form written as plain vectorised numpy (``numpy_cost_grad``);
* ``torch``   -- ``nn.Linear`` + ``nn.Sigmoid`` layers, the same cost, autograd ``backward()``;
* ``sklearn`` -- ``MLPRegressor._backprop`` (sklearn's own forward/backward code) with the
  same weights.  sklearn computes the output-layer residual as ``a - y`` (the canonical-link
  shortcut), not the seed's ``(a - y) * a * (1 - a)``, so its gradient is *by design* not the
  seed's; see ``SklearnPeer`` for how its cost is rescaled and how its gradient is checked.

*SGD epoch* (workload ``sgd``): one pass of mini-batch SGD (batch 32, no shuffling) over
m = 10,000 examples of the UFLDL 64-25-64 shape, update W -= lr*(dW/|batch| + lam*W),
b -= lr*db/|batch| (the last batch of 16 averages over its 16): ``fastbp.train(...,
optimizer="sgd", ...)`` versus a numpy loop and a torch loop (``torch.optim.SGD`` with weight
decay on the weights only).  fastbp and torch also compute each batch's cost (fastbp for its
history, torch to differentiate it); the numpy loop does not.

*Many networks* (workload ``many``): 256 tiny 2-8-1 networks with their own learning rate and
weight decay, 20 full-batch gradient-descent steps each on m = 256: ``fastbp.train_many``
versus PyTorch's ensembling recipe (``torch.func.stack_module_state`` + ``vmap(grad(loss))``,
the same update in place); the agreement check compares every network's parameter change.
Its FLOP count is the formula below times networks times steps.

All implementations get identical data (X ~ U(0,1), Y ~ U(0,1)), identical parameters
(W, b ~ N(0, 0.01^2), copied into every peer) and the same dtype.  Before timing, every peer is
checked against fastbp: relative error of the cost and of the flat gradient (for ``sgd``: of
the parameter change after the epoch) must be <= 1e-10 in float64 and <= 1e-4 in float32.
A disagreement is printed loudly and makes the script exit with status 1 at the end.

Timing: one process; per round every implementation is run once, round-robin (so slow drifts
of the machine hit all of them alike); ``--rounds`` rounds; the best round is reported.  Each
sample is preceded by a short idle pause (``--pause``, 0.15 s) so that the previous library's
spinning thread pool (OpenBLAS, OpenMP) has gone to sleep and does not steal the cores.  Calls
much shorter than ~20 ms are repeated back to back inside a sample and averaged.  Every
implementation is called twice untimed first (JIT compilation, allocator and thread-pool
warm-up).  A round during which *other* processes used >= 10 % of the CPUs (from /proc/stat)
is discarded and rerun, up to 2x ``--rounds`` rounds; a workload that still lacks quiet
rounds is marked (*) -- on a shared machine another process taking a core slows
thread-pooled code 5-40x.

Columns
-------
* ``best time``   -- best of ``--rounds`` rounds, per call (per epoch for ``sgd``).
* ``vs best peer`` -- this row's time / the fastest non-fastbp implementation's time.  On the
  fastbp row this is the headline ratio: < 1 means fastbp is faster than every peer.
* ``GFLOP/s``     -- FLOPs / best time, FLOPs counted as below (matrix products only).
* ``% GEMM roof`` -- time_roofline / best time, where time_roofline = FLOPs / the large-GEMM
  rate of numpy's BLAS (np.dot of two 2048x2048 matrices, best of 5, measured in the same run
  with the same thread count).  It is the share of the machine's dense-GEMM speed this
  implementation reaches; small matrices (tiny net, batch 32) cannot come near 100 %, and
  torch (which uses MKL, not numpy's BLAS) can in principle exceed it.  The ``(GEMM roofline)``
  row shows time_roofline itself.

FLOP count
----------
With P = sum_l s_l*s_{l+1} (all weight matrices) and P_delta = the same sum without the first
layer's matrix (layer 1 is the input: its residual delta^(1) is never needed), one full-batch
cost-and-gradient evaluation on m examples costs, in multiply-adds x 2::

    FLOPs = 2*m*P          forward        z = a W^T          (every layer)
          + 2*m*P          weight grads   dW = delta^T a      (every layer)
          + 2*m*P_delta    residuals      delta W             (every layer but the first)

Element-wise work (sigmoid, a*(1-a), bias sums, the cost, weight decay, the SGD update) is
O(m * sum s_l + P) and is left out.  An SGD epoch over m examples does the same matrix work
in m/32 pieces, so it uses the same formula with the same m.
"""

import argparse
import gc
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

# Benchmark the checkout this file lives in (asv_bench/..), ahead of any installed fastbp.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPO_ROOT, "fastbp")) and _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

# NB: asv imports every module of its benchmark directory and treats names starting with
# time_/timeraw_/mem_/peakmem_/track_ as benchmarks; nothing in this file is named that way,
# and torch/sklearn/fastbp are only imported when the script runs.

# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple
    m: int
    kind: str  # "full" (full-batch cost+gradient), "sgd" (one SGD epoch), "many" (ensemble)
    label: str
    n_nets: int = 1   # "many": networks trained at once
    steps: int = 1    # "many": full-batch gradient steps per network


WORKLOADS = {
    "tiny": Workload("tiny", (2, 8, 1), 256, "full", "tiny 2-8-1, m=256"),
    "ufldl": Workload("ufldl", (64, 25, 64), 10_000, "full", "UFLDL 64-25-64, m=10k"),
    "mnist": Workload("mnist", (784, 256, 10), 10_000, "full", "MNIST 784-256-10, m=10k"),
    "deep": Workload("deep", (256, 256, 256, 256, 10), 8_192, "full",
                     "deep 256x4-10, m=8192"),
    "sgd": Workload("sgd", (64, 25, 64), 10_000, "sgd", "SGD epoch b=32, 64-25-64, m=10k"),
    "many": Workload("many", (2, 8, 1), 256, "many",
                     "256 nets 2-8-1, m=256, 20 gd steps each (per-net lr, lam)",
                     n_nets=256, steps=20),
}

SGD_BATCH = 32
SGD_LR = 0.1
INIT_EPS = 0.01
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def flops(sizes, m):
    """Matrix-product FLOPs of one cost+gradient evaluation on m examples (see docstring)."""
    P = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    P_delta = P - sizes[0] * sizes[1]
    return 2 * m * P + 2 * m * P + 2 * m * P_delta


def make_problem(w: Workload, dtype, seed=0):
    """Data and parameters, drawn in float64 from a fixed seed and cast, so that both dtypes
    see the same problem."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (w.m, w.sizes[0])).astype(dtype)
    Y = rng.uniform(0.0, 1.0, (w.m, w.sizes[-1])).astype(dtype)
    Ws = [rng.normal(0.0, INIT_EPS, (s_out, s_in)).astype(dtype)
          for s_in, s_out in zip(w.sizes[:-1], w.sizes[1:])]
    bs = [rng.normal(0.0, INIT_EPS, s_out).astype(dtype) for s_out in w.sizes[1:]]
    return X, Y, Ws, bs


def flat(Ws, bs):
    """Unroll like fastbp's theta: W^(1), b^(1), W^(2), b^(2), ... (W row-major, (s_out, s_in))."""
    parts = []
    for W, b in zip(Ws, bs):
        parts.append(np.asarray(W).ravel())
        parts.append(np.asarray(b).ravel())
    return np.concatenate(parts)


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(b.ravel())
    num = np.linalg.norm((a - b).ravel())
    return num / denom if denom > 0 else num


# --------------------------------------------------------------------------------------------
# Peer 1: fastbp
# --------------------------------------------------------------------------------------------

class FastbpPeer:
    name = "fastbp"

    def __init__(self, fastbp, sizes, Ws, bs, dtype):
        self.net = fastbp.Network(list(sizes), activations="sigmoid", init="normal",
                                  epsilon=INIT_EPS, seed=0, dtype=dtype)
        self.net.theta[:] = flat(Ws, bs)  # same parameters as every other peer
        for l, (W, b) in enumerate(zip(Ws, bs)):  # and the theta layout is the documented one
            assert np.array_equal(self.net.weights[l], W), "fastbp theta layout mismatch"
            assert np.array_equal(self.net.biases[l], b), "fastbp theta layout mismatch"
        self.theta0 = self.net.theta.copy()
        self.fastbp = fastbp

    def cost_grad(self, X, Y, lam):
        J, gW, gb = self.net.cost_and_gradient(X, Y, weight_decay=lam)
        return float(J), flat(gW, gb)

    # SGD epoch
    def reset(self):
        self.net.theta[:] = self.theta0

    def sgd_epoch(self, X, Y, lam):
        self.fastbp.train(self.net, X, Y, optimizer="sgd", batch_size=SGD_BATCH, iterations=1,
                          learning_rate=SGD_LR, weight_decay=lam, shuffle=False)

    def params(self):
        return self.net.theta.copy()


# --------------------------------------------------------------------------------------------
# Peer 2: plain vectorised numpy, the seed's matrix form with rows = examples
# --------------------------------------------------------------------------------------------

def _sigmoid_(z):
    """In place: z <- 1 / (1 + exp(-z))."""
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1
    np.reciprocal(z, out=z)
    return z


def numpy_cost_grad(Ws, bs, X, Y, lam, output_delta="seed"):
    """J and the gradients of the seed's cost.

    output_delta="seed":      delta^(n_l) = -(y - a) * a * (1 - a)         (docs/math.md)
    output_delta="canonical": delta^(n_l) = a - y   (sklearn's shortcut; used only to check
                              the sklearn peer's gradient, see SklearnPeer)
    """
    m = X.shape[0]
    acts = [X]
    a = X
    for W, b in zip(Ws, bs):
        z = a @ W.T          # z^(l+1) = W^(l) a^(l) + b^(l), one row per example
        z += b
        a = _sigmoid_(z)     # a^(l+1) = f(z^(l+1))
        acts.append(a)
    diff = a - Y
    J = 0.5 * np.sum(diff * diff) / m + 0.5 * lam * sum(np.sum(W * W) for W in Ws)
    delta = diff * a * (1 - a) if output_delta == "seed" else diff
    gWs, gbs = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        a_l = acts[l]
        gWs[l] = delta.T @ a_l / m + lam * Ws[l]      # (1/m) sum_k delta a^T + lam W
        gbs[l] = delta.sum(axis=0) / m
        if l > 0:                                      # delta^(1) (the input) is not needed
            delta = (delta @ Ws[l]) * a_l * (1 - a_l)  # (W^T delta) . f'(z)
    return J, gWs, gbs


class NumpyPeer:
    name = "numpy"

    def __init__(self, Ws, bs):
        self.Ws0 = [W.copy() for W in Ws]
        self.bs0 = [b.copy() for b in bs]
        self.reset()

    def cost_grad(self, X, Y, lam):
        J, gW, gb = numpy_cost_grad(self.Ws, self.bs, X, Y, lam)
        return float(J), flat(gW, gb)

    def reset(self):
        self.Ws = [W.copy() for W in self.Ws0]
        self.bs = [b.copy() for b in self.bs0]

    def sgd_epoch(self, X, Y, lam):
        """Mini-batch SGD, batches in order; the last batch may be short (mean over its size)."""
        Ws, bs, lr, L = self.Ws, self.bs, SGD_LR, len(self.Ws)
        for start in range(0, X.shape[0], SGD_BATCH):
            xb, yb = X[start:start + SGD_BATCH], Y[start:start + SGD_BATCH]
            n = xb.shape[0]
            acts = [xb]
            a = xb
            for W, b in zip(Ws, bs):
                z = a @ W.T
                z += b
                a = _sigmoid_(z)
                acts.append(a)
            delta = (a - yb) * a * (1 - a)
            gWs, gbs = [None] * L, [None] * L
            for l in range(L - 1, -1, -1):
                gWs[l] = delta.T @ acts[l]          # summed over the batch
                gbs[l] = delta.sum(axis=0)
                if l > 0:
                    delta = (delta @ Ws[l]) * acts[l] * (1 - acts[l])
            for l in range(L):                      # all gradients first, then the update
                Ws[l] -= lr * (gWs[l] / n + lam * Ws[l])
                bs[l] -= lr * (gbs[l] / n)

    def params(self):
        return flat(self.Ws, self.bs)


# --------------------------------------------------------------------------------------------
# Peer 3: PyTorch on CPU
# --------------------------------------------------------------------------------------------

class TorchPeer:
    name = "torch"

    def __init__(self, torch, Ws, bs, X, Y, dtype):
        self.torch = torch
        tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
        layers, self.linears = [], []
        for W, b in zip(Ws, bs):
            lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=tdtype)
            layers += [lin, torch.nn.Sigmoid()]
            self.linears.append(lin)
        self.model = torch.nn.Sequential(*layers)
        self.Ws0 = [torch.from_numpy(W.copy()) for W in Ws]
        self.bs0 = [torch.from_numpy(b.copy()) for b in bs]
        self.reset()
        self.X = torch.from_numpy(np.ascontiguousarray(X))  # shares memory with the numpy data
        self.Y = torch.from_numpy(np.ascontiguousarray(Y))
        self.opt = torch.optim.SGD(
            [{"params": [lin.weight for lin in self.linears], "weight_decay": 0.0},
             {"params": [lin.bias for lin in self.linears], "weight_decay": 0.0}],
            lr=SGD_LR)

    def reset(self):
        with self.torch.no_grad():
            for lin, W, b in zip(self.linears, self.Ws0, self.bs0):
                lin.weight.copy_(W)
                lin.bias.copy_(b)

    def _cost(self, X, Y, lam, weight_decay_in_cost=True):
        out = self.model(X)
        J = 0.5 * (out - Y).pow(2).sum() / X.shape[0]
        if weight_decay_in_cost:
            J = J + 0.5 * lam * sum(lin.weight.pow(2).sum() for lin in self.linears)
        return J

    def cost_grad_timed(self, lam):
        for p in self.model.parameters():
            p.grad = None
        J = self._cost(self.X, self.Y, lam)
        J.backward()
        return J

    def cost_grad(self, X, Y, lam):
        J = self.cost_grad_timed(lam)
        grads_W = [lin.weight.grad.numpy() for lin in self.linears]
        grads_b = [lin.bias.grad.numpy() for lin in self.linears]
        return float(J.item()), flat(grads_W, grads_b)

    def sgd_epoch(self, X, Y, lam):
        # weight decay through the optimizer (W -= lr*(g + lam*W)), weights only
        self.opt.param_groups[0]["weight_decay"] = lam
        Xt, Yt = self.X, self.Y
        for start in range(0, Xt.shape[0], SGD_BATCH):
            xb, yb = Xt[start:start + SGD_BATCH], Yt[start:start + SGD_BATCH]
            self.opt.zero_grad(set_to_none=True)
            J = self._cost(xb, yb, lam, weight_decay_in_cost=False)
            J.backward()
            self.opt.step()

    def params(self):
        return flat([lin.weight.detach().numpy() for lin in self.linears],
                    [lin.bias.detach().numpy() for lin in self.linears])


# --------------------------------------------------------------------------------------------
# Peer 4: scikit-learn's MLP backprop
# --------------------------------------------------------------------------------------------

class SklearnPeer:
    """sklearn.neural_network.MLPRegressor._backprop, unmodified, on our parameters.

    What sklearn computes (sklearn/neural_network/_multilayer_perceptron.py and _base.py),
    with k = output width, coefs_[l] = W^(l).T, intercepts_[l] = b^(l):

      loss  = (1/(2*m*k)) sum (y - a)^2  +  alpha/(2*m) sum W^2     (mean over ALL elements)
      delta^(n_l) = a - y                (whatever the output activation is)
      dW^(l).T    = (a^(l).T @ delta^(l+1) + alpha * W^(l).T) / m,   db = sum(delta) / m

    Rescaling to the seed's cost J = (1/(2m)) sum (y - a)^2 + (lam/2) sum W^2:
      * alpha = lam * m   makes both sklearn's L2 term (alpha/(2m)) and its gradient term
        (alpha W / m) equal the seed's (lam/2 sum W^2, lam W);
      * the data part of sklearn's loss is the seed's divided by k, so
        J = k * (loss - lam/2 sum W^2) + lam/2 sum W^2;
      * the gradients need no rescaling: sklearn's data gradient is sum(...)/m, not /(m*k)
        (so for k > 1 sklearn's gradient is k times the gradient of the loss it reports:
        scikit-learn issue #8349, open as of 1.9; should its loss become a sum over outputs,
        ``_loss_averages_outputs`` notices and the factor k becomes 1).
    With the seed's sigmoid output (out_activation_ = "logistic") sklearn's delta^(n_l) = a - y
    is the canonical-link shortcut (exact for logistic + log-loss, not for squared error): its
    gradient lacks the factor a*(1-a) at the output and is *by design* not the seed's.  So its
    cost is checked against fastbp, and its gradient against numpy_cost_grad(...,
    output_delta="canonical"), the seed's backprop with exactly that substitution.  The timed
    work is the same as the seed's up to one element-wise product on the output layer.
    """

    name = "sklearn"

    def __init__(self, MLPRegressor, Ws, bs, X, Y, lam, dtype):
        m, k = X.shape[0], Y.shape[1]
        sizes = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
        reg = MLPRegressor(hidden_layer_sizes=tuple(sizes[1:-1]), activation="logistic",
                           alpha=lam * m)  # alpha = lam*m: see the class docstring
        reg.n_layers_ = len(sizes)
        reg.n_outputs_ = k
        reg.out_activation_ = "logistic"   # the seed's sigmoid output (regressor: identity)
        reg.coefs_ = [np.ascontiguousarray(W.T) for W in Ws]
        reg.intercepts_ = [b.copy() for b in bs]
        self.reg, self.X, self.Y, self.lam = reg, X, Y, lam
        self.k = k if self._loss_averages_outputs() else 1   # J = k * loss_data + ...
        self.sq_w = sum(float(np.sum(W.astype(np.float64) ** 2)) for W in Ws)
        n = len(sizes)
        # buffers exactly as MLPRegressor._fit_lbfgs / _fit_stochastic allocate them
        self.activations = [X] + [None] * (n - 1)
        self.deltas = [None] * (n - 1)
        self.coef_grads = [np.empty((a, b), dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])]
        self.intercept_grads = [np.empty(b, dtype=dtype) for b in sizes[1:]]
        import inspect
        self._has_sw = "sample_weight" in inspect.signature(reg._backprop).parameters

    @staticmethod
    def _loss_averages_outputs():
        """True if sklearn's squared loss averages over outputs (0.5 for one example with two
        outputs each off by 1; as in sklearn <= 1.9), False if it sums them (1.0)."""
        try:
            from sklearn.neural_network._base import LOSS_FUNCTIONS
            v = float(LOSS_FUNCTIONS["squared_error"](np.zeros((1, 2)), np.ones((1, 2))))
        except (ImportError, KeyError, TypeError):
            return True
        return abs(v - 0.5) < 1e-12

    def cost_grad_timed(self):
        if self._has_sw:   # sklearn >= 1.7
            return self.reg._backprop(self.X, self.Y, None, self.activations, self.deltas,
                                      self.coef_grads, self.intercept_grads)
        return self.reg._backprop(self.X, self.Y, self.activations, self.deltas,
                                  self.coef_grads, self.intercept_grads)

    def cost_grad(self, X, Y, lam):
        loss, cg, ig = self.cost_grad_timed()
        reg_term = 0.5 * lam * self.sq_w
        J = self.k * (float(loss) - reg_term) + reg_term      # back to the seed's J
        return J, flat([g.T for g in cg], ig)


# --------------------------------------------------------------------------------------------
# Timing harness
# --------------------------------------------------------------------------------------------

@dataclass
class Timed:
    name: str
    run: Callable[[], object]                 # the timed call
    setup: Optional[Callable[[], object]] = None  # untimed, before every sample
    inner: int = 1
    best: float = math.inf
    samples: List[float] = field(default_factory=list)


#: Idle time before every sample. Thread pools keep spinning for a while after a call
#: (OpenBLAS ~0.1 s, OpenMP); back to back, the previous library's spinning threads steal the
#: cores from the next one. On 2 cores that made torch 2.4x and fastbp 1.8x slower on the
#: UFLDL workload than when run alone; with this pause the interleaved times match them.
PAUSE_S = 0.15


def _sample(t: Timed, pause=PAUSE_S):
    if pause:
        time.sleep(pause)
    if t.setup is not None:
        t.setup()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(t.inner):
            t.run()
        dt = (time.perf_counter() - t0) / t.inner
    finally:
        if gc_was_enabled:
            gc.enable()
    return dt


class ForeignLoad:
    """How busy other processes kept the CPUs over an interval (Linux; elsewhere: unknown).

    (all busy CPU time in /proc/stat, steal included) - (this process's CPU time, all its
    threads), as a share of the machine's capacity over the interval.  /proc/stat counts in
    clock ticks, so two ticks are forgiven.  On a shared machine another process taking a core
    slows everything, worst the thread-pooled implementations (every parallel region waits
    for the thread that was pushed off its core): a 2-core box measured 5-40x slowdowns.
    """

    def __init__(self):
        self.tck = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.ncpu = os.cpu_count() or 1
        self.start = self._read()

    def _read(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]   # user nice system irq softirq steal
        t = os.times()
        return busy / self.tck, t.user + t.system, time.perf_counter()

    def share(self):
        """Other processes' share of all CPUs since construction; nan if unknown."""
        end = self._read()
        if end is None or self.start is None:
            return math.nan
        busy, own, wall = (e - s for e, s in zip(end, self.start))
        return max(0.0, busy - own - 2.0 / self.tck) / max(wall * self.ncpu, 1e-9)


LOAD_WARN = 0.10   # a round during which other processes used >= 10 % of the CPUs is "busy"
MAX_ROUNDS_FACTOR = 2   # give up waiting for quiet rounds after 2x --rounds rounds


def is_busy(share):
    return share >= LOAD_WARN   # False for nan (unknown): such rounds count as quiet


@dataclass
class RoundStats:
    quiet: int
    busy: int
    wanted: int

    @property
    def ok(self):
        return self.quiet >= self.wanted

    def describe(self):
        s = f"{self.quiet} quiet round(s)"
        if self.busy:
            s += f", {self.busy} busy round(s) discarded"
        if not self.ok:
            s += ("   <-- BUSY MACHINE: other processes kept taking CPU, timings unreliable"
                  + ("" if self.quiet else " (best of the busy rounds shown)"))
        return s


def best_of_rounds(impls: List[Timed], rounds: int, min_sample_s: float = 0.02,
                   pause: float = PAUSE_S):
    """Round-robin over impls; each impl's best per-call time over `rounds` quiet rounds.

    A round during which other processes used >= LOAD_WARN of the CPUs is discarded and
    another one run, up to MAX_ROUNDS_FACTOR * rounds rounds in all.
    """
    for t in impls:                       # warm-up (JIT, caches) and calibration, untimed
        t.inner = 1
        dt = _sample(t, pause)
        dt = min(dt, _sample(t, pause))
        t.inner = max(1, math.ceil(min_sample_s / max(dt, 1e-9))) if dt < min_sample_s else 1
    best_busy = {t.name: math.inf for t in impls}
    quiet = busy = 0
    while quiet < rounds and quiet + busy < MAX_ROUNDS_FACTOR * rounds:
        load = ForeignLoad()
        this_round = {t.name: _sample(t, pause) for t in impls}
        if is_busy(load.share()):
            busy += 1
            for name, dt in this_round.items():
                best_busy[name] = min(best_busy[name], dt)
            continue
        quiet += 1
        for t in impls:
            t.samples.append(this_round[t.name])
            t.best = min(t.best, this_round[t.name])
    times = {t.name: (t.best if quiet else best_busy[t.name]) for t in impls}
    return times, RoundStats(quiet, busy, rounds)


def gemm_rate(dtype, n=2048, repeats=5):
    """FLOP/s of numpy's BLAS on an n x n x n matrix product: best of `repeats` quiet runs
    (busy ones are discarded and retried as in best_of_rounds)."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype=dtype)
    np.dot(A, B, out=C)
    best, best_busy, quiet, busy = math.inf, math.inf, 0, 0
    while quiet < repeats and quiet + busy < MAX_ROUNDS_FACTOR * repeats:
        load = ForeignLoad()
        t0 = time.perf_counter()
        np.dot(A, B, out=C)
        dt = time.perf_counter() - t0
        if is_busy(load.share()):
            busy, best_busy = busy + 1, min(best_busy, dt)
        else:
            quiet, best = quiet + 1, min(best, dt)
    return 2.0 * n ** 3 / (best if quiet else best_busy), RoundStats(quiet, busy, repeats)


# --------------------------------------------------------------------------------------------
# Per-workload driver: agreement checks, then timing
# --------------------------------------------------------------------------------------------

class Context:
    def __init__(self, fastbp, torch, MLPRegressor, lam, pause):
        self.fastbp, self.torch, self.MLPRegressor, self.lam = fastbp, torch, MLPRegressor, lam
        self.pause = pause
        self.failures = []      # (dtype, workload, peer, what)

    def report(self, dtype, w, peer, what, err, tol, note=""):
        ok = err <= tol
        status = "ok" if ok else "!!! DISAGREES !!!"
        print(f"    {peer:<8s} {what:<34s} rel.err {err:9.2e}  (tol {tol:.0e})  {status}{note}")
        if not ok:
            self.failures.append((np.dtype(dtype).name, w.name, peer, what, err))
            print(f"    {'!' * 88}\n    !!! {peer} disagrees with the reference on {w.label} "
                  f"{np.dtype(dtype).name}: {what} rel.err {err:.3e} > {tol:.0e}\n"
                  f"    {'!' * 88}", flush=True)


def run_full(ctx: Context, w: Workload, dtype, rounds):
    lam, tol = ctx.lam, TOL[dtype]
    X, Y, Ws, bs = make_problem(w, dtype)
    peers, impls, skipped = [], [], []

    fb = FastbpPeer(ctx.fastbp, w.sizes, Ws, bs, dtype) if ctx.fastbp else None
    if fb:
        peers.append(fb)
        impls.append(Timed("fastbp", lambda: fb.net.cost_and_gradient(X, Y, weight_decay=lam)))
    npp = NumpyPeer(Ws, bs)
    peers.append(npp)
    impls.append(Timed("numpy", lambda: numpy_cost_grad(npp.Ws, npp.bs, X, Y, lam)))
    if ctx.torch:
        tp = TorchPeer(ctx.torch, Ws, bs, X, Y, dtype)
        peers.append(tp)
        impls.append(Timed("torch", lambda: tp.cost_grad_timed(lam)))
    else:
        skipped.append("torch")
    if ctx.MLPRegressor:
        sp = SklearnPeer(ctx.MLPRegressor, Ws, bs, X, Y, lam, dtype)
        peers.append(sp)
        impls.append(Timed("sklearn", sp.cost_grad_timed))
    else:
        skipped.append("sklearn")

    # --- agreement ---
    ref = peers[0]
    print(f"  {w.label} -- agreement with {ref.name}:")
    J_ref, g_ref = ref.cost_grad(X, Y, lam)
    if dtype == np.float32:   # where peers disagree, who is closer to the float64 truth?
        X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
        J64, gW64, gb64 = numpy_cost_grad([W.astype(np.float64) for W in Ws],
                                          [b.astype(np.float64) for b in bs], X64, Y64, lam)
        g64 = flat(gW64, gb64)
        print(f"    (float32 vs float64 truth: {ref.name} cost {rel_err(J_ref, J64):.1e}, "
              f"gradient {rel_err(g_ref, g64):.1e})")
    for p in peers[1:]:
        J, g = p.cost_grad(X, Y, lam)
        ctx.report(dtype, w, p.name, "cost", rel_err(J, J_ref), tol)
        if isinstance(p, SklearnPeer):
            Jc, gWc, gbc = numpy_cost_grad(Ws, bs, X, Y, lam, output_delta="canonical")
            gc_ = flat(gWc, gbc)
            ctx.report(dtype, w, p.name, "gradient vs numpy, delta_out=a-y",
                       rel_err(g, gc_), tol)
            print(f"    {'':8s} (gradient vs {ref.name}: rel.err {rel_err(g, g_ref):.2e}, "
                  f"differs by design: sklearn's delta_out = a - y)")
        else:
            ctx.report(dtype, w, p.name, "gradient", rel_err(g, g_ref), tol)
    for s in skipped:
        print(f"    {s:<8s} skipped (not installed)")

    # --- timing ---
    times, stats = best_of_rounds(impls, rounds, pause=ctx.pause)
    return times, skipped, stats


def run_sgd(ctx: Context, w: Workload, dtype, rounds):
    lam, tol = ctx.lam, TOL[dtype]
    X, Y, Ws, bs = make_problem(w, dtype)
    peers, skipped = [], []
    if ctx.fastbp:
        peers.append(FastbpPeer(ctx.fastbp, w.sizes, Ws, bs, dtype))
    peers.append(NumpyPeer(Ws, bs))
    if ctx.torch:
        peers.append(TorchPeer(ctx.torch, Ws, bs, X, Y, dtype))
    else:
        skipped.append("torch")

    # --- agreement: parameter change after one epoch from the same start ---
    theta0 = flat(Ws, bs).astype(np.float64)
    ref = peers[0]
    print(f"  {w.label} -- agreement with {ref.name} (parameter change after one epoch):")
    ref.reset()
    ref.sgd_epoch(X, Y, lam)
    d_ref = ref.params() - theta0
    for p in peers[1:]:
        p.reset()
        p.sgd_epoch(X, Y, lam)
        ctx.report(dtype, w, p.name, "theta_final - theta_0", rel_err(p.params() - theta0, d_ref),
                   tol)
    for s in skipped:
        print(f"    {s:<8s} skipped (not installed)")

    # --- timing: every sample starts from the same parameters ---
    impls = [Timed(p.name, (lambda p=p: p.sgd_epoch(X, Y, lam)), setup=p.reset) for p in peers]
    times, stats = best_of_rounds(impls, rounds, min_sample_s=0.0, pause=ctx.pause)
    return times, skipped, stats


# --------------------------------------------------------------------------------------------
# Workload "many": an ensemble / hyper-parameter sweep of small networks trained at once
# --------------------------------------------------------------------------------------------
#
# fastbp: one fastbp.train_many call (a prange over networks; each network bit-identical to its
# own fastbp.train call).  torch: the documented ensembling recipe, torch.func.stack_module_state
# + vmap(grad(loss)) over the stacked parameters, then the same update in place
# (theta -= lr_i * grad_i), per-network lr and lam as tensors.  Both do `steps` full-batch
# gradient-descent steps of every network on the same X, Y, from the same parameters.

def many_problem(w: Workload, dtype):
    rng = np.random.default_rng(1)
    X = rng.uniform(0.0, 1.0, (w.m, w.sizes[0])).astype(dtype)
    Y = rng.uniform(0.0, 1.0, (w.m, w.sizes[-1])).astype(dtype)
    params = [([rng.normal(0.0, 0.5, (s_out, s_in)).astype(dtype)
                for s_in, s_out in zip(w.sizes[:-1], w.sizes[1:])],
               [rng.normal(0.0, 0.5, s_out).astype(dtype) for s_out in w.sizes[1:]])
              for _ in range(w.n_nets)]
    lrs = np.linspace(0.1, 2.0, w.n_nets)
    lams = np.linspace(0.0, 1e-3, w.n_nets)
    return X, Y, params, lrs, lams


class FastbpManyPeer:
    name = "fastbp"

    def __init__(self, fastbp, w, X, Y, params, lrs, lams, dtype):
        self.fastbp, self.w, self.X, self.Y = fastbp, w, X, Y
        self.nets = [fastbp.Network(list(w.sizes), dtype=dtype) for _ in params]
        self.theta0 = [flat(Ws, bs) for Ws, bs in params]
        self.lrs, self.lams = list(lrs), list(lams)
        self.reset()

    def reset(self):
        for net, theta in zip(self.nets, self.theta0):
            net.theta[:] = theta

    def run(self):
        self.fastbp.train_many(self.nets, self.X, self.Y, learning_rate=self.lrs,
                               weight_decay=self.lams, iterations=self.w.steps)

    def params(self):
        return np.stack([net.theta for net in self.nets])


class TorchManyPeer:
    name = "torch"

    def __init__(self, torch, w, X, Y, params, lrs, lams, dtype):
        from torch.func import functional_call, grad, stack_module_state, vmap
        self.torch, self.w = torch, w
        tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
        models = []
        for Ws, bs in params:
            layers = []
            for W, b in zip(Ws, bs):
                lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=tdtype)
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(W))
                    lin.bias.copy_(torch.from_numpy(b))
                layers += [lin, torch.nn.Sigmoid()]
            models.append(torch.nn.Sequential(*layers))
        stacked, buffers = stack_module_state(models)
        self.keys = list(stacked)                       # 0.weight, 0.bias, 2.weight, ...
        self.p0 = {k: v.detach().clone() for k, v in stacked.items()}
        self.p = {k: v.detach().clone() for k, v in stacked.items()}
        self.buffers = buffers
        base = models[0].to("meta")
        self.X = torch.from_numpy(np.ascontiguousarray(X))
        self.Y = torch.from_numpy(np.ascontiguousarray(Y))
        self.lr = torch.tensor(lrs, dtype=tdtype)
        self.lam = torch.tensor(lams, dtype=tdtype)

        def loss(p, b, x, y, lam):
            out = functional_call(base, (p, b), (x,))
            J = 0.5 * (out - y).pow(2).sum() / x.shape[0]
            return J + 0.5 * lam * sum(v.pow(2).sum() for k, v in p.items()
                                       if k.endswith("weight"))

        self.grads = vmap(grad(loss), in_dims=(0, 0, None, None, 0))

    def reset(self):
        for k in self.keys:
            self.p[k].copy_(self.p0[k])

    def run(self):
        torch = self.torch
        for _ in range(self.w.steps):
            g = self.grads(self.p, self.buffers, self.X, self.Y, self.lam)
            with torch.no_grad():
                for k in self.keys:
                    self.p[k].sub_(self.lr.view(-1, *([1] * (self.p[k].dim() - 1))) * g[k])

    def params(self):
        n = self.lr.shape[0]
        return np.concatenate([self.p[k].reshape(n, -1).numpy() for k in self.keys], axis=1)


def run_many(ctx: Context, w: Workload, dtype, rounds):
    tol = TOL[dtype]
    X, Y, params, lrs, lams = many_problem(w, dtype)
    peers, skipped = [], []
    if ctx.fastbp:
        peers.append(FastbpManyPeer(ctx.fastbp, w, X, Y, params, lrs, lams, dtype))
    if ctx.torch:
        peers.append(TorchManyPeer(ctx.torch, w, X, Y, params, lrs, lams, dtype))
    else:
        skipped.append("torch")
    print(f"  {w.label} -- agreement with {peers[0].name} (every network's parameters after "
          f"{w.steps} steps):")
    theta0 = np.stack([flat(Ws, bs) for Ws, bs in params]).astype(np.float64)
    peers[0].reset()
    peers[0].run()
    d_ref = peers[0].params() - theta0
    for p in peers[1:]:
        p.reset()
        p.run()
        ctx.report(dtype, w, p.name, "theta_final - theta_0", rel_err(p.params() - theta0, d_ref),
                   tol)
    for s in skipped:
        print(f"    {s:<8s} skipped (not installed)")
    impls = [Timed(p.name, p.run, setup=p.reset) for p in peers]
    times, stats = best_of_rounds(impls, rounds, min_sample_s=0.0, pause=ctx.pause)
    if "fastbp" in times and "torch" in times:
        print(f"    fastbp train_many is {times['torch'] / times['fastbp']:.1f}x faster than "
              f"torch stack_module_state + vmap")
    return times, skipped, stats


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def fmt_time(t):
    if not math.isfinite(t):
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.3f} s"


def build_rows(results, rate, order):
    """results: list of (workload, {impl: best_time}, skipped, RoundStats)."""
    rows = []
    for w, times, skipped, stats in results:
        F = flops(w.sizes, w.m) * w.n_nets * w.steps
        peer_times = [t for n, t in times.items() if n != "fastbp"]
        best_peer = min(peer_times) if peer_times else math.nan
        t_roof = F / rate
        label = w.label + ("" if stats.ok else " (*)")
        for name in order:
            if name in times:
                t = times[name]
                rows.append([label, name, fmt_time(t), f"{t / best_peer:.2f}x",
                             f"{F / t / 1e9:.1f}", f"{100 * t_roof / t:.0f} %"])
            elif name in skipped:
                rows.append([label, name, "skipped (not installed)", "", "", ""])
        rows.append([label, "(GEMM roofline)", fmt_time(t_roof), "", f"{rate / 1e9:.1f}",
                     "100 %"])
    return rows


HEADER = ["workload", "impl", "best time", "vs best peer", "GFLOP/s", "% GEMM roof"]


def print_table(rows, markdown):
    if markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "|".join(["---", "---", "---:", "---:", "---:", "---:"]) + "|")
        last = None
        for r in rows:
            r = list(r)
            if r[0] == last:
                r[0] = ""
            else:
                last = r[0]
            if r[1] == "fastbp":
                r[1:] = [f"**{c}**" if c else c for c in r[1:]]
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *rows)]
    right = [False, False, True, True, True, True]

    def line(r):
        return "  ".join(str(c).rjust(wd) if rj else str(c).ljust(wd)
                         for c, wd, rj in zip(r, widths, right))
    print(line(HEADER))
    print("  ".join("-" * wd for wd in widths))
    last = None
    for r in rows:
        if last is not None and r[0] != last:
            print()
        shown = list(r)
        if r[0] == last:
            shown[0] = ""
        last = r[0]
        print(line(shown))


def machine_info(threads, fastbp, torch, sklearn):
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    import numba
    lines = [
        f"CPU        : {cpu}, {os.cpu_count()} logical cores ({usable} usable), "
        f"threads used: {threads}",
        f"Python     : {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"numpy      : {np.__version__}    numba: {numba.__version__}",
        "fastbp     : " + (f"{getattr(fastbp, '__version__', '?')} from "
                            f"{os.path.dirname(fastbp.__file__)}" if fastbp else "NOT IMPORTABLE"),
        "torch      : " + (f"{torch.__version__} ({torch.get_num_threads()} threads)"
                            if torch else "skipped (not installed)"),
        "sklearn    : " + (sklearn.__version__ if sklearn else "skipped (not installed)"),
    ]
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info.get("user_api") == "blas":
                lines.append(f"BLAS       : {info.get('internal_api')} {info.get('version')} "
                             f"({info.get('threading_layer', '?')}, {info.get('num_threads')} "
                             f"threads, {info.get('architecture', '?')}) "
                             f"{os.path.basename(info.get('filepath', ''))}")
    except ImportError:
        lines.append("BLAS       : (threadpoolctl not installed)")
    if torch:
        lines.append("torch BLAS : " + ("MKL" if torch.backends.mkl.is_available() else "not MKL"))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=7, help="timing rounds, best is reported")
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS),
                    metavar="W", help=f"subset of: {' '.join(WORKLOADS)} (default: all)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for fastbp, numpy/sklearn BLAS and torch (default: all cores)")
    ap.add_argument("--weight-decay", type=float, default=1e-4, help="lambda (default 1e-4)")
    ap.add_argument("--pause", type=float, default=PAUSE_S,
                    help=f"idle seconds before every timed sample, so the previous library's "
                         f"thread pool goes to sleep (default {PAUSE_S})")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--contention", action="store_true",
                    help="instead of the peer tables: fastbp beside one busy process per core "
                         "(and quiet, and right after a numpy matmul), default threads against "
                         "one thread (benchmarks/bench_contention.py)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="--contention: measure every case this many times, report the range")
    return ap.parse_args(argv)


def run_contention(args):
    """The thread-policy table: ratio of the median time with fastbp's default
    threads to the median with one thread, interleaved, in the same conditions."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmarks.bench_contention import (CASES, available_cores, make_call, measure,
                                             numpy_burst)
    import fastbp
    cores = available_cores()
    print(f"fastbp {fastbp.__version__}: default threads = {fastbp.get_num_threads()}, "
          f"busy competitors = {cores} (one per core), median of {args.rounds} interleaved "
          f"calls each, {args.repeats} repeat(s); ratio = default / one thread")
    header = ["case", "quiet: default", "quiet: 1 thread", "quiet ratio",
              "loaded: default", "loaded: 1 thread", "loaded ratio", "after numpy ratio"]
    rows = []
    for name in CASES:
        call = make_call(name)
        cells = {k: [] for k in ("qd", "q1", "ld", "l1", "nr")}
        for _ in range(args.repeats):
            qd, q1 = measure(call, 0, reps=args.rounds)
            ld, l1 = measure(call, cores, reps=args.rounds)
            nd, n1 = measure(call, 0, reps=args.rounds, before=numpy_burst())
            for k, v in zip(cells, (qd, q1, ld, l1, nd / n1)):
                cells[k].append(v)

        def span(values, ms=True):
            lo, hi = min(values), max(values)
            f = (lambda v: f"{v * 1e3:.3g} ms") if ms else (lambda v: f"{v:.2f}")
            return f(lo) if len(values) == 1 else f"{f(lo)}–{f(hi)}"

        ratio = lambda a, b: span([x / y for x, y in zip(cells[a], cells[b])], ms=False)
        rows.append([name, span(cells["qd"]), span(cells["q1"]), ratio("qd", "q1"),
                     span(cells["ld"]), span(cells["l1"]), ratio("ld", "l1"),
                     span(cells["nr"], ms=False)])
        print("  " + " | ".join(rows[-1]), flush=True)
    if args.markdown:
        print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    return 0


def _optional_imports():
    try:
        import torch
    except ImportError:
        torch = None
    try:
        import sklearn
        from sklearn.neural_network import MLPRegressor
    except ImportError:
        sklearn = MLPRegressor = None
    try:
        import fastbp
    except ImportError as e:
        fastbp = None
        print("!" * 90 + f"\n!!! fastbp is NOT importable ({e!r}); peers are checked against "
              "numpy instead\n" + "!" * 90, flush=True)
    return fastbp, torch, sklearn, MLPRegressor


def main(argv=None):
    args = parse_args(argv)
    if args.contention:
        return run_contention(args)
    all_cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count())
    threads = args.threads or all_cores
    fastbp, torch, sklearn, MLPRegressor = _optional_imports()

    # threads: BLAS (numpy, sklearn) and OpenMP pools via threadpoolctl, then torch and fastbp.
    # threadpoolctl only reaches libraries already loaded: load scipy's BLAS (the one numba's
    # np.dot, hence fastbp, calls) first.
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=threads)  # applies at once, for the rest of the process
    except ImportError:
        print("threadpoolctl not installed: numpy's BLAS thread count is not controlled")
    if torch:
        torch.set_num_threads(threads)
    if fastbp:
        fastbp.set_num_threads(threads)

    dtypes = {"float32": [np.float32], "float64": [np.float64],
              "both": [np.float64, np.float32]}[args.dtype]
    print(machine_info(threads, fastbp, torch, sklearn))
    print(f"weight decay lambda = {args.weight_decay}, rounds = {args.rounds}, pause "
          f"{args.pause} s, SGD: batch {SGD_BATCH}, lr {SGD_LR}, no shuffling")

    ctx = Context(fastbp, torch, MLPRegressor, args.weight_decay, args.pause)
    order = ["fastbp", "numpy", "torch", "sklearn"]
    tables, all_stats = [], []
    t_start = time.perf_counter()
    for dtype in dtypes:
        dname = np.dtype(dtype).name
        rate, gemm_stats = gemm_rate(dtype)
        print(f"\n=== {dname}: numpy GEMM 2048^3: {rate / 1e9:.1f} GFLOP/s "
              f"({gemm_stats.describe()}) ===")
        results = []
        for wname in args.workloads:
            w = WORKLOADS[wname]
            runner = {"sgd": run_sgd, "many": run_many}.get(w.kind, run_full)
            times, skipped, stats = runner(ctx, w, dtype, args.rounds)
            print(f"    timed: {stats.describe()}")
            results.append((w, times, skipped, stats))
            all_stats.append(stats)
        all_stats.append(gemm_stats)
        tables.append((dname, rate, gemm_stats, build_rows(results, rate, order)))

    for dname, rate, gemm_stats, rows in tables:
        title = (f"{dname}, {threads} thread(s); ratio = time / fastest non-fastbp peer; "
                 f"roofline = numpy GEMM {rate / 1e9:.1f} GFLOP/s"
                 + ("" if gemm_stats.ok else " (measured on a BUSY machine)"))
        print(f"\n### {title}\n" if args.markdown else f"\n{title}")
        print_table(rows, args.markdown)

    if not all(st.ok for st in all_stats):
        print(f"\n(*) fewer than --rounds quiet rounds: other processes kept using >= "
              f"{100 * LOAD_WARN:.0f} % of the CPUs; those timings are unreliable, rerun on a "
              "quiet machine.")
    try:
        import numba
        layer = numba.threading_layer()   # known only once a parallel kernel has run
    except (ImportError, ValueError):
        layer = "none started"
    print(f"\nnumba threading layer: {layer}; total wall time "
          f"{time.perf_counter() - t_start:.0f} s")
    failed = bool(ctx.failures) or fastbp is None
    if ctx.failures:
        print("\n" + "!" * 90 + "\n!!! NUMERICAL DISAGREEMENTS:")
        for d, wl, p, what, err in ctx.failures:
            print(f"!!!   {d} {wl}: {p} {what} rel.err {err:.3e}")
        print("!" * 90)
    if fastbp is None:
        print("!!! fastbp was not importable: this run compared the peers only")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
