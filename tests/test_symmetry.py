"""Library tests for the symmetry chapter (hamiltonian, hnn, scnn, scnn_experiments).

Oracles: closed forms, conservation laws, Poisson brackets of known canonical maps, scipy's
solve_ivp and scikit-learn's LinearRegression as independent implementations.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp
from sklearn.linear_model import LinearRegression

from physml_book import hamiltonian as ham
from physml_book import hnn, scnn
from physml_book.core.precision import float64
from physml_book.core.testing import assert_close
from physml_book.core.train import NonFiniteError
from physml_book.scnn_experiments import SymmetryConfig, run_symmetry_experiment


# ---------------------------------------------------------------- hamiltonian
def test_symplectic_matrix_properties():
    with float64():
        for n in (1, 3):
            om = ham.symplectic_matrix(n)
            assert_close(om @ om.T, jnp.eye(2 * n))
            assert_close(om + om.T, jnp.zeros((2 * n, 2 * n)))


def test_spring_integration_matches_closed_form():
    with float64():
        z0 = jnp.array([[0.4, -0.9], [1.0, 0.2]])
        ts = jnp.linspace(0, 10, 41)
        traj = ham.integrate(ham.hamiltonian_vector_field(ham.spring_H), z0, ts,
                             rtol=1e-12, atol=1e-12)
        assert_close(traj, ham.spring_solution(z0, ts), rtol=1e-8, atol=1e-9)


def test_kepler_orbit_matches_scipy():
    with float64():
        z0 = np.array([1.0, 0.0, 0.1, 0.9])
        ts = np.linspace(0, 12, 25)
        ours = np.asarray(ham.integrate(ham.hamiltonian_vector_field(ham.kepler_H), z0, ts,
                                        rtol=1e-11, atol=1e-11))

    def rhs(t, z):
        r3 = np.hypot(z[0], z[1]) ** 3
        return [z[2], z[3], -z[0] / r3, -z[1] / r3]
    ref = solve_ivp(rhs, (0, 12), z0, t_eval=ts, rtol=1e-12, atol=1e-12, method="DOP853").y.T
    assert_close(ours, ref, rtol=1e-7, atol=1e-8)


def test_leapfrog_kepler_invariants():
    with float64():
        z0 = jnp.array([0.5, 0.0, 0.0, np.sqrt(3.0)])  # e = 0.5, a = 1, period 2 pi
        orbit = ham.leapfrog(ham.kepler_H, z0, 2 * np.pi / 300, 300 * 50, save_every=30)
        dL = ham.angular_momentum(orbit) - ham.angular_momentum(z0)
        dE = ham.kepler_H(orbit) - ham.kepler_H(z0)
        assert float(jnp.abs(dL).max()) < 1e-12
        half = orbit.shape[0] // 2
        # bounded energy error: no growth from the first half of the run to the second
        assert float(jnp.abs(dE[half:]).max()) < 1.2 * float(jnp.abs(dE[:half]).max())


def test_invariants_commute_with_hamiltonians():
    with float64():
        z = jax.random.uniform(jax.random.key(0), (20, 4), minval=0.4, maxval=1.2)
        for f in (ham.angular_momentum, lambda x: ham.runge_lenz(x)[0],
                  lambda x: ham.runge_lenz(x)[1]):
            assert_close(ham.poisson_bracket(f, ham.kepler_H, z), jnp.zeros(20), atol=1e-12)
        z2 = jax.random.normal(jax.random.key(1), (20, 8)).at[:, 0].add(4.0)
        for f in (ham.angular_momentum, lambda x: ham.total_momentum(x)[1]):
            assert_close(ham.poisson_bracket(f, ham.two_body_H, z2), jnp.zeros(20), atol=1e-12)


@pytest.mark.parametrize("fn,n", [(ham.action_angle_map, 1), (ham.polar_map, 2),
                                  (ham.com_map, 4), (ham.com_polar_map, 4)])
def test_analytic_maps_are_canonical(fn, n):
    with float64():
        z = jax.random.normal(jax.random.key(n), (10, 2 * n))
        pb = ham.poisson_bracket_matrix(fn, z)
        assert_close(pb, jnp.broadcast_to(ham.symplectic_matrix(n), pb.shape), atol=1e-11)


def test_data_generators_are_deterministic():
    a, b = ham.two_body_data(3, n_traj=5, com_speed=0.1), ham.two_body_data(3, n_traj=5, com_speed=0.1)
    c = ham.two_body_data(4, n_traj=5, com_speed=0.1)
    assert np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], c["x"])
    s1, s2 = ham.spring_data(7, n_traj=3), ham.spring_data(7, n_traj=3)
    assert np.array_equal(s1["x"], s2["x"])


def test_hamiltonian_bad_inputs():
    with pytest.raises(ValueError, match="`z0` must have an even last axis"):
        ham.integrate(ham.hamiltonian_vector_field(ham.spring_H), np.zeros(3), [0.0, 1.0])
    with pytest.raises(ValueError, match="`z0` must be finite"):
        ham.integrate(ham.hamiltonian_vector_field(ham.spring_H), np.array([np.nan, 0.0]),
                      [0.0, 1.0])
    with pytest.raises(ValueError, match="`ts` must hold at least two strictly increasing"):
        ham.integrate(ham.hamiltonian_vector_field(ham.spring_H), np.zeros(2), [1.0, 0.0])
    with pytest.raises(ValueError, match="`save_every` must divide"):
        ham.leapfrog(ham.spring_H, np.zeros(2), 0.1, 10, save_every=3)
    with pytest.raises(ValueError, match="`z0` must have last axis 2n = 2"):
        ham.spring_solution(np.zeros(4), np.linspace(0, 1, 3))


# ---------------------------------------------------------------- hnn
def test_hnn_field_divergence_free_and_energy_conserving():
    with float64():
        model = hnn.MLP(32, 1)
        z = jax.random.normal(jax.random.key(2), (16, 6))
        params = model.init(jax.random.key(3), z[0])
        field = hnn.hnn_field(model)
        jac = jax.vmap(jax.jacfwd(lambda x: field(x, params)))(z)
        assert float(jnp.abs(jnp.trace(jac, axis1=1, axis2=2)).max()) < 1e-12
        grad_h = jax.vmap(jax.grad(lambda x: hnn.NetworkHamiltonian(model)(x, params)))(z)
        assert float(jnp.abs(jnp.sum(grad_h * field(z, params), -1)).max()) < 1e-12


def test_compare_baseline_hnn_is_deterministic():
    cfg = hnn.SpringHNNConfig.quick().replace(steps=10, n_traj=4, n_seeds=1, n_rollouts=2,
                                              rollout_points=4)
    a, b = hnn.compare_baseline_hnn(cfg), hnn.compare_baseline_hnn(cfg)
    for kind in ("baseline", "hnn"):
        assert np.array_equal(a[kind]["test_loss"], b[kind]["test_loss"])
        assert np.array_equal(a[kind]["traj"], b[kind]["traj"], equal_nan=True)


def test_train_ensemble_stops_on_nonfinite():
    model = hnn.MLP(8, 2)
    keys = jax.random.split(jax.random.key(0), 2)
    x = np.ones((16, 2), np.float32)
    bad = np.full((16, 2), np.inf, np.float32)
    with pytest.raises(NonFiniteError):
        hnn.train_ensemble(hnn.derivative_loss(hnn.baseline_field(model)),
                           hnn.init_ensemble(model, keys, 2), optax.adam(1e-3), (x, bad),
                           steps=5, keys=keys)


def test_invariant_error_closed_form():
    traj = np.zeros((1, 4, 2))
    traj[0, :, 0] = [1.0, 2.0, 3.0, 4.0]  # q grows, p = 0: E = q^2
    want = np.mean((np.array([1.0, 4.0, 9.0, 16.0]) - 1.0) ** 2)
    assert_close(hnn.invariant_error(lambda z: z[..., 0] ** 2 + z[..., 1] ** 2, traj), [want])


# ---------------------------------------------------------------- scnn
def _kepler_latent_H(Z):
    return 0.5 * Z[3] ** 2 + Z[2] ** 2 / (2 * Z[1] ** 2) - 1.0 / Z[1]


def test_scnn_terms_vanish_for_polar_map():
    with float64():
        z = jnp.asarray(ham.kepler_data(2, n_traj=3)["x"].reshape(-1, 4))
        dz = ham.hamiltonian_vector_field(ham.kepler_H)(z)
        terms = scnn.scnn_terms(ham.polar_map, _kepler_latent_H, z, dz, scnn.cyclic_mask(2, 1))
        for v in terms.values():
            assert abs(float(v)) < 1e-20


@pytest.mark.parametrize("scale_p", [0.5, 2.0, 3.0])
def test_canonical_loss_of_momentum_scaling(scale_p):
    with float64():
        z = jax.random.normal(jax.random.key(0), (8, 4))
        terms = scnn.scnn_terms(lambda x: x * jnp.array([1, 1, scale_p, scale_p]),
                                lambda Z: jnp.sum(Z ** 2), z, z, scnn.cyclic_mask(2, 0))
        # J Omega J^T = s Omega, so the loss is (s - 1)^2 ||Omega||_F^2 = 4 (s - 1)^2
        assert_close(terms["canon"], 4 * (scale_p - 1) ** 2)


def test_fit_invariant_matches_sklearn():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 4))
    y = 0.3 + 2 * z[:, 0] * z[:, 3] - z[:, 1] + 0.1 * rng.normal(size=200)
    lib = {"a": lambda x: x[:, 0] * x[:, 3], "b": lambda x: x[:, 1]}
    ours = scnn.fit_invariant(y, z, lib)
    feats = np.column_stack([f(z) for f in lib.values()])
    ref = LinearRegression().fit(feats, y)
    assert_close(np.array(list(ours["coef"].values())), ref.coef_, rtol=1e-9, atol=1e-12)
    assert_close(ours["intercept"], ref.intercept_, rtol=1e-9, atol=1e-12)
    assert_close(ours["r2"], ref.score(feats, y), rtol=1e-9, atol=1e-12)


def test_scnn_bad_inputs():
    with pytest.raises(ValueError, match="`n_cyclic` = 5 exceeds the 4 degrees of freedom"):
        scnn.SCNN(4).init(jax.random.key(0), 5)
    with pytest.raises(ValueError, match="`z` must have an even last axis"):
        scnn.scnn_terms(ham.polar_map, _kepler_latent_H, np.ones((3, 5)), np.ones((3, 5)),
                        scnn.cyclic_mask(2, 1))
    with pytest.raises(ValueError, match="`values` must be finite"):
        scnn.fit_invariant(np.array([1.0, np.nan]), np.ones((2, 2)), {"a": lambda x: x[:, 0]})


def test_symmetry_experiment_is_deterministic():
    cfg = SymmetryConfig.quick().replace(task="kepler", steps=10, n_traj=5, max_cyclic=1,
                                         sweep_cyclic=-1, rollout_points=4, n_rollouts=2)
    a, b = run_symmetry_experiment(cfg), run_symmetry_experiment(cfg)
    for kind in ("baseline", "hnn", "scnn"):
        assert np.array_equal(a[kind]["test_loss"], b[kind]["test_loss"])
    assert np.array_equal(a["scnn"]["test_terms"]["canon"], b["scnn"]["test_terms"]["canon"])
