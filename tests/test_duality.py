"""Library tests of the duality chapter (physml_book.cosmo, physml_book.gd_duality).

Every check compares against something our code did not produce: closed forms, scipy's ODE
integrators and matrix exponential, sympy series, explicit recursions, or exact invariants.
"""
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.integrate
import scipy.linalg
import sympy as sp

from physml_book import cosmo, gd_duality as gdd
from physml_book.core.precision import float64
from physml_book.core.testing import assert_close


@pytest.fixture
def x64():
    with float64():
        yield


# ---------------------------------------------------------------- cosmology side
def test_homogeneous_exact_against_scipy():
    for m2 in (0.0, 0.4, 2.25, 7.0, -0.3):
        sol = scipy.integrate.solve_ivp(lambda t, y: [y[1], -3 * 0.9 * y[1] - m2 * y[0]],
                                        (0, 6), [0.7, -1.1], method="DOP853", rtol=1e-12,
                                        atol=1e-13, t_eval=np.linspace(0, 6, 13))
        phi, dphi = cosmo.homogeneous_exact(sol.t, m2, 0.9, 0.7, -1.1)
        assert_close(phi, sol.y[0], rtol=1e-9, atol=1e-11)
        assert_close(dphi, sol.y[1], rtol=1e-9, atol=1e-11)


def test_massless_terminal_value_and_rates():
    phi, _ = cosmo.homogeneous_exact(200.0, 0.0, 0.3, 2.0, 0.6)
    assert_close(phi, 2.0 + 0.6 / (3 * 0.3))
    slow, fast = cosmo.damping_rates(np.array([0.0, 1.0]), 1.0)
    assert_close(slow + fast, np.full(2, 3.0))          # sum of roots = -3H
    assert_close(slow * fast, np.array([0.0, 1.0]))     # product of roots = m^2


