"""Command line: ``fastbp demo`` (also ``python -m fastbp demo``)."""

import argparse
import sys
import time


def demo(args):
    """Train UFLDL's sparse autoencoder on 8×8 patches generated in code."""
    import fastbp
    from fastbp.datasets import sample_patches

    t0 = time.perf_counter()
    X = sample_patches(args.patches, seed=args.seed)
    print(f"data      {X.shape[0]:,} 8x8 patches generated in code (no download), "
          f"scaled to [0.1, 0.9]")
    net = fastbp.Network([64, 25, 64], activations="sigmoid", init="uniform", seed=args.seed)
    print(f"network   {net}  ({net.n_params:,} parameters)")
    kw = dict(weight_decay=1e-4, sparsity_target=0.01, sparsity_weight=3.0)
    print(f"cost      sparse autoencoder, lambda={kw['weight_decay']}, "
          f"rho={kw['sparsity_target']}, beta={kw['sparsity_weight']}")
    J0 = net.cost(X, X, **kw)
    print(f"training  L-BFGS, {args.iterations} iterations, {fastbp.get_num_threads()} threads; "
          f"J = {J0:.5f} at the start")

    def progress(it, J, _net):
        if (it + 1) % max(1, args.iterations // 8) == 0:
            print(f"          iteration {it + 1:4d}  J = {J:.5f}", flush=True)

    t1 = time.perf_counter()
    history = fastbp.train(net, X, X, optimizer="lbfgs", iterations=args.iterations,
                           callback=progress, **kw)
    t2 = time.perf_counter()
    rho_hat = net.mean_hidden_activation(X)
    print(f"done      J = {history[-1]:.5f} after {len(history)} iterations in {t2 - t1:.1f} s "
          f"({(t2 - t1) / max(1, len(history)) * 1e3:.1f} ms per iteration); "
          f"mean hidden activation {rho_hat.mean():.4f} (target 0.01); total {t2 - t0:.1f} s")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastbp", description="fastbp: the UFLDL backpropagation algorithm on parallel CPU kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train the UFLDL sparse autoencoder on generated 8x8 patches")
    p.add_argument("--iterations", type=int, default=400, help="L-BFGS iterations (default 400)")
    p.add_argument("--patches", type=int, default=10_000, help="number of patches (default 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
