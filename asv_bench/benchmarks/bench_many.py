"""asv benchmarks for fastbp.train_many (many networks in one parallel call),
each beside the loop of fastbp.train calls it replaces. Small sizes: the whole
file stays well under 20 s of asv time.

    cd asv_bench && asv run --python=same --quick --show-stderr --bench Many
"""

import numpy as np

import fastbp

CASES = {
    # name: (layer sizes, m, networks, train options)
    "tiny-gd": ((2, 8, 1), 256, 64, {"iterations": 20}),
    "ufldl-sgd": ((64, 25, 64), 500, 8, {"iterations": 1, "optimizer": "sgd",
                                         "batch_size": 32}),
}


def _problem(case):
    sizes, m, n, options = CASES[case]
    rng = np.random.default_rng(0)
    X = rng.random((m, sizes[0]))
    Y = rng.random((m, sizes[-1]))
    nets = [fastbp.Network(list(sizes), seed=s, epsilon=0.5) for s in range(n)]
    per = {"learning_rate": list(np.linspace(0.1, 1.0, n)),
           "weight_decay": list(np.linspace(0.0, 1e-3, n))}
    return nets, X, Y, per, options


class Many:
    """train_many on a sweep of per-network α and λ vs one train call per network."""

    params = (list(CASES),)
    param_names = ["case"]
    number = 1
    repeat = 3
    timeout = 300

    def setup(self, case):
        self.nets, self.X, self.Y, self.per, self.options = _problem(case)
        self.theta0 = [net.theta.copy() for net in self.nets]
        self.time_train_many(case)   # compile / warm up
        self.time_train_loop(case)

    def time_train_many(self, case):
        fastbp.train_many(self.nets, self.X, self.Y, **self.per, **self.options)

    def time_train_loop(self, case):
        for i, net in enumerate(self.nets):
            fastbp.train(net, self.X, self.Y, **{k: v[i] for k, v in self.per.items()},
                         **self.options)

    def track_final_cost_mean(self, case):
        # quality: the mean final cost of the sweep (the same with either call)
        for net, theta in zip(self.nets, self.theta0):
            net.theta = theta
        histories = fastbp.train_many(self.nets, self.X, self.Y, **self.per, **self.options)
        return float(np.mean([h[-1] for h in histories]))


class ManyFoldsMemory:
    """k-fold rows on a larger X: peak memory stays near one X, not one X per fold."""

    timeout = 300

    def setup(self):
        rng = np.random.default_rng(0)
        self.X = rng.random((20_000, 64))   # 10 MB
        folds = np.array_split(rng.permutation(20_000), 16)
        self.rows = [np.concatenate(folds[:k] + folds[k + 1:]) for k in range(16)]
        self.nets = [fastbp.Network([64, 25, 64], seed=s) for s in range(16)]
        fastbp.train_many(self.nets[:1], self.X[:300], self.X[:300], iterations=1,
                          rows=[np.arange(10)])   # compile / warm up

    def peakmem_train_many_16_folds(self):
        fastbp.train_many(self.nets, self.X, self.X, iterations=1, rows=self.rows)

    def peakmem_train_one_fold(self):
        # the baseline: one train call on one fold's copied rows (X[rows], Y[rows])
        fastbp.train(self.nets[0], self.X[self.rows[0]], self.X[self.rows[0]], iterations=1)
