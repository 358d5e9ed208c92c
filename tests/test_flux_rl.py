"""Library tests of physml_book.landscape (chapter flux_rl), against oracles we did not write:
closed forms, SciPy's MINPACK, divisor sums, dualities, and the GKP conifold scaling."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from physml_book.core.precision import float64
from physml_book.landscape.counting import (continuum_count, continuum_density, count_t6_vacua,
                                            cumulative_counts, hodge_form, region_fluxes,
                                            vacuum_flux_map)
from physml_book.landscape.dualities import (canonical_key, mobius, monodromy_flux_map, parity,
                                             phi_flux_map, reduce_upper_half, tau_flux_map)
from physml_book.landscape.env import EnvParams, batch_reset, batch_step, evaluate
from physml_book.landscape.models import (LocalConifold, RigidCY, SymmetricT6, check_flux,
                                          fterm_norm, w0)
from physml_book.landscape.ppo import PPOConfig, ppo_train
from physml_book.landscape.samplers import SamplerConfig, collect, run_sampler
from physml_book.landscape.solvers import enumerate_vacua, minpack_t6_vacua, solve

T6, CF, RIGID = SymmetricT6(), LocalConifold(), RigidCY()
S = jnp.array([0, -1, 1, 0], jnp.int32)
T = jnp.array([1, 1, 0, 1], jnp.int32)


@pytest.fixture(autouse=True)
def x64():
    with float64():
        yield


def _vacua(model, n, box, seed=0):
    flux = np.random.default_rng(seed).integers(-box, box + 1, size=(n, model.n_flux))
    vac = solve(model, flux)
    ok = np.asarray(vac.valid)
    rows, cols = np.nonzero(ok)
    return jnp.asarray(flux[rows], jnp.int32), vac.moduli[rows, cols]


@pytest.mark.parametrize("model,box", [(T6, 3), (CF, 3), (RIGID, 4)])
def test_vacua_are_isd_with_positive_tadpole(model, box):
    flux, mod = _vacua(model, 800, box)
    assert len(flux) > 20
    assert (np.asarray(model.tadpole(flux)) > 0).all()
    res = jax.vmap(lambda f, m: fterm_norm(model, f, m))(flux, mod)
    scale = jnp.exp(0.5 * jax.vmap(model.kahler_potential)(mod)) * jnp.abs(flux).sum(-1) * (
        1 + jnp.abs(mod).max(-1)) ** 3
    assert float(jnp.max(res / scale)) < 1e-8


def test_t6_matches_minpack_on_full_system():
    rng = np.random.default_rng(11)
    flux = rng.integers(-2, 3, size=(200, 8))
    flux = flux[np.asarray(T6.tadpole(jnp.asarray(flux))) > 0][:6]
    vac = solve(T6, flux)
    for f, m, ok in zip(flux, np.asarray(vac.moduli), np.asarray(vac.valid)):
        found = minpack_t6_vacua(f, (-1.0, 0.0, 1.0), (0.5, 1.2, 3.0), ((0.0, 1.0), (0.7, 0.4), (-0.7, 2.0)))
        ours = m[ok, 0]
        for t in found:           # every MINPACK vacuum is one of ours
            assert np.min(np.abs(ours - t)) < 1e-6


@pytest.mark.parametrize("which", ["phi", "tau", "parity"])
def test_t6_solver_equivariant(which):
    flux, mod = _vacua(T6, 800, 3, seed=1)
    for g in (S, T):
        if which == "phi":
            f2, m2 = phi_flux_map(g, flux), mod.at[:, 1].set(mobius(g, mod[:, 1]))
        elif which == "tau":
            f2, m2 = tau_flux_map(g, flux), mod.at[:, 0].set(mobius(g, mod[:, 0]))
        else:
            f2, m2 = parity(T6, flux, mod)
        v = solve(T6, f2)
        d = jnp.min(jnp.abs(v.moduli - m2[:, None]).max(-1) + jnp.where(v.valid, 0, jnp.inf), -1)
        assert float(d.max()) < 1e-8


def test_invariants_and_gs_after_reduction():
    flux, mod = _vacua(T6, 800, 3, seed=2)
    g = jnp.array([2, 1, 1, 1], jnp.int32)
    f2, m2 = phi_flux_map(g, flux), mod.at[:, 1].set(mobius(g, mod[:, 1]))
    assert np.array_equal(np.asarray(T6.tadpole(f2)), np.asarray(T6.tadpole(flux)))
    np.testing.assert_allclose(w0(T6, f2, m2), w0(T6, flux, mod), rtol=1e-9)
    # g_s changes with the frame, but not after reduction to the fundamental domain
    assert float(jnp.max(jnp.abs(jnp.imag(m2[:, 1]) - jnp.imag(mod[:, 1])))) > 1e-3
    r1, _, _ = reduce_upper_half(mod[:, 1])
    r2, _, _ = reduce_upper_half(m2[:, 1])
    np.testing.assert_allclose(1 / jnp.imag(r1), 1 / jnp.imag(r2), rtol=1e-9)


def test_canonical_key_identifies_images():
    flux, mod = _vacua(T6, 800, 3, seed=3)
    key = jax.vmap(lambda f, m: canonical_key(T6, f, m))
    k0 = np.asarray(key(flux, mod))
    f2 = tau_flux_map(S, phi_flux_map(S, phi_flux_map(T, phi_flux_map(S, flux))))
    m2 = mod.at[:, 1].set(mobius(S, mobius(T, mobius(S, mod[:, 1])))).at[:, 0].set(mobius(S, mod[:, 0]))
    assert np.array_equal(np.asarray(key(f2, m2)), k0)
    fc, mc = _vacua(CF, 800, 3, seed=3)
    kc = jax.vmap(lambda f, m: canonical_key(CF, f, m))
    assert np.array_equal(np.asarray(kc(monodromy_flux_map(2, fc), mc.at[:, 0].add(-4j * np.pi))),
                          np.asarray(kc(fc, mc)))


def test_t6_vacua_are_hodge_dual():
    "Solver vacua obey F = Re(phi) H - Im(phi) *_tau H and N = Im(phi) |H|^2_tau (ISD), *^2 = -1."
    flux, mod = _vacua(T6, 600, 3)
    flux, mod = np.asarray(flux), np.asarray(mod)
    m = jax.vmap(vacuum_flux_map)(mod[:, 0], mod[:, 1])
    m_tau = jax.vmap(vacuum_flux_map)(mod[:, 0], jnp.full(len(mod), 1j))
    assert len(flux) > 30
    np.testing.assert_allclose(np.einsum("vij,vj->vi", m, flux[:, 4:]), flux[:, :4], atol=1e-8)
    np.testing.assert_allclose(m_tau @ m_tau, -np.broadcast_to(np.eye(4), m_tau.shape), atol=1e-12)
    lin = mod[:, 1].real[:, None, None] * np.eye(4) + mod[:, 1].imag[:, None, None] * m_tau
    np.testing.assert_allclose(m, lin, atol=1e-10)               # F = Re(phi) H - Im(phi) *H
    q = jax.vmap(hodge_form)(mod[:, 0])
    assert np.linalg.eigvalsh(q).min() > 0                        # ISD: N > 0 for every H != 0
    n = mod[:, 1].imag * np.einsum("vi,vij,vj->v", flux[:, 4:], q, flux[:, 4:])
    np.testing.assert_allclose(n, np.asarray(T6.tadpole(flux)), atol=1e-8)


def test_t6_region_count_follows_continuum_l4():
    "Exhaustive orbit count in R vs the solver-free continuum volume c (pi/3 - 1/2)^2 L^4 / 2."
    vac = count_t6_vacua(10)
    counts = cumulative_counts(vac, 10)
    small, wide = count_t6_vacua(6), count_t6_vacua(6, margin=0.3, n_grid=81)   # bounds are not too tight
    assert {k.tobytes() for k in small["key"]} == {k.tobytes() for k in wide["key"]}
    cs = [continuum_density(t, key=jax.random.key(i), n_samples=100_000)[0] * t.imag**2
          for i, t in enumerate([1j, 0.4 + 3j])]
    assert abs(cs[0] / cs[1] - 1) < 0.02                           # SL(2,R): I(tau) ~ 1/Im(tau)^2
    ratio = counts[7:] / continuum_count(np.arange(8, 11), float(np.mean(cs)))
    assert np.all((ratio > 0.95) & (ratio < 1.25)), ratio
    slope = np.polyfit(np.log(np.arange(5, 11)), np.log(counts[4:]), 1)[0]
    assert abs(slope - 4) < 0.4, slope
    with pytest.raises(ValueError, match="tau_max"):
        region_fluxes(5, tau_max=0.9)


def test_rigid_count_is_divisor_sum():
    enum = enumerate_vacua(RIGID, n_max=6, l_max=6)
    tad = np.asarray(RIGID.tadpole(jnp.asarray(enum["flux"])))
    counts = [len(np.unique(enum["key"][tad == L], axis=0)) for L in range(1, 7)]
    assert counts == [1, 3, 4, 7, 6, 12]


def test_conifold_gkp_scaling():
    flux = np.random.default_rng(4).integers(-4, 5, size=(3000, 8))
    flux[:, 5] = 0
    vac = solve(CF, flux)
    ok = np.asarray(vac.valid)
    m = np.repeat(flux[:, 1:2], 2, 1)[ok]
    k = -np.repeat(flux[:, 7:8], 2, 1)[ok]
    g_s = 1 / np.asarray(vac.moduli[..., 1].imag)[ok]
    log_z = np.asarray(vac.moduli[..., 0].real)[ok]
    slope, icpt = np.polyfit(-2 * np.pi * k / (g_s * m), log_z, 1)
    assert ok.sum() > 30 and abs(slope - 1) < 0.05 and abs(icpt + 1.5) < 0.5


def test_samplers_subset_of_enumeration():
    params = EnvParams(model="t6", n_max=1, l_max=12, gs_window=(0.0, 1.2), w0_window=(0.0, 2.0))
    ref = enumerate_vacua(T6, n_max=1, l_max=12)
    ev = jax.vmap(lambda f: evaluate(params, f))(jnp.asarray(ref["flux"], jnp.int32))
    ref_keys = {tuple(k) for k, t in zip(np.asarray(ev.key).reshape(-1, 12),
                                         np.asarray(ev.target).reshape(-1)) if t}
    cfg = SamplerConfig(n_walkers=8, n_iterations=100)
    for name in ("random", "metropolis"):
        found = collect(jax.tree_util.tree_map(lambda a: a[0], run_sampler(name, params, cfg, [0])))
        assert {tuple(k) for k in found.key} <= ref_keys and len(found.key) > 0


def test_determinism_env_and_ppo():
    params = EnvParams(model="t6", n_max=2, episode_length=8)

    reset = jax.jit(batch_reset, static_argnums=(0, 2))  # op-by-op dispatch takes ~40 s here
    step = jax.jit(batch_step, static_argnums=0)

    def roll(seed):
        states, _ = reset(params, jax.random.key(seed), 4)
        out = []
        for i in range(5):
            states, obs, r, d, info = step(params, states, jnp.arange(4) * 3 % 16, jax.random.key(i))
            out.append(np.asarray(obs))
        return np.stack(out)
    assert np.array_equal(roll(1), roll(1)) and not np.array_equal(roll(1), roll(2))
    cfg, ppo = SamplerConfig(n_walkers=4, n_iterations=16), PPOConfig(n_steps=8)
    train = jax.jit(ppo_train, static_argnums=(0, 1, 2))  # compiled once, run twice
    a = train(params, cfg, ppo, jax.random.key(0))
    b = train(params, cfg, ppo, jax.random.key(0))
    c = train(params, cfg, ppo, jax.random.key(1))
    assert not np.array_equal(np.asarray(a[1].flux), np.asarray(c[1].flux))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a[0]), jax.tree_util.tree_leaves(b[0])))


def test_bad_inputs():
    with pytest.raises(ValueError, match="`flux` must hold integers"):
        solve(T6, np.full(8, 0.5))
    with pytest.raises(ValueError, match=r"`flux` must have shape \[..., 8\]"):
        solve(T6, np.zeros(7, int))
    with pytest.raises(ValueError, match="`flux` must have shape"):
        check_flux(RIGID, np.zeros((3, 8), int))
    with pytest.raises(ValueError, match="`l_max` must be >= 1"):
        EnvParams(l_max=0)
    with pytest.raises(ValueError, match="`l_max` must be >= 1"):
        enumerate_vacua(T6, n_max=1, l_max=-3)
    with pytest.raises(ValueError, match="`gs_window` must be a non-empty interval"):
        EnvParams(gs_window=(0.2, 0.2))
    with pytest.raises(ValueError, match="`w0_window` must be a non-empty interval"):
        EnvParams(w0_window=(1.0, 0.5))


def test_sharded_runs_match_unsharded():
    code = (
        "from physml_book.core.precision import enable_float64; enable_float64()\n"
        "import jax, numpy as np\n"
        "from physml_book.landscape.env import EnvParams\n"
        "from physml_book.landscape.samplers import SamplerConfig, run_sampler\n"
        "assert jax.device_count() == 4\n"
        "p = EnvParams(model='t6', n_max=2); c = SamplerConfig(n_walkers=4, n_iterations=6)\n"
        "a = run_sampler('metropolis', p, c, [0, 1, 2, 3], shard=True)\n"
        "b = run_sampler('metropolis', p, c, [0, 1, 2, 3])\n"
        "assert len(a.flux.sharding.device_set) == 4\n"
        "assert np.array_equal(np.asarray(a.flux), np.asarray(b.flux))\n"
        "assert np.array_equal(np.asarray(a.evaluation.key), np.asarray(b.evaluation.key))\n")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]


def test_agent_init_is_jax_orthogonal_and_does_not_stall():
    # Oracle: jax.random.orthogonal per layer (the init the agent describes), and W^T W = g^2 I.
    # Then the regression: the same init vmapped over 8 seeds in a fresh process. Six separate
    # batched QRs in one program deadlocked XLA's 2-thread CPU pool (jax 0.10, 2 cores).
    from physml_book.landscape.ppo import init_agent
    shapes = [(13, 64), (64, 64), (64, 16), (13, 64), (64, 64), (64, 1)]
    gains = [np.sqrt(2), np.sqrt(2), 0.01, np.sqrt(2), np.sqrt(2), 1.0]
    with float64():
        agent = init_agent(jax.random.key(11), 13, 16)
        keys = jax.random.split(jax.random.key(11), 6)
        for layer, k, s, g in zip(agent["policy"] + agent["value"], keys, shapes, gains):
            ref = jax.random.orthogonal(k, max(s))[: s[0], : s[1]] * g
            np.testing.assert_allclose(layer["w"], ref, rtol=1e-12, atol=1e-14)
            w = np.asarray(layer["w"])
            gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            np.testing.assert_allclose(gram, g**2 * np.eye(min(s)), rtol=1e-10, atol=1e-12)
    code = ("import jax, jax.numpy as jnp\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "from physml_book.landscape.ppo import init_agent\n"
            "ks = jnp.stack([jax.random.key(i) for i in range(8)])\n"
            "for _ in range(20):\n"
            "    jax.block_until_ready(jax.jit(jax.vmap(lambda k: init_agent(k, 13, 16)))(ks))\n"
            "print('done')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-3000:]
