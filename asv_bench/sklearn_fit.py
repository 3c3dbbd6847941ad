"""Fit time of fastbp.MLPClassifier/MLPRegressor against scikit-learn's, same settings.

For each data set bundled with scikit-learn (digits and breast_cancer:
classification; diabetes: regression, all standardised) and each solver
(lbfgs, adam, sgd), both estimators are built with *identical* parameters
(scikit-learn's defaults: hidden_layer_sizes=(100,), relu, alpha=1e-4,
batch_size='auto', plus random_state=0, max_iter as given and, for the
stochastic solvers, n_iter_no_change=inf so both run exactly max_iter epochs).
fastbp reproduces scikit-learn's fit, so both do the same work: the script
prints both n_iter_ and the largest difference between the two models'
predictions as a check.

Each configuration runs under two thread settings: one thread (fastbp's
kernels and every BLAS held to one thread with threadpoolctl) and the default
(all cores for both). The two estimators are timed alternately, ``--repeats``
times, after one untimed warm-up fit each (numba's compile/cache load and
scikit-learn's imports are not fit time). Reported: the range (min-max) of
each side's fit time, and the range of the per-round ratio sklearn/fastbp
(> 1: fastbp is faster).

    python asv_bench/sklearn_fit.py                 # all, 3 repeats
    python asv_bench/sklearn_fit.py --data digits --solver adam --repeats 5
"""

import argparse
import time
import warnings

import numpy as np


def datasets():
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
    from sklearn.preprocessing import StandardScaler

    out = {}
    for name, loader, task in (("digits", load_digits, "classifier"),
                               ("breast_cancer", load_breast_cancer, "classifier"),
                               ("diabetes", load_diabetes, "regressor")):
        X, y = loader(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        if task == "regressor":
            y = (y - y.mean()) / y.std()
        out[name] = (X, y, task)
    return out


def fit_time(est, X, y):
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start


def run(X, y, task, solver, max_iter, repeats, threads):
    import sklearn.neural_network as sk
    from threadpoolctl import threadpool_limits

    import fastbp

    name = "MLPClassifier" if task == "classifier" else "MLPRegressor"
    params = dict(solver=solver, max_iter=max_iter, random_state=0)
    if solver != "lbfgs":
        params["n_iter_no_change"] = np.inf
    make = {"sklearn": lambda: getattr(sk, name)(**params),
            "fastbp": lambda: getattr(fastbp, name)(**params)}
    previous = fastbp.get_num_threads()
    limits = threadpool_limits(limits=1) if threads == 1 else None
    if threads == 1:
        fastbp.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = {k: f() for k, f in make.items()}
            for k, est in fitted.items():
                est.fit(X, y)  # warm-up, untimed
            times = {k: [] for k in make}
            for _ in range(repeats):
                for k in make:  # interleaved
                    times[k].append(fit_time(make[k](), X, y))
    finally:
        fastbp.set_num_threads(previous)
        if limits is not None:
            limits.restore_original_limits()
    out_sk = fitted["sklearn"].predict(X).astype(float)
    out_fb = fitted["fastbp"].predict(X).astype(float)
    agree = float(np.max(np.abs(out_sk - out_fb))) if task == "regressor" else \
        float(np.mean(out_sk != out_fb))
    return times, fitted["sklearn"].n_iter_, fitted["fastbp"].n_iter_, agree


def fmt_range(values, scale=1e3):
    return f"{min(values) * scale:.0f}-{max(values) * scale:.0f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="*", default=["digits", "breast_cancer", "diabetes"])
    p.add_argument("--solver", nargs="*", default=["lbfgs", "adam", "sgd"])
    p.add_argument("--threads", nargs="*", default=["1", "default"])
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import fastbp

    data = datasets()
    print(f"fastbp {fastbp.__version__}; {fastbp.get_num_threads()} threads by default; "
          f"hidden_layer_sizes=(100,), relu, max_iter={args.max_iter}, {args.repeats} "
          f"interleaved repeats")
    print("| data (n x d) | solver | threads | n_iter_ sk/fb | sklearn ms | fastbp ms | "
          "ratio sk/fb | agreement |")
    print("|---|---|---|---|---|---|---|---|")
    for dname in args.data:
        X, y, task = data[dname]
        for solver in args.solver:
            for th in args.threads:
                threads = 1 if th == "1" else None
                times, it_sk, it_fb, agree = run(X, y, task, solver, args.max_iter,
                                                 args.repeats, threads)
                ratios = [a / b for a, b in zip(times["sklearn"], times["fastbp"])]
                what = ("max abs pred diff" if task == "regressor" else "labels differ")
                print(f"| {dname} ({X.shape[0]} x {X.shape[1]}) | {solver} | {th} | "
                      f"{it_sk}/{it_fb} | {fmt_range(times['sklearn'])} | "
                      f"{fmt_range(times['fastbp'])} | {min(ratios):.2f}-{max(ratios):.2f} | "
                      f"{what} {agree:.2g} |", flush=True)


if __name__ == "__main__":
    main()
