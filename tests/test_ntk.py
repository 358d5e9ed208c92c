"""Library checks of the ntk chapter: eNTK, collective variables, RND, data and statistics.

Oracles are closed forms (linear model, infinite-width ReLU kernel, entropy identities),
finite differences, SciPy and scikit-learn; none of them is our own code.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.flatten_util import ravel_pytree

from physml_book.core.precision import float64
from physml_book.core.testing import assert_close
from physml_book.datasets import (lattice_pool, load_diabetes_split, load_digits_split,
                                  min_pairwise_distance, random_subsets)
from physml_book.ntk import (MLP, collective_variables, effective_rank, empirical_ntk,
                             flat_jacobian, ntk_eigenvalues, ntk_entropy, ntk_trace,
                             relu_ntk_infinite, shannon_entropy)
from physml_book.ntk_experiments import (CorrelationConfig, bootstrap_spearman, run_correlation,
                                         spearman, train_runs)
from physml_book.rnd import farthest_point_select, random_select, rnd_select


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(7)(x))
        x = nn.relu(nn.Dense(6, use_bias=False)(x))
        return nn.Dense(3)(x)


@pytest.fixture(scope="module")
def small():
    "A small float64 network, two input sets, and its parameters."
    with float64():
        net = Net()
        xa = jax.random.normal(jax.random.key(1), (9, 4), jnp.float64)
        xb = jax.random.normal(jax.random.key(2), (5, 4), jnp.float64)
        params = _f64(net.init(jax.random.key(0), xa))
    return net, params, xa, xb


# ---------------------------------------------------------------------------- the kernel

def test_linear_model_closed_form():
    with float64():
        x1 = jax.random.normal(jax.random.key(3), (6, 4), jnp.float64)
        x2 = jax.random.normal(jax.random.key(4), (3, 4), jnp.float64)
        params = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
        apply = lambda p, x: x @ p["w"] + p["b"]
        exact = x1 @ x2.T + 1
        for strategy in ("jacobian", "ntvp", "auto"):
            full = empirical_ntk(apply, params, x1, x2, outputs="full", strategy=strategy)
            assert_close(full, exact[:, :, None, None] * jnp.eye(2))
            assert_close(empirical_ntk(apply, params, x1, x2, outputs="sum",
                                       strategy=strategy), 2 * exact)


def test_finite_difference_jacobian(small):
    "The kernel equals the contraction of a central-difference Jacobian (no autodiff)."
    net, params, xa, xb = small
    with float64():
        flat, unravel = ravel_pytree(params)
        h = 1e-6

        def fd_jac(x):
            cols = []
            for p in range(flat.shape[0]):
                e = jnp.zeros_like(flat).at[p].set(h)
                cols.append((net.apply(unravel(flat + e), x) - net.apply(unravel(flat - e), x))
                            / (2 * h))
            return np.stack(cols, -1)  # [n, k, P]

        ja, jb = fd_jac(xa), fd_jac(xb)
        expect = np.einsum("ikp,jlp->ijkl", ja, jb)
        got = empirical_ntk(net.apply, params, xa, xb, outputs="full")
        assert_close(got, expect, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("outputs", ["sum", "mean", "full"])
def test_strategies_agree_to_roundoff(small, outputs):
    net, params, xa, xb = small
    with float64():
        for pair in ((xa, None), (xa, xb)):
            ref = empirical_ntk(net.apply, params, *pair, outputs=outputs, strategy="jacobian")
            for strategy in ("structured", "ntvp", "auto"):
                for bs in (None, 2, 4):
                    got = empirical_ntk(net.apply, params, *pair, outputs=outputs,
                                        strategy=strategy, batch_size=bs)
                    assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_symmetric_psd_and_trace_identity(small):
    net, params, xa, _ = small
    with float64():
        full = empirical_ntk(net.apply, params, xa, outputs="full")
        mat = np.asarray(full).transpose(0, 2, 1, 3).reshape(27, 27)
        assert_close(mat, mat.T)
        lam = np.linalg.eigvalsh(mat)
        assert lam.min() > -1e-12 * lam.max()
        J = flat_jacobian(net.apply, params, xa)
        assert_close(ntk_trace(empirical_ntk(net.apply, params, xa)), jnp.sum(J**2))
        assert_close(ntk_trace(empirical_ntk(net.apply, params, xa, outputs="mean")),
                     jnp.sum(J**2) / 3)
        assert_close(ntk_trace(full), jnp.sum(J**2))


def test_infinite_width_limit():
    x = jax.random.normal(jax.random.key(5), (10, 5))
    limit = relu_ntk_infinite(x, depth=3, sigma_w=1.3, sigma_b=0.2)
    err = []
    for width in (32, 1024):
        net = MLP((width, width, 1), parameterization="ntk", sigma_w=1.3, sigma_b=0.2)
        th = np.mean([empirical_ntk(net.apply, net.init(jax.random.key(s), x), x)
                      for s in range(2)], 0)
        err.append(np.linalg.norm(th - limit) / np.linalg.norm(limit))
    assert err[1] < 0.1 and err[1] < 0.5 * err[0]


def test_infinite_width_two_layer_by_quadrature():
    "The arc-cosine expectation against scipy's numerical integration."
    import scipy.integrate
    a, c, r = 1.7, 0.6, 0.3  # variances and covariance of (u, v)
    cov_inv = np.linalg.inv([[a, r], [r, c]])
    norm = 1 / (2 * np.pi * np.sqrt(a * c - r * r))
    dens = lambda v, u: norm * np.exp(-0.5 * np.array([u, v]) @ cov_inv @ np.array([u, v]))
    e_phi = scipy.integrate.dblquad(lambda v, u: u * v * dens(v, u), 0, 9, 0, 9)[0]
    e_dphi = scipy.integrate.dblquad(dens, 0, 9, 0, 9)[0]
    with float64():
        # inputs whose Gram matrix (with d=2, sigma_w^2=2) is the covariance above
        x = np.array([[np.sqrt(a), 0.0], [r / np.sqrt(a), np.sqrt(c - r * r / a)]])
        theta = relu_ntk_infinite(jnp.asarray(x), depth=2, sigma_w=np.sqrt(2.0))
        assert_close(theta[0, 1], 2 * e_phi + 2 * e_dphi * r, rtol=1e-7)


def test_kernel_bad_inputs(small):
    net, params, xa, _ = small
    with float64():
        with pytest.raises(ValueError, match="`x2` samples must have the shape"):
            empirical_ntk(net.apply, params, xa, np.ones((3, 2)))
        with pytest.raises(ValueError, match="`x1` must hold at least one sample"):
            empirical_ntk(net.apply, params, xa[:0])
        with pytest.raises(ValueError, match="`x1` must be finite"):
            empirical_ntk(net.apply, params, np.full((2, 4), np.inf))
        with pytest.raises(ValueError, match="`x2` must be finite"):
            empirical_ntk(net.apply, params, xa, np.full((2, 4), np.nan))
        with pytest.raises(ValueError, match="`strategy` must be one of"):
            empirical_ntk(net.apply, params, xa, strategy="fast")
        with pytest.raises(ValueError, match="`apply_fn` failed"):
            empirical_ntk(net.apply, params, np.ones((2, 7)))


# ---------------------------------------------------------------------------- entropy

def test_entropy_identities(small):
    net, params, xa, _ = small
    with float64():
        for n in (2, 17):
            assert_close(ntk_entropy(3.0 * jnp.eye(n)), np.log(n))
            assert_close(ntk_entropy(jnp.eye(n), effective=True), 1.0)
        v = np.arange(1.0, 7.0)
        assert abs(float(ntk_entropy(np.outer(v, v)))) < 1e-12
        theta = empirical_ntk(net.apply, params, xa)
        perm = np.random.default_rng(0).permutation(9)
        assert_close(ntk_entropy(1e-6 * theta), ntk_entropy(theta))
        assert_close(ntk_entropy(theta[perm][:, perm]), ntk_entropy(theta))
        p = np.array([0.1, 0.0, 2.0, 0.7])
        assert_close(ntk_entropy(np.diag(p)), scipy.stats.entropy(p))
        assert_close(shannon_entropy(p), scipy.stats.entropy(p))
        assert_close(effective_rank(np.diag([1.0, 1.0, 0.0])), 2.0)
        cv = collective_variables(theta)
        assert_close(cv["entropy_effective"], cv["entropy"] / np.log(9))
        lam = ntk_eigenvalues(theta)
        assert (np.diff(np.asarray(lam)) <= 1e-12).all()
        # the entropy of J J^T equals that of J^T J (same non-zero spectrum)
        J = np.asarray(flat_jacobian(net.apply, params, xa)).reshape(27, -1)
        q = np.clip(np.linalg.eigvalsh(J.T @ J), 0, None)
        full = empirical_ntk(net.apply, params, xa, outputs="full")
        assert_close(ntk_entropy(full), scipy.stats.entropy(q[q > 1e-14 * q.sum()]), rtol=1e-9)


def test_entropy_bad_inputs():
    with pytest.raises(ValueError, match="positive trace"):
        ntk_entropy(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="`theta` must be a kernel"):
        ntk_entropy(np.ones((2, 3)))
    with pytest.raises(ValueError, match="`theta` must be finite"):
        ntk_trace(np.full((2, 2), np.nan))


# ---------------------------------------------------------------------------- RND

def test_rnd_spreads_points_on_a_lattice():
    grid = lattice_pool(10)
    keys = jax.random.split(jax.random.key(11), 8)
    rnd = [min_pairwise_distance(grid[np.asarray(rnd_select(grid, 10, key=k).indices)])
           for k in keys]
    rand = [min_pairwise_distance(grid[np.asarray(random_select(grid, 10, key=k))])
            for k in keys]
    far = [min_pairwise_distance(grid[np.asarray(farthest_point_select(grid, 10, key=k))])
           for k in keys]
    assert np.mean(rnd) > np.mean(rand) + 0.1
    assert np.mean(far) >= np.mean(rnd)


def test_rnd_first_pick_is_argmax_and_threshold():
    grid = lattice_pool(8)
    res = rnd_select(grid, 2, key=jax.random.key(2))
    net = MLP((64, 64, 16))
    err = ((np.asarray(net.apply(res.target, grid), np.float64)
            - np.asarray(net.apply(res.predictor, grid), np.float64)) ** 2).sum(-1)
    err[int(res.indices[0])] = -np.inf
    assert int(res.indices[1]) == int(np.argmax(err))
    assert float(res.losses[0]) <= 1e-2  # retrained below the default threshold


def test_rnd_deterministic_and_distinct():
    grid = lattice_pool(6)
    a = rnd_select(grid, 12, key=jax.random.key(7))
    b = rnd_select(grid, 12, key=jax.random.key(7))
    assert (np.asarray(a.indices) == np.asarray(b.indices)).all()
    assert len(set(np.asarray(a.indices).tolist())) == 12


@pytest.mark.parametrize("select", [
    lambda pool, n: rnd_select(pool, n, key=jax.random.key(0)),
    lambda pool, n: random_select(pool, n, key=jax.random.key(0)),
    lambda pool, n: farthest_point_select(pool, n, key=jax.random.key(0))])
def test_selection_bad_inputs(select):
    with pytest.raises(ValueError, match="`pool` must hold at least one point"):
        select(np.zeros((0, 2), np.float32), 1)
    with pytest.raises(ValueError, match="`size` must be at most the pool size 4, got 5"):
        select(np.zeros((4, 2), np.float32), 5)
    with pytest.raises(ValueError, match="`pool` must be finite"):
        select(np.array([[0.0, np.nan], [1.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="`pool` must have 2 dimensions"):
        select(np.zeros(4), 1)


# ---------------------------------------------------------------------------- data, statistics

def test_datasets():
    d = load_digits_split()
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64)
    assert np.isin(d.y_test, range(10)).all()
    b = load_diabetes_split()
    assert_close(b.x_train.std(0), np.ones(10), rtol=1e-5)  # train statistics only
    assert abs(float(b.x_test.mean())) > 1e-4  # the test set was not re-centred
    with pytest.raises(ValueError, match="`test_fraction`"):
        load_digits_split(test_fraction=1.5)
    with pytest.raises(ValueError, match="`size` must be at most the pool size"):
        random_subsets(10, 11, 1)


def test_spearman_against_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    y[::5] = y[0]  # ties
    assert_close(spearman(x, y), scipy.stats.spearmanr(x, y).statistic, rtol=1e-12)
    ci = bootstrap_spearman(x, y, n_boot=500)
    assert ci["lo"] < ci["rho"] < ci["hi"]
    assert_close(ci["p"], scipy.stats.spearmanr(x, y).pvalue)


def test_experiments_deterministic():
    d = load_digits_split()
    sets = random_subsets(1437, 20, 2, seed=3)
    keys = jax.random.split(jax.random.key(3), 2)
    a = train_runs(d, sets, keys, widths=(16, 10), steps=20)
    b = train_runs(d, sets, keys, widths=(16, 10), steps=20)
    assert all((a[k] == b[k]).all() for k in a)
    cfg = CorrelationConfig.quick().replace(sizes=(20,), n_subsets=2, n_inits=1, steps=20,
                                            widths=(16, 10))
    r1, r2 = run_correlation(cfg), run_correlation(cfg)
    assert all((r1["n20"][k] == r2["n20"][k]).all() for k in r1["n20"])
    r3 = run_correlation(cfg.replace(seed=1))
    assert (r3["n20"]["entropy_0"] != r1["n20"]["entropy_0"]).any()
