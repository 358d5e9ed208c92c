"""Benchmark of the duality chapter: an ensemble over seeds and learning rates as one vmapped,
jitted computation (`train_ensemble`) against a Python loop over the same jitted single run
(`train_single`), in one process. Prints wall times and the speed-up ratio.

    python benchmarks/duality.py          # widths 64 and 512, 20 seeds x 5 learning rates, 300 steps
    python benchmarks/duality.py --full   # also width 2048

Wall times are the best of a few repeats (the machine may be shared); "warm" excludes compilation.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from physml_book.core.config import machine_summary
from physml_book.core.precision import float64
from physml_book.gd_duality import (init_ensemble, make_mlp, regression_data, train_ensemble,
                                    train_single)


def timed(fn, repeats=3):
    "Best wall time of `repeats` calls of `fn` (results blocked on)."
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def bench(width, n_seeds, n_etas, n_steps):
    x, y = regression_data(32)
    model = make_mlp(width)
    params = init_ensemble(model, x, jax.random.key(0), n_seeds)
    etas = jnp.geomspace(1e-4, 8e-3, n_etas)
    one = lambda s, e: jax.tree_util.tree_map(lambda a: a[s], params)

    def loop():
        out = []
        for s in range(n_seeds):
            p = one(s, 0)
            for e in range(n_etas):
                out.append(train_single(model.apply, p, x, y, etas[e], n_steps, 0.0)[1])
        return out

    def vmapped():
        return train_ensemble(model.apply, params, x, y, etas, n_steps).f

    t0 = time.perf_counter(); jax.block_until_ready(loop()); first_loop = time.perf_counter() - t0
    t0 = time.perf_counter(); jax.block_until_ready(vmapped()); first_vmap = time.perf_counter() - t0
    t_loop, t_vmap = timed(loop), timed(vmapped)
    # same numbers either way
    np.testing.assert_allclose(np.asarray(vmapped())[3 % n_seeds, 1],
                               np.asarray(train_single(model.apply, one(3 % n_seeds, 0), x, y,
                                                       etas[1], n_steps, 0.0)[1]), rtol=1e-10, atol=1e-14)
    runs = n_seeds * n_etas
    print(f"width {width:5d}, {n_seeds} seeds x {n_etas} learning rates, {n_steps} steps "
          f"({runs} runs):")
    print(f"  Python loop of jitted runs : {t_loop:8.3f} s  (first call incl. compile {first_loop:.2f} s)")
    print(f"  one vmapped computation    : {t_vmap:8.3f} s  (first call incl. compile {first_vmap:.2f} s)")
    print(f"  speed-up (warm)            : {t_loop / t_vmap:8.1f} x")
    print(f"  speed-up (incl. compile)   : {first_loop / first_vmap:8.1f} x")
    return t_loop / t_vmap


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="more widths and steps")
    args = ap.parse_args()
    print(machine_summary(), "| float64")
    cases = [(64, 20, 5, 300), (512, 20, 5, 300)] + ([(2048, 20, 5, 300)] if args.full else [])
    with float64():
        ratios = {case[0]: bench(*case) for case in cases}
    print("summary, warm speed-up of the vmapped ensemble over the loop:",
          ", ".join(f"width {w}: {r:.2f}x" for w, r in ratios.items()))


if __name__ == "__main__":
    main()
