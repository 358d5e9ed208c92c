"""Oracle checks of the Calabi–Yau metrics chapter (physml_book.cy), small, in float64.

Every check compares with something our code does not compute: closed forms, topological
integrals, exact fixed points, symmetries, scipy/numpy/sympy. The notebooks of the chapter
run further checks of the same kind (Chern–Weil integrals of the scalar curvature, patch
and dependent-coordinate invariance, optimised H against balanced) at quick scale in
`make test`; they are not repeated here.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from scipy import stats

from physml_book.core.precision import float64
from physml_book.core.testing import assert_close
from physml_book.cy.ansatz import AlgebraicMetric, Basis, fs_h, reduced_dimension
from physml_book.cy.donaldson import (
    balanced_metric,
    balanced_metric_symmetric,
    class_blocks,
    invariant_mask,
    section_classes,
    t_operator,
    t_operator_symmetric,
)
from physml_book.cy.measures import eta_on, sigma, volume_k
from physml_book.cy.optimise import fit
from physml_book.cy.projective import complex_hessian, fs_metric, sample_projective
from physml_book.cy.sampling import sample
from physml_book.cy.variety import Hypersurface, bicubic, dwork, fermat


@pytest.fixture(autouse=True)
def _x64():
    with float64():
        yield


def random_h(key, n, spread=0.3):
    r = jax.random.normal(key, (n, n), complex)
    return jnp.eye(n) + spread * (r + r.conj().T) / np.sqrt(n)


def test_points_solve_q_at_generic_degenerate_and_near_conifold_moduli():
    X = dwork(4)
    psis = jnp.array(
        [
            [0.0],
            [0.3 + 0.2j],
            [1.0],
            [1 - 1e-6],
            [np.exp(0.4j * np.pi) * (1 + 1e-8)],
            [1e3],
        ]
    )
    s = sample(X, jax.random.key(0), 500, psis)
    assert float(X.residual(s.z, psis[:, None, :]).max()) < 1e-12
    assert bool(jnp.all(jnp.isfinite(s.weights)) & jnp.all(s.weights > 0))
    for Y in (fermat(2, degree=2),):
        sy = sample(Y, jax.random.key(1), 300)
        assert float(Y.residual(sy.z).max()) < 1e-12
        assert sy.z.shape[0] % sum(Y.degrees) == 0  # deg Q points per line, not n + 1


def test_line_sampler_is_fubini_study_on_the_conic():
    # the conic x²+y²+z² = 0 is a unitary image of the Veronese P¹, so u ~ Uniform(0, 1)
    s = sample(fermat(2, degree=2), jax.random.key(2), 8000)
    x, y = np.asarray(s.z[:, 0]), np.asarray(s.z[:, 1])
    u = np.abs(x - 1j * y) / (np.abs(x - 1j * y) + np.abs(x + 1j * y))
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_kahler_class_volume_for_random_h():
    for X, k, psi in [(dwork(4), 2, jnp.array([0.3 + 0.4j])), (bicubic(), 1, None)]:
        basis = Basis.reduced(X, k) if min(X.degrees) <= k else Basis.full(X.ambient, k)
        m = AlgebraicMetric(X, basis)
        s = sample(X, jax.random.key(3), 6000, psi)
        est = volume_k(eta_on(m, random_h(jax.random.key(k), m.size), s), s.weights)
        assert abs(est.value - X.kahler_volume()) < 5 * est.error, (X.name, est)


def test_holomorphic_derivative_conventions_on_p1():
    # g = ∂∂̄ (1/π) log(1 + |x|²) = 1/(π (1 + |x|²)²); jax.grad of a real f is 2 ∂f/∂x
    x = jnp.array([0.4 - 0.3j])
    h = complex_hessian(lambda x, xb: jnp.log(1 + jnp.sum(x * xb)) / jnp.pi)(x)
    assert_close(h, jnp.array([[1 / (jnp.pi * (1 + 0.25) ** 2)]]))
    f = lambda z: -jnp.imag(z)
    assert_close(jax.grad(f)(0.3 + 0.7j), 1j)  # 2 ∂f/∂x = i, not 2 ∂f/∂x̄ = -i
    assert_close(fs_metric(jnp.array([1.0, x[0]]))[1:, 1:], h)


def test_closed_form_metric_matches_autodiff_and_fs():
    X = fermat(4)
    basis = Basis.full(X.ambient, 3)
    m = AlgebraicMetric(X, basis)
    h = random_h(jax.random.key(8), basis.size)
    z = sample_projective(jax.random.key(9), X.ambient, 1)[
        0
    ]  # the ambient form needs no X
    k_holo = lambda z, zb: jnp.log(basis._sections(zb) @ h @ basis._sections(z)) / (
        3 * jnp.pi
    )
    assert_close(m._ambient_metric(h, z), complex_hessian(k_holo)(z), rtol=1e-9)
    assert_close(
        m._ambient_metric(fs_h(basis), z), fs_metric(z), rtol=1e-10, atol=1e-13
    )


def test_t_operator_has_the_exact_balanced_fixed_point_on_projective_space():
    basis = Basis.full((2,), 2)
    z = sample_projective(jax.random.key(10), (2,), 40_000)
    w = jnp.ones(z.shape[0])
    h_fs = fs_h(basis)
    parts = jnp.stack([t_operator(basis, h_fs, z[i::8], w[i::8]) for i in range(8)])
    zscore = jnp.abs(parts.mean(0) - jnp.linalg.inv(h_fs)) / (
        parts.std(0) / np.sqrt(8) + 1e-300
    )
    assert float(zscore.max()) < 5
    res = balanced_metric(
        basis, z, w, n_iter=10, h0=random_h(jax.random.key(11), basis.size)
    )
    ratio = jnp.real(jnp.diag(res.h) / jnp.diag(h_fs))
    assert float(jnp.max(jnp.abs(ratio / ratio.mean() - 1))) < 0.05


def test_balanced_h_commutes_with_the_fermat_symmetries():
    X = fermat(4)
    basis = Basis.full(X.ambient, 2)
    s = sample(X, jax.random.key(12), 16_000)
    h = balanced_metric(basis, s.z, s.weights, n_iter=8).h
    nb = 32  # many batches: the errors are themselves noisy
    parts = jnp.stack(
        [t_operator(basis, h, s.z[i::nb], s.weights[i::nb]) for i in range(nb)]
    )
    t, se = parts.mean(0), parts.std(0) / np.sqrt(nb)
    mask = invariant_mask(section_classes(basis, X))
    assert not mask[~np.eye(basis.size, dtype=bool)].any()  # diagonal for k < 5
    assert float(jnp.max(jnp.where(mask, 0, jnp.abs(t) / se))) < 5.5
    orbit = np.array([str(sorted(e)) for e in basis.exponents])
    d, de = jnp.real(jnp.diag(t)), jnp.real(jnp.diag(se))
    for o in set(orbit):
        sel = orbit == o
        assert float(jnp.max(jnp.abs(d[sel] - d[sel].mean()) / de[sel])) < 5


def test_symmetric_t_operator_equals_dense_on_invariant_entries():
    X = fermat(4)
    basis = Basis.reduced(X, 5)
    blocks = class_blocks(section_classes(basis, X))
    assert len(blocks.singles) == 121 and blocks.blocks.shape == (1, 4)
    s = sample(X, jax.random.key(13), 2000)
    mask = invariant_mask(section_classes(basis, X))
    h = jnp.where(mask, random_h(jax.random.key(14), basis.size, 0.1), 0)
    assert_close(
        t_operator_symmetric(basis, blocks, h, s.z, s.weights),
        jnp.where(mask, t_operator(basis, h, s.z, s.weights), 0),
        rtol=1e-11,
        atol=1e-14,
    )


def test_balanced_sigma_decreases_with_k():
    X = fermat(4)
    test = sample(X, jax.random.key(15), 2000)
    sig = []
    for k in (1, 2, 3):
        basis = Basis.reduced(X, k)
        pts = sample(X, jax.random.key(16 + k), 16_000)
        h = balanced_metric_symmetric(basis, X, pts.z, pts.weights, n_iter=6).h
        sig.append(sigma(eta_on(AlgebraicMetric(X, basis), h, test), test.weights))
    assert (
        sig[0].value
        > sig[1].value + 5 * sig[1].error
        > sig[2].value + 10 * sig[2].error
    )
    assert abs(sig[0].value - 0.372) < 5 * sig[0].error  # k = 1: Fubini–Study


def test_reduced_basis_is_a_basis_on_x():
    X = fermat(4)
    z = sample(X, jax.random.key(22), 2000).z
    for basis, rank in [(Basis.full(X.ambient, 5), 125), (Basis.reduced(X, 5), 125)]:
        sv = np.linalg.svd(np.asarray(basis.sections(z)), compute_uv=False)
        assert int(np.sum(sv > 1e-10 * sv[0])) == rank
    assert Basis.reduced(X, 6).size == reduced_dimension((4,), (5,), 6) == 205
    assert Basis.reduced(bicubic(), 4).size == (
        math.comb(6, 2) ** 2 - math.comb(3, 2) ** 2
    )


def test_sympy_round_trip_and_determinism():
    # same key, same points; the optimiser's determinism is checked the same way below
    z = sp.symbols("z0:5")
    psi = sp.Symbol("psi")
    Y = Hypersurface.from_sympy(sum(v**5 for v in z) - 5 * psi * sp.prod(z), z, [psi])
    pts = sample_projective(jax.random.key(23), (4,), 6)
    m = jnp.array([0.2 - 0.7j])
    assert_close(Y.defining(pts, m), dwork(4).defining(pts, m))
    a = sample(dwork(4), jax.random.key(24), 200, m)
    b = sample(dwork(4), jax.random.key(24), 200, m)
    assert bool(jnp.all(a.z == b.z) & jnp.all(a.weights == b.weights))


def test_fit_is_deterministic_and_stops_on_nan():
    loss = lambda p, key: jnp.sum((p["x"] - jax.random.normal(key, (3,))) ** 2)
    opt = optax.adam(0.1)
    p1, h1 = fit(
        loss, {"x": jnp.zeros(3)}, opt, jax.random.key(0), steps=20, log_every=10
    )
    p2, h2 = fit(
        loss, {"x": jnp.zeros(3)}, opt, jax.random.key(0), steps=20, log_every=10
    )
    assert_close(p1, p2) and np.array_equal(h1.loss, h2.loss)
    bad = lambda p, key: jnp.where(p["x"][0] > 0.5, jnp.nan, loss(p, key))
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(bad, {"x": jnp.zeros(3)}, optax.sgd(1.0), jax.random.key(0), steps=20)


def test_bad_input_raises_value_errors_naming_the_problem():
    z = sp.symbols("z0:5")
    psi = sp.Symbol("psi")
    with pytest.raises(ValueError, match="homogeneous"):
        Hypersurface.from_sympy(z[0] ** 5 + z[1] ** 3, z)
    with pytest.raises(ValueError, match="`moduli` must have a last axis of 1"):
        dwork(4).defining(jnp.ones(5), jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="`k` must be >= 1"):
        Basis.full(fermat(4).ambient, 0)
    with pytest.raises(ValueError, match="`k` must be >= 1"):
        Basis.reduced(fermat(4), 0)
    X = dwork(4)
    m = AlgebraicMetric(X, Basis.full(X.ambient, 1))
    with pytest.raises(ValueError, match="singular point"):
        m.eta(jnp.eye(5, dtype=complex), jnp.ones((1, 5), complex), jnp.array([1.0]))
    with pytest.raises(ValueError, match="`h` must be Hermitian"):
        m.eta(
            jnp.eye(5) + 1j * jnp.eye(5, k=1), jnp.ones((1, 5)) * 0.5, jnp.array([0.0])
        )
    with pytest.raises(ValueError, match="`n_points` must be >= 1"):
        sample(X, jax.random.key(0), 0, jnp.array([0.1]))
    with pytest.raises(ValueError, match="neither coordinates nor moduli"):
        Hypersurface.from_sympy(z[0] ** 5 + psi * z[1] ** 5, z)
