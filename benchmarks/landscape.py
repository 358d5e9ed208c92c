"""Benchmark of the flux-landscape library (chapter flux_rl).

Reports, in one run:
  * T^6 and conifold vacuum solves per second, vmapped over flux batches, and the ratio against
    the anchor: SciPy's MINPACK (`scipy.optimize.root`, method 'hybr') on the full F-term system
    from a grid of 27 starting points per flux, the way one would solve without our elimination;
  * environment steps per second for 1, 64 and 1024 parallel environments (T^6 and conifold);
  * the wall time of the full-scale RL experiment if its cached result exists.
Goal from the issue: >= 1e4 T^6 solves/s on 2 cores; full RL experiment < 20 min.
Usage: python benchmarks/landscape.py [--full]
"""
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from physml_book.core.precision import enable_float64
from physml_book.landscape.env import EnvParams, batch_reset, batch_step
from physml_book.landscape.models import LocalConifold, SymmetricT6
from physml_book.landscape.solvers import minpack_t6_vacua, solve_batch

FULL = "--full" in sys.argv


def best_rate(fn, n_items, reps=3):
    "Items per wall second of the fastest of `reps` calls (after a warm-up), and per CPU second."
    jax.block_until_ready(fn())
    best, cpu = np.inf, np.inf
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return n_items / best, n_items / cpu


def minpack_rate(fluxes):
    "Fluxes per second solved by MINPACK on the full 4-real F-term system (27 starts each)."
    t0 = time.perf_counter()
    for f in fluxes:
        minpack_t6_vacua(f, (-1.0, 0.0, 1.0), (0.5, 1.2, 3.0), ((0.0, 1.0), (0.7, 0.4), (-0.7, 2.0)))
    return len(fluxes) / (time.perf_counter() - t0)


def env_rate(params, n_envs, n_steps):
    def rollout(key):
        states, _ = batch_reset(params, key, n_envs)
        def body(states, k):
            ka, ks = jax.random.split(k)
            actions = jax.random.randint(ka, (n_envs,), 0, params.n_actions)
            states, obs, r, done, info = batch_step(params, states, actions, ks)
            return states, r
        return jax.lax.scan(body, states, jax.random.split(key, n_steps))[1]
    roll = jax.jit(rollout)
    return best_rate(lambda: roll(jax.random.key(0)), n_envs * n_steps, reps=2)[0]


def main():
    enable_float64()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} (a load above the CPU count means shared cores: rates are low)")
    rng = np.random.default_rng(0)
    batch = 16384 if FULL else 4096
    flux = jnp.asarray(rng.integers(-3, 4, size=(batch, 8)), jnp.int32)
    t6, cf = SymmetricT6(), LocalConifold()
    r_t6, c_t6 = best_rate(lambda: solve_batch(t6, flux), batch)
    r_cf, c_cf = best_rate(lambda: solve_batch(cf, flux[: batch // 4]), batch // 4)
    r_mp = minpack_rate(np.asarray(flux[: (20 if FULL else 6)]))
    ncpu = os.cpu_count()
    print(f"T^6 solves/s (batch {batch}):        {r_t6:12,.0f}   goal 1e4: {'met' if r_t6 >= 1e4 else 'NOT met'} (wall clock)")
    print(f"   per CPU-second {c_t6:,.0f}; on {ncpu} idle cores at most {ncpu * c_t6:,.0f}/s")
    print(f"conifold solves/s (batch {batch // 4}):   {r_cf:12,.0f}   per CPU-second {c_cf:,.0f}")
    print(f"anchor MINPACK T^6 fluxes/s:       {r_mp:12,.1f}   ratio ours/anchor: {r_t6 / r_mp:,.0f}x")
    for model in ("t6", "conifold"):
        params = EnvParams(model=model, teleport=False)   # the experiment's setting
        for n_envs in (1, 64, 1024):
            n_steps = {1: 200, 64: 20, 1024: 4 if not FULL else 10}[n_envs]
            print(f"{model:8s} env steps/s with {n_envs:5d} envs: {env_rate(params, n_envs, n_steps):12,.0f}")
    for path in (Path("nbs/flux_rl/_cache/flux_rl_full.npz"), Path("_cache/flux_rl_full.npz")):
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
                rl_s = sum(float(z[k]) for k in z.files if k.endswith("rl/wall_s"))
            print(f"full experiment (cached {meta.get('created')}): {meta['wall_s'] / 60:.1f} min for "
                  f"all three samplers, of which RL (PPO) {rl_s / 60:.1f} min (goal: RL < 20 min)")
            break
    else:
        print("full RL experiment: no cached result (run `make chapter NB=nbs/flux_rl/results.ipynb`)")


if __name__ == "__main__":
    main()