def test_solve_homogeneous_nonlinear_against_scipy(x64):
    dV = lambda p: p + 0.5 * p**3
    ts = np.linspace(0.0, 5.0, 11)
    num = cosmo.solve_homogeneous(dV, 0.4, 1.5, 0.0, ts)
    ref = scipy.integrate.solve_ivp(lambda t, y: [y[1], -1.2 * y[1] - dV(y[0])], (0, 5),
                                    [1.5, 0.0], method="DOP853", rtol=1e-12, atol=1e-13,
                                    t_eval=ts)
    assert_close(num.phi, ref.y[0], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("m2", [0.0, 1.25, 2.0, 5.0])  # nu = 3/2, 1 (integer), 1/2, imaginary
def test_mode_exact_against_scipy(m2):
    k, H = 4.0, 1.0
    f = lambda t, y: [y[1], -3 * H * y[1] - (k**2 * np.exp(-2 * H * t) + m2) * y[0]]
    ts = np.linspace(-1.0, 3.0, 9)
    ref = scipy.integrate.solve_ivp(f, (-1, 3), [0.3, 1.0], method="DOP853", rtol=1e-12,
                                    atol=1e-13, t_eval=ts)
    d, dd = cosmo.mode_exact(ts, k, m2, H, 0.3, 1.0, t0=-1.0)
    assert_close(d, ref.y[0], rtol=1e-8, atol=1e-10)
    assert_close(dd, ref.y[1], rtol=1e-8, atol=1e-9)


def test_solve_mode_matches_bunch_davies(x64):
    t = np.linspace(-2.0, 4.0, 7)
    for m2 in (0.0, 0.8):
        u0, du0 = cosmo.bunch_davies(-2.0, 3.0, m2, 0.6)
        num = cosmo.solve_mode(3.0, m2, 0.6, u0, du0, t)
        assert_close(num.phi, cosmo.bunch_davies(t, 3.0, m2, 0.6)[0], rtol=1e-8, atol=1e-10)


def test_bunch_davies_wronskian_and_freeze_out():
    t = np.linspace(-2.0, 6.0, 9)
    for m2 in (0.0, 1.0, 4.0):  # light and heavy (mpmath Hankel functions)
        u, du = cosmo.bunch_davies(t, 1.5, m2, 0.8)
        w = cosmo.scale_factor(t, 0.8) ** 3 * (u * du.conj() - u.conj() * du)
        assert_close(w, np.full(t.shape, 1j), rtol=1e-7)
    u, _ = cosmo.bunch_davies_massless(40.0, 1.5, 0.8)
    assert_close(abs(u), 0.8 / math.sqrt(2 * 1.5**3), rtol=1e-12)


def test_leapfrog_second_order_and_volume(x64):
    n, dx, H, m2 = 32, 0.3, 0.4, 0.2
    x = dx * np.arange(n)
    k = 2 * np.pi * 2 / (n * dx)
    errs = []
    for dt in (0.04, 0.02):
        run = cosmo.leapfrog_field(np.cos(k * x), 0 * x, H=H, dx=dx, dt=dt, m2=m2,
                                   n_steps=int(round(2 / dt)), save_every=int(round(2 / dt)))
        ex, _ = cosmo.mode_exact(run.t, float(cosmo.lattice_k_eff(k, dx)), m2, H, 1.0, 0.0)
        errs.append(np.max(np.abs(run.phi[-1] - ex[-1] * np.cos(k * x))))
    assert abs(np.log2(errs[0] / errs[1]) - 2) < 0.1

    def flow(z):
        _, p, dp = cosmo._leapfrog(z[:6], z[6:], 0.0, 0.5, 0.4, 0.05, 0.3, 20, 20,
                                   lambda q: jnp.sin(q))
        return jnp.concatenate([p[-1], dp[-1]])
    jac = np.asarray(jax.jacfwd(flow)(jnp.linspace(-1, 1, 12)))
    assert_close(np.linalg.slogdet(jac)[1], -3 * 0.5 * 6 * 1.0, rtol=1e-10)


def test_cosmo_bad_inputs():
    with pytest.raises(ValueError, match="`H` must be > 0"): cosmo.homogeneous_exact(1.0, 0.0, -1.0, 1, 0)
    with pytest.raises(ValueError, match="`H` must be > 0"): cosmo.bunch_davies(1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="`Lambda` must be > 0"): cosmo.hubble_from_lambda(0.0)
    with pytest.raises(ValueError, match="`k` must be > 0"): cosmo.horizon_exit_time(0.0, 1.0)
    with pytest.raises(ValueError, match="unstable"):
        cosmo.leapfrog_field(np.zeros(4), np.zeros(4), H=1.0, dx=0.1, dt=0.2, n_steps=2)
    with pytest.raises(ValueError, match="multiple of `save_every`"):
        cosmo.leapfrog_field(np.zeros(4), np.zeros(4), H=1.0, dx=1.0, dt=0.1, n_steps=5,
                             save_every=2)
    with pytest.raises(ValueError, match="strictly increasing"):
        cosmo.solve_mode(1.0, 0.0, 1.0, 1.0, 0.0, np.array([0.0, 0.0]))


# ---------------------------------------------------------------- dictionary
def test_dictionary_against_sympy_expansion():
    dt, eta, beta, a, v, acc, g = sp.symbols("dt eta beta a v acc g")
    shift = lambda h: h * v + h**2 / 2 * acc  # theta(t+h) - theta(t) to second order
    poly = sp.Poly(sp.expand(shift(dt) + beta * shift(-dt) + eta * g), v, acc, g)
    fr = sp.simplify(poly.coeff_monomial(v) / poly.coeff_monomial(acc))
    sc = sp.simplify(poly.coeff_monomial(g) / poly.coeff_monomial(acc))
    for e, b in ((0.01, 0.0), (0.2, 0.7)):
        for conv in gdd.CONVENTIONS:
            p = gdd.gd_to_field_params(e, momentum=b, convention=conv)
            assert_close(p.friction, float(fr.subs({dt: p.dt, beta: b})))
            assert_close(p.potential_scale, float(sc.subs({dt: p.dt, beta: b, eta: e})))
            assert_close(p.Lambda, 3 * p.hubble**2)
    assert_close(gdd.gd_to_field_params(0.05).Lambda, 2 / (3 * 0.05))


def test_mode_rates_against_roots_and_series():
    xs = np.array([0.01, 0.2, 0.45, 0.8, 1.7])
    for beta in (0.0, 0.5, 0.9):
        r = gdd.mode_rates(xs, 1.0, momentum=beta)
        for x, ex, ds in zip(xs, r.exact, r.de_sitter):
            rho = np.roots([1, -(1 + beta - x), beta])
            assert_close(ex, -np.log(np.abs(rho).max()), rtol=1e-12)
            s = np.roots([(1 + beta) / 2, 1 - beta, x])
            assert_close(ds, -s.real.max(), rtol=1e-12)
    x = sp.symbols("x")
    series = sp.series(1 - sp.sqrt(1 - 2 * x) + sp.log(1 - x), x, 0, 5).removeO()
    assert series.coeff(x, 3) == sp.Rational(1, 6) and series.coeff(x, 2) == 0


def test_modified_equation_orders():
    x = np.geomspace(2e-3, 2e-2, 6)
    exact = -np.log1p(-x)
    for p in (1, 2, 3):
        err = gdd.modified_equation_rate(x, p) - exact
        assert_close(err[0] / x[0] ** (p + 1), (-1) ** p / math.factorial(p + 1), rtol=2e-2)
    assert_close(gdd.modified_equation_rate(x, 12), exact, rtol=1e-9)


def test_linear_gd_against_explicit_recursion():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 9)) / 3
    ntk, f0, y = A @ A.T, rng.normal(size=6), rng.normal(size=6)
    lam_max = np.linalg.eigvalsh(ntk).max()
    beta_crit = 0.6
    eta_crit = (1 - math.sqrt(beta_crit)) ** 2 / lam_max  # repeated root for the top mode
    for eta, beta in ((1.5 / lam_max, 0.0), (0.9 / lam_max, 0.8), (eta_crit, beta_crit)):
        traj = gdd.linear_gd_trajectory(ntk, f0, y, eta, 60, momentum=beta)
        prev, cur, out = f0.copy(), f0.copy(), [f0.copy()]
        for _ in range(60):
            nxt = cur - eta * ntk @ (cur - y) + beta * (cur - prev)
            prev, cur = cur, nxt
            out.append(cur)
        assert_close(traj, np.array(out), rtol=1e-10, atol=1e-10)


