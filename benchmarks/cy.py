"""Throughput of the Calabi–Yau metrics chapter (physml_book.cy), against baselines.

    python benchmarks/cy.py         # default sizes (a minute on 2 idle cores)
    python benchmarks/cy.py --full  # NumPy baselines at every size (slower)

The issue names CYJAX (arXiv:2211.12520) as the anchor. CYJAX is not on PyPI and this
machine reaches nothing but package registries, so it cannot be installed and is NOT
timed here. Each item is compared instead with a baseline computing the same quantity
in the same run:

* sampling (Fermat quintic, float64, points with Ω-weights): a vectorised NumPy version
  of the same line sampler (companion-matrix eigenvalues), and, for the roots alone, the
  companion-matrix eigenvalue solver that `jnp.roots` (and CYJAX) use;
* a T-operator step at k = 3, 4, 5 on 10 N² + 50 000 points: the same dense estimate
  in NumPy, against our dense (jit, chunked) and symmetric (phase classes) versions;
* η at k = 4 against a vectorised NumPy version, and one optimisation step at k = 4
  (2 000 fresh points, gradient of the Monge–Ampère loss), reported with its parts.

Times are medians of repeated runs after a warm-up (compilation excluded), float64.
"""

import argparse
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from physml_book.core.precision import enable_float64
from physml_book.cy.ansatz import AlgebraicMetric, Basis
from physml_book.cy.donaldson import (
    class_blocks,
    donaldson_points,
    section_classes,
    t_operator,
    t_operator_symmetric,
)
from physml_book.cy.measures import eta_on, monge_ampere_loss
from physml_book.cy.optimise import cholesky_init, cholesky_to_h, sampled_loss
from physml_book.cy.sampling import _sample, sample
from physml_book.cy.variety import fermat


def timed(fn, repeat=3):
    "Median wall time of `fn()` over `repeat` runs after one warm-up run."
    jax.block_until_ready(fn())
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


