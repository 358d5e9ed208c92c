"""Speed of the symmetry chapter's hot paths at the full-scale sizes.

Reports, for the baseline, the HNN and the SCNN (Kepler and two-body sizes of the `full`
presets): training steps per second of one model (a compiled `lax.scan` chunk), steps per
second of an ensemble trained under `vmap` (as the experiments do), and rollout throughput
(trajectories x integrator steps per second, fixed-step Tsit5, vmapped over trajectories).
The anchor is a naive SCNN loss that recomputes the Jacobian of the transformation in each
loss term that needs it (canonicity, latent Hamilton, cyclic), against ours, which computes
it once per sample and shares it; both give the same loss.

    python benchmarks/symmetry.py            # ~1-2 minutes on 2 cores
    python benchmarks/symmetry.py --quick    # a smoke run
Timings on a shared machine are inflated; the ratios are the numbers to read.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from physml_book import hamiltonian as ham
from physml_book import hnn, scnn
from physml_book.core.train import init_state, make_step, train_chunk
from physml_book.scnn_experiments import SymmetryConfig, kepler_config


def naive_scnn_loss(model):
    "The SCNN loss with one Jacobian per term that needs it (the anchor)."
    def loss_fn(params, batch):
        z, dz = batch
        T = lambda x: model.transform(params, x)
        Hl = lambda Z: model.latent_hamiltonian(params, Z)
        n = z.shape[1] // 2
        om = ham.symplectic_matrix(n)
        cyc_mask = params["cyclic"]

        def hnn_term(x, dx):
            return jnp.mean((dx - om @ jax.grad(lambda y: Hl(T(y)))(x)) ** 2)

        def canon_term(x):
            J = jax.jacfwd(T)(x)
            return jnp.sum((J @ om @ J.T - om) ** 2)

        def ham_term(x, dx):
            J = jax.jacfwd(T)(x)
            return jnp.mean((J @ dx - om @ jax.grad(Hl)(T(x))) ** 2)

        def cyc_term(x, dx):
            J = jax.jacfwd(T)(x)
            g = jax.grad(Hl)(T(x))
            return jnp.sum(cyc_mask * (g[:n] ** 2 + (J @ dx)[n:] ** 2))
        terms = {"hnn": jnp.mean(jax.vmap(hnn_term)(z, dz)),
                 "canon": jnp.mean(jax.vmap(canon_term)(z)),
                 "ham": jnp.mean(jax.vmap(ham_term)(z, dz)),
                 "cyc": jnp.mean(jax.vmap(cyc_term)(z, dz))}
        lam = params["weights"]
        return terms["hnn"] + sum(lam[k] * terms[k] for k in ("canon", "ham", "cyc")), terms
    return loss_fn


def time_chunk(loss_fn, params, optimizer, data, batch_size, n_steps, has_aux, key, repeats=2):
    "Steady-state steps/s of one compiled chunk (compile time excluded)."
    step = make_step(loss_fn, optimizer, has_aux=has_aux)
    state = init_state(params, optimizer)
    out = train_chunk(step, state, data, key, n_steps, batch_size)
    jax.block_until_ready(out[0].params)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = train_chunk(step, state, data, key, n_steps, batch_size)
        jax.block_until_ready(out[0].params)
        best = min(best, time.perf_counter() - t0)
    return n_steps / best


def time_ensemble(loss_fn, params, optimizer, data, batch_size, n_steps, has_aux, keys):
    "Model-steps/s of an ensemble chunk under vmap."
    step = make_step(loss_fn, optimizer, has_aux=has_aux)
    state = jax.vmap(lambda p: init_state(p, optimizer))(params)
    run = jax.jit(jax.vmap(train_chunk, in_axes=(None, 0, None, 0, None, None)),
                  static_argnums=(0, 4, 5))
    jax.block_until_ready(run(step, state, data, keys, n_steps, batch_size)[0].params)
    t0 = time.perf_counter()
    jax.block_until_ready(run(step, state, data, keys, n_steps, batch_size)[0].params)
    return keys.shape[0] * n_steps / (time.perf_counter() - t0)


def time_rollout(field_fn, params, z0, n_steps, dt):
    "Trajectories x steps per second of fixed-step Tsit5."
    ts = jnp.array([0.0, n_steps * dt])
    run = lambda: ham.integrate(field_fn, z0, ts, args=params, dt=dt, max_steps=n_steps + 10)
    jax.block_until_ready(run())
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    return z0.shape[0] * n_steps / (time.perf_counter() - t0)


def main(quick: bool):
    n_steps = 20 if quick else 200
    rows = []
    for cfg in (kepler_config("full"), SymmetryConfig.full()):
        n_dof = 2 if cfg.task == "kepler" else 4
        n2 = 2 * n_dof
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4000, n2)).astype(np.float32) + 2.0
        dx = rng.normal(size=(4000, n2)).astype(np.float32)
        data, key = (x, dx), jax.random.key(0)
        opt = optax.adam(1e-3)
        models = {
            "baseline": (hnn.derivative_loss(hnn.baseline_field(hnn.MLP(cfg.hidden, n2))),
                         hnn.MLP(cfg.hidden, n2).init(key, x[0]), False),
            "HNN": (hnn.derivative_loss(hnn.hnn_field(hnn.MLP(cfg.hidden, 1))),
                    hnn.MLP(cfg.hidden, 1).init(key, x[0]), False),
        }
        model = scnn.SCNN(n_dof, cfg.hidden)
        p_scnn = model.init(key, min(2, n_dof))
        models["SCNN"] = (scnn.scnn_loss(model), p_scnn, True)
        models["SCNN, naive Jacobians"] = (naive_scnn_loss(model), p_scnn, True)
        # same loss value from both implementations
        a = scnn.scnn_loss(model)(p_scnn, (x[:64], dx[:64]))[0]
        b = naive_scnn_loss(model)(p_scnn, (x[:64], dx[:64]))[0]
        assert abs(float(a) - float(b)) <= 1e-4 * abs(float(a)), (float(a), float(b))
        speeds = {}
        for name, (loss_fn, params, aux) in models.items():
            s = time_chunk(loss_fn, params, opt, data, cfg.batch_size, n_steps, aux, key)
            speeds[name] = s
            rows.append((cfg.task, name, f"{s:9.1f} steps/s"))
        n_members = 4
        keys = jax.random.split(key, n_members)
        stacked = jax.tree_util.tree_map(lambda *l: jnp.stack(l),
                                         *[model.init(k, min(2, n_dof)) for k in keys])
        ens = time_ensemble(scnn.scnn_loss(model), stacked, scnn.scnn_optimizer(opt), data,
                            cfg.batch_size, n_steps, True, keys)
        rows.append((cfg.task, f"SCNN ensemble of {n_members} (vmap)", f"{ens:9.1f} model-steps/s"))
        z0 = jnp.asarray(x[:64])
        roll_steps = 50 if quick else 400
        for name, field_fn, params in (
                ("baseline", hnn.baseline_field(hnn.MLP(cfg.hidden, n2)), models["baseline"][1]),
                ("HNN", hnn.hnn_field(hnn.MLP(cfg.hidden, 1)), models["HNN"][1]),
                ("SCNN", ham.HamiltonianField(model.hamiltonian), p_scnn)):
            r = time_rollout(field_fn, params, z0, roll_steps, 0.01)
            rows.append((cfg.task, f"rollout {name}", f"{r:9.0f} trajectory-steps/s"))
        rows.append((cfg.task, "ratio SCNN / HNN step time", f"{speeds['HNN'] / speeds['SCNN']:9.2f}"))
        rows.append((cfg.task, "ratio naive / shared-Jacobian SCNN step time",
                     f"{speeds['SCNN'] / speeds['SCNN, naive Jacobians']:9.2f}"))
    print(f"batch sizes and widths of the full presets; {n_steps}-step chunks; "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    for r in rows:
        print(f"{r[0]:9s} {r[1]:45s} {r[2]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run with short chunks")
    main(ap.parse_args().quick)