def test_gradient_flow_against_expm_and_desitter_slow_root():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    ntk, f0, y = A @ A.T, rng.normal(size=5), np.zeros(5)
    assert_close(gdd.gradient_flow_trajectory(ntk, f0, y, np.array([0.7]))[0],
                 scipy.linalg.expm(-0.7 * ntk) @ f0)
    lam, vecs = gdd.ntk_modes(ntk)
    eta = 0.3 / lam[0]
    u = gdd.project_on_modes(gdd.desitter_trajectory(ntk, f0, y, eta, 40), y, vecs)
    assert_close(-np.log(u[40] / u[39]), gdd.mode_rates(eta, lam).de_sitter, rtol=1e-8)


def test_fit_recovers_dictionary_and_flags_degeneracy():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(8, 20)) / 4
    ntk, f0, y = A @ A.T, rng.normal(size=8), rng.normal(size=8)
    lam, vecs = gdd.ntk_modes(ntk)
    eta, beta = 0.5 / lam[0], 0.7
    p = gdd.gd_to_field_params(eta, momentum=beta)
    u = gdd.project_on_modes(gdd.linear_gd_trajectory(ntk, f0, y, eta, 100, momentum=beta),
                             y, vecs)[:, :3].T
    fit = gdd.fit_damped_oscillator(u, p.dt)
    assert_close(fit.friction, np.full(3, p.friction), rtol=1e-8)
    assert_close(fit.m2 * p.dt**2, 2 * eta * lam[:3] / (1 + beta), rtol=1e-8)
    u = gdd.project_on_modes(gdd.linear_gd_trajectory(ntk, f0, y, eta, 50), y, vecs)[:, :3].T
    assert np.all(gdd.fit_damped_oscillator(u, 1.0).condition > 1e8)