# ------------------------------------------------------------------ NumPy baselines
def numpy_sample_quintic(rng, n_points):
    "The line sampler for Σ z^5 = 0 in plain NumPy: points and Ω-weights."
    L = -(-n_points // 5)

    def sphere():
        v = rng.standard_normal((L, 5)) + 1j * rng.standard_normal((L, 5))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    p, q = sphere(), sphere()
    # Σ_i (p_i + t q_i)^5 = Σ_l C(5, l) (Σ_i p_i^(5-l) q_i^l) t^l
    coef = np.stack(
        [math.comb(5, l) * np.sum(p ** (5 - l) * q**l, 1) for l in range(6)], 1
    )
    comp = np.zeros((L, 5, 5), complex)
    comp[:, 1:, :-1] = np.eye(4)
    comp[:, :, -1] = -coef[:, :5] / coef[:, 5:]
    t = np.linalg.eigvals(comp)  # [L, 5]
    z = (p[:, None, :] + t[..., None] * q[:, None, :]).reshape(-1, 5)
    z = z / z[np.arange(len(z)), np.abs(z).argmax(1)][:, None]
    G = 5 * z**4
    patch = np.abs(z).argmax(1)
    Gm = np.abs(G).copy()
    Gm[np.arange(len(z)), patch] = -1
    dep = Gm.argmax(1)
    free = np.ones_like(z, bool)
    free[np.arange(len(z)), patch] = False
    free[np.arange(len(z)), dep] = False
    local = np.sort(np.argsort(~free, axis=1, kind="stable")[:, :3], axis=1)
    n = len(z)
    J = np.zeros((n, 3, 5), complex)
    J[np.arange(n)[:, None], np.arange(3)[None], local] = 1
    J[np.arange(n)[:, None], np.arange(3)[None], dep[:, None]] = (
        -np.take_along_axis(G, local, 1) / G[np.arange(n), dep][:, None]
    )
    r2 = np.sum(np.abs(z) ** 2, 1)[:, None, None]
    g = (np.eye(5) / r2 - z.conj()[:, :, None] * z[:, None, :] / r2**2) / np.pi
    gx = J @ g @ np.conj(np.transpose(J, (0, 2, 1)))
    det = np.real(np.linalg.det(gx))
    w = 5.0 / (math.factorial(3) * det * np.abs(G[np.arange(n), dep]) ** 2)
    return z, w


def numpy_sections(exponents, z):
    return np.prod(z[:, None, :] ** exponents[None], axis=-1)


def numpy_t_operator(exponents, h, z, w, chunk=20_000):
    "T(H) = N/Σw Σ w s s†/(s† H s) in NumPy (chunked matrix products)."
    N = len(exponents)
    T = np.zeros((N, N), complex)
    for i in range(0, len(z), chunk):
        s = numpy_sections(exponents, z[i : i + chunk])
        psi = np.real(np.sum(s.conj() * (s @ h.T), 1))
        T += (s * (w[i : i + chunk] / psi)[:, None]).T @ s.conj()
    return N * T / w.sum()


def numpy_eta(exponents, k, h, z, jac, gdep2):
    "η = det(J ĝ J†) |∂_δ Q|² for the algebraic metric, vectorised NumPy."
    E = exponents
    s = numpy_sections(E, z)  # [n, N]
    nv = z.shape[1]
    D = np.stack(
        [
            E[:, i][None]
            * np.prod(
                z[:, None, :] ** np.maximum(E - np.eye(nv, dtype=int)[i], 0)[None], -1
            )
            for i in range(nv)
        ],
        -1,
    )  # [n, N, nv]
    hs, hD = s @ h.T, np.einsum("ab,nbi->nai", h, D)
    psi = np.real(np.sum(s.conj() * hs, 1))
    dpsi = np.einsum("na,nai->ni", s.conj(), hD)
    dd = np.einsum("naj,nai->nij", D.conj(), hD)
    gh = (
        dd / psi[:, None, None]
        - dpsi[:, :, None] * dpsi.conj()[:, None, :] / psi[:, None, None] ** 2
    ) / (np.pi * k)
    g = jac @ gh @ np.conj(np.transpose(jac, (0, 2, 1)))
    return np.real(np.linalg.det(g)) * gdep2


# ------------------------------------------------------------------ JAX eig variant
def eig_roots(coeffs):
    "Roots from companion-matrix eigenvalues (the `jnp.roots` method)."
    D = coeffs.shape[0] - 1
    a = (coeffs / coeffs[-1]).T  # [L, D + 1]
    comp = jnp.zeros(a.shape[:1] + (D, D), a.dtype).at[:, 1:, :-1].set(jnp.eye(D - 1))
    comp = comp.at[:, :, -1].set(-a[:, :D])
    return jnp.linalg.eigvals(comp)


LIMITS = """What limits each:
  sampling: polynomial evaluations (Q at D+1 nodes per line, Q and dQ in two Newton
    polishing steps), not root finding; the NumPy baseline is specialised to the Fermat
    quintic (closed-form line coefficients, no polishing: residuals 1e-12, not 1e-15);
  dense T-step: two complex matrix products of size N_p x N x N;
  symmetric T-step: evaluating the N sections at every point;
  optimisation step: the N^2 x n_vars products in the metric and their gradients."""


def main(full: bool):
    enable_float64()
    X = fermat(4)
    c = X.coefficients(jnp.zeros(0))
    rows = []
    print(
        f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        "float64"
    )
    print(
        "CYJAX (the issue's anchor) is not installable offline and is not timed; "
        "baselines below run in this process.\n"
    )

    # 1. sampling
    n = 200_000
    key = jax.random.key(0)
    t_ours = timed(lambda: _sample(X, key, c, n, None).weights)
    rng = np.random.default_rng(0)
    t_np = timed(lambda: numpy_sample_quintic(rng, n)[1], repeat=1 if not full else 3)
    s_ours = _sample(X, key, c, n, None)
    _, w_np = numpy_sample_quintic(np.random.default_rng(1), n)
    vol_ours, vol_np = float(s_ours.weights.mean()), float(w_np.mean())
    # root finding alone: Aberth (ours) against companion-matrix eigenvalues
    from physml_book.cy.sampling import aberth_roots

    coeffs = jax.random.normal(jax.random.key(1), (6, n // 5), complex)
    t_ab = timed(lambda: jax.jit(aberth_roots)(coeffs))
    t_eig = timed(lambda: jax.jit(eig_roots)(coeffs))
    print(f"sampling, Fermat quintic, {n} points with weights:")
    print(f"  ours (jit, Aberth + polish)  {n / t_ours:12.0f} points/s")
    print(f"  NumPy (eigvals, vectorised)   {n / t_np:12.0f} points/s")
    print(f"  ours / NumPy: {t_np / t_ours:.1f}x")
    print(
        f"  root finding only: Aberth {n / t_ab:.0f} roots/s, "
        f"companion eig {n / t_eig:.0f} roots/s ({t_eig / t_ab:.1f}x)"
    )
    print(
        f"  Vol_Omega: ours {vol_ours:.3f}, NumPy {vol_np:.3f} "
        "(same estimator, independent code)\n"
    )

    # 2. T-operator steps
    print("T-operator step (10 N^2 + 50 000 points; sections recomputed each step):")
    for k in (3, 4, 5):
        basis = Basis.reduced(X, k)
        n_p = donaldson_points(basis.size)
        pts = sample(X, jax.random.key(10 + k), n_p)
        h = jnp.eye(basis.size, dtype=complex)
        blocks = class_blocks(section_classes(basis, X))
        t_dense = timed(lambda: t_operator(basis, h, pts.z, pts.weights), repeat=2)
        t_sym = timed(
            lambda: t_operator_symmetric(basis, blocks, h, pts.z, pts.weights), repeat=2
        )
        zn, wn, hn = np.asarray(pts.z), np.asarray(pts.weights), np.asarray(h)
        if k < 5 or full:
            t_npy = timed(
                lambda: numpy_t_operator(basis.exponents, hn, zn, wn), repeat=1
            )
            np_txt = f"NumPy {t_npy:6.2f} s  (dense/NumPy {t_npy / t_dense:.1f}x)"
        else:
            zs, ws = zn[:50_000], wn[:50_000]
            t_npy = timed(
                lambda: numpy_t_operator(basis.exponents, hn, zs, ws), repeat=1
            )
            np_txt = f"NumPy {t_npy * n_p / 50_000:6.2f} s (from 50 000 points, scaled)"
        print(
            f"  k={k} N={basis.size:>3} points={n_p:>7}: dense {t_dense:6.2f} s, "
            f"symmetric {t_sym:6.3f} s, {np_txt}"
        )
    print()

    # 3. metric evaluations and one optimisation step at k = 4
    basis = Basis.full(X.ambient, 4)
    metric = AlgebraicMetric(X, basis)
    pts = sample(X, jax.random.key(20), 20_000)
    h = cholesky_to_h(
        jax.tree_util.tree_map(
            lambda a: a + 0.01 * jax.random.normal(jax.random.key(21), a.shape),
            cholesky_init(basis.size),
        )
    )
    f_eta = jax.jit(lambda h: eta_on(metric, h, pts))
    t_eta = timed(lambda: f_eta(h))
    args = [np.asarray(a) for a in (pts.z, pts.jac, pts.gdep2)]
    t_eta_np = timed(
        lambda: numpy_eta(basis.exponents, 4, np.asarray(h), *args), repeat=1
    )
    err = np.max(
        np.abs(
            numpy_eta(basis.exponents, 4, np.asarray(h), *args) / np.asarray(f_eta(h))
            - 1
        )
    )
    print(
        f"eta at k=4 (N=70), 20 000 points: ours {2e4 / t_eta:.0f} /s, "
        f"NumPy {2e4 / t_eta_np:.0f} /s ({t_eta_np / t_eta:.1f}x); "
        f"max relative difference {err:.1e}"
    )
    loss = sampled_loss(metric, cholesky_to_h, 2_000)
    opt = optax.adam(1e-3)
    p0 = cholesky_init(basis.size)
    state = opt.init(p0)

    @jax.jit
    def step(p, state, key):
        l, g = jax.value_and_grad(loss)(p, key)
        u, state = opt.update(g, state, p)
        return optax.apply_updates(p, u), state, l

    t_step = timed(lambda: step(p0, state, jax.random.key(3))[2], repeat=5)
    t_samp = timed(
        lambda: _sample(X, jax.random.key(3), c, 2_000, None).weights, repeat=5
    )
    print(
        f"one optimisation step, k=4 (4 900 parameters), 2 000 fresh points: "
        f"{t_step * 1e3:.0f} ms (of which sampling {t_samp * 1e3:.0f} ms)"
    )
    print("\nGoals on 2 CPU cores (issue 6): >= 2e5 points/s; k=5 T-step < 3 s.")
    print(LIMITS)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="NumPy baselines at every size")
    main(ap.parse_args().full)
