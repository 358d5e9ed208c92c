"""Benchmark of the empirical NTK strategies of `physml_book.ntk` (chapter ntk).

Network: the digits MLP 64 -> 256 -> 256 -> 256 -> 10 (ReLU, 150 794 parameters), float32.
For each strategy and number of digits N, one kernel `empirical_ntk(..., outputs="sum")` of
the N points with themselves, each in a fresh subprocess so that its peak memory (max RSS
above the interpreter's baseline after imports and data loading) is its own.

Reports kernel entries per second (N^2 / time; the first call, compilation included, and the
best of three calls when the first is short) and the speed-up of the default strategy
('auto', which picks 'structured' here) over plain Jacobian contraction, the anchor.

    python benchmarks/ntk.py           # all strategies at N=500; 'auto' also at N=2000 (~2 min)
    python benchmarks/ntk.py --full    # every strategy also at N=2000 (~20 min on 2 cores)
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

STRATEGIES = ("auto", "structured", "jacobian", "ntvp")


def child(strategy: str, n: int) -> dict:
    "Run one kernel in this process and return its timings and memory."
    import jax
    import numpy as np
    from physml_book.datasets import load_digits_split
    from physml_book.ntk import MLP, empirical_ntk, param_count

    d = load_digits_split()
    x = np.concatenate([d.x_train, d.x_test])
    x = x[np.arange(n) % len(x)]
    net = MLP((256, 256, 256, 10))
    params = net.init(jax.random.key(0), x[:1])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        theta = empirical_ntk(net.apply, params, x, strategy=strategy).block_until_ready()
        times.append(time.perf_counter() - t0)
        if times[0] > 20: break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"strategy": strategy, "n": n, "first_s": times[0], "best_s": min(times),
            "peak_mib": (peak - base) / 1024, "params": param_count(params),
            "trace": float(np.trace(np.asarray(theta)))}


def run(strategy: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", strategy, str(n)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="every strategy also at N=2000")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    jobs = [(s, 500) for s in STRATEGIES] + [("auto", 2000)]
    if args.full: jobs += [(s, 2000) for s in ("structured", "jacobian", "ntvp")]
    print(f"eNTK benchmark, digits MLP 64-256-256-256-10, float32, {os.cpu_count()} CPUs")
    print(f"{'strategy':10s} {'N':>5s} {'first [s]':>10s} {'best [s]':>9s} "
          f"{'entries/s':>11s} {'peak [MiB]':>11s}")
    rows = {}
    for s, n in jobs:
        r = run(s, n)
        rows[s, n] = r
        print(f"{s:10s} {n:5d} {r['first_s']:10.2f} {r['best_s']:9.2f} "
              f"{n * n / r['best_s']:11.3g} {r['peak_mib']:11.0f}", flush=True)
    for n in (500, 2000):
        if ("jacobian", n) in rows:
            ref = rows["jacobian", n]
            for s in ("auto", "ntvp"):
                if (s, n) in rows:
                    print(f"N={n}: speed-up of '{s}' over Jacobian contraction "
                          f"{ref['best_s'] / rows[s, n]['best_s']:.1f}x (relative difference "
                          f"of the traces {abs(rows[s, n]['trace'] / ref['trace'] - 1):.1e})")
    print("timings on a shared machine are noisy; ratios from one run")


if __name__ == "__main__":
    main()