def test_stability_errors_and_warnings():
    with pytest.raises(ValueError, match="`eta` is unstable"):
        gdd.linear_gd_trajectory(np.eye(2), np.ones(2), np.zeros(2), 2.0, 3)
    gdd.linear_gd_trajectory(np.eye(2), np.ones(2), np.zeros(2), 2.0, 3, allow_unstable=True)
    with pytest.raises(ValueError, match="`eta` is unstable"):
        gdd.check_learning_rate(0.4, 10.0, momentum=0.9)
    with pytest.raises(ValueError, match="`eta` must be > 0"): gdd.gd_to_field_params(0.0)
    with pytest.raises(ValueError, match="`eta` must be > 0"): gdd.mode_rates(-1.0, 1.0)
    with pytest.raises(ValueError, match="`momentum` must be >= 0 and < 1"):
        gdd.time_step(0.1, momentum=1.5)
    with pytest.warns(UserWarning, match="critical damping"):
        gdd.desitter_trajectory(np.eye(2), np.ones(2), np.zeros(2), 0.6, 3)
    with pytest.raises(ValueError, match="`ntk` must be square"): gdd.ntk_modes(np.ones((2, 3)))


# ---------------------------------------------------------------- ensembles
def test_ensemble_of_linear_model_is_exact(x64):
    rng = np.random.default_rng(3)
    Phi = jnp.asarray(rng.normal(size=(10, 30)) / 5)
    y = jnp.asarray(rng.normal(size=10))
    apply_fn = lambda theta, x: (x @ theta["w"])[:, None]
    params = {"w": jnp.asarray(rng.normal(size=(3, 30)))}
    ntk = np.asarray(Phi @ Phi.T)
    lam_max = np.linalg.eigvalsh(ntk).max()
    etas = jnp.array([0.3, 1.2]) / lam_max
    for beta in (0.0, 0.8):
        run = gdd.train_ensemble(apply_fn, params, Phi, y, etas, 40, momentum=beta)
        f0 = np.asarray(params["w"] @ Phi.T)
        lin = gdd.linear_gd_trajectory(ntk, f0[:, None], np.asarray(y), np.asarray(etas)[None],
                                       39, momentum=beta)
        assert_close(np.asarray(run.f), lin, rtol=1e-10, atol=1e-12)
        single = gdd.train_single(apply_fn, {"w": params["w"][1]}, Phi, y, etas[0], 40, beta)
        assert_close(np.asarray(run.f[1, 0]), np.asarray(single[1]))


def test_experiment_is_deterministic():
    cfg = gdd.DualityConfig(widths=(8, 16), n_seeds=2, eta_lams=(0.1,), n_steps=8,
                            hb_eta_lams=(0.1, 1.0), hb_widths=(8,), hb_steps=8, n_modes=2,
                            n_points=8)
    a, b = gdd.run_duality_experiment(cfg), gdd.run_duality_experiment(cfg)
    leaves = lambda t: jax.tree_util.tree_leaves(t)
    for u, v in zip(leaves(a), leaves(b)):
        np.testing.assert_array_equal(u, v)
    c = gdd.run_duality_experiment(cfg.replace(seed=1))
    assert not np.allclose(a["gd"]["w16"]["lam0"], c["gd"]["w16"]["lam0"])


def test_config_bad_inputs():
    with pytest.raises(ValueError, match="`eta` is unstable"): gdd.DualityConfig(eta_lams=(3.0,))
    with pytest.raises(ValueError, match="`n_seeds` must be >= 2"): gdd.DualityConfig(n_seeds=1)
    with pytest.raises(ValueError, match="`changes` has unknown entries"):
        gdd.DualityConfig.quick().replace(widht=3)
    with pytest.raises(ValueError, match="`etas` must be > 0"):
        gdd.train_ensemble(lambda p, x: x @ p, jnp.ones((1, 2, 1)), jnp.ones((3, 2)),
                           jnp.ones(3), jnp.array([-0.1]), 2)
