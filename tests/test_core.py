"""Library tests of physml_book.core against things it did not write: NumPy, SciPy, closed forms,
and separate processes (for determinism and atomic writes)."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from physml_book.core import checks, config, keys, plot, precision, store, testing, train


# -- testing: tolerances and comparisons ---------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.complex64, np.complex128])
def test_tolerances_sit_between_round_off_and_physics(dtype):
    """Above round-off of the dtype, and below the epsilon of the next lower precision, so that a
    silent downgrade (float64 -> float32, the x64 trap) makes oracle comparisons fail."""
    rtol, atol = testing.tolerances(dtype)
    eps = np.finfo(dtype).eps
    lower = {np.float16: None, np.float32: np.float16, np.float64: np.float32,
             np.complex64: np.float16, np.complex128: np.float32}[dtype]
    assert rtol >= 2 * eps
    if lower is not None:
        assert rtol < np.finfo(lower).eps


def test_assert_close_agrees_with_numpy_isclose():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scale = 10.0 ** rng.uniform(-15, 15)
        b = scale * rng.normal(size=4)
        a = b * (1 + 10.0 ** rng.uniform(-14, -6) * rng.normal(size=4))
        expected = bool(np.all(np.isclose(a, b, rtol=1e-10, atol=1e-12)))
        try:
            testing.assert_close(a, b)
            got = True
        except AssertionError:
            got = False
        assert got == expected


def test_assert_close_respects_physical_scales():
    with pytest.raises(AssertionError):
        testing.assert_close(6.674e-11, 0.0)  # fastcore's absolute eps=1e-5 would pass this
    testing.assert_close(np.float32(1e9), np.float32(1e9 + 64))


# -- checks --------------------------------------------------------------------------------
@pytest.mark.parametrize("call, name", [
    (lambda: checks.check_positive("eta", 0.0), "`eta`"),
    (lambda: checks.check_int("n", 1.5), "`n`"),
    (lambda: checks.check_choice("metric", "x", ["l2"]), "`metric`"),
    (lambda: checks.check_array("z", np.ones((2, 3)), shape=(None, 4)), "`z`"),
    (lambda: checks.check_array("z", [np.nan]), "`z`"),
    (lambda: checks.check_keys("overrides", {"a": 1}, ["b"]), "`overrides`"),
])
def test_checks_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# -- config --------------------------------------------------------------------------------
def test_scale_reads_environment(monkeypatch):
    monkeypatch.delenv("PHYSML_SCALE", raising=False)
    assert config.scale() == "quick"
    monkeypatch.setenv("PHYSML_SCALE", "full")
    assert config.scale() == "full"
    monkeypatch.setenv("PHYSML_SCALE", "medium")
    with pytest.raises(ValueError, match="PHYSML_SCALE"):
        config.scale()


# -- keys: determinism across processes -----------------------------------------------------
def _draw_in_subprocess(seed, names):
    code = ("import jax, sys; from physml_book.core.keys import named_keys;"
            f"k = named_keys({seed}, *{names!r});"
            "print(repr(jax.random.normal(k['data'], (3,)).tolist()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout)


def test_named_keys_are_reproducible_across_processes():
    here = jax.random.normal(keys.named_keys(7, "data").data, (3,)).tolist()
    assert _draw_in_subprocess(7, ("data",)) == here
    assert _draw_in_subprocess(7, ("init", "data", "noise")) == here  # other streams change nothing


def test_named_keys_streams_are_statistically_independent():
    k = keys.named_keys(0, "a", "b")
    a = np.asarray(jax.random.normal(k.a, (20000,)))
    b = np.asarray(jax.random.normal(k.b, (20000,)))
    r, p = scipy.stats.pearsonr(a, b)
    assert abs(r) < 0.03
    assert scipy.stats.kstest(a, "norm").pvalue > 1e-3


# -- precision -----------------------------------------------------------------------------
def test_float64_context_computes_in_double():
    with precision.float64():
        x = jnp.float64(1.0) + 1e-15
        assert x.dtype == jnp.float64 and float(x) != 1.0
    assert jnp.asarray(1.0).dtype == jnp.float32


def test_float64_fails_loudly_when_x64_does_not_switch_on(monkeypatch):
    monkeypatch.setattr(jax, "enable_x64", lambda flag: contextlib.nullcontext())
    with pytest.raises(RuntimeError, match="did not take effect"):
        with precision.float64():
            pass


def test_enable_float64_in_a_fresh_process():
    code = ("from physml_book.core.precision import enable_float64; import jax.numpy as jnp;"
            "enable_float64(); assert jnp.ones(1).dtype == jnp.float64; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


# -- train: against closed forms --------------------------------------------------------------
def _lsq_problem(n=128, d=5, seed=0):
    kx, kw = jax.random.split(jax.random.key(seed))
    X = jax.random.normal(kx, (n, d))
    y = X @ jax.random.normal(kw, (d,)) + 0.1 * jnp.sin(jnp.arange(n))
    return X, y


def _lsq(w, batch):
    x, t = batch
    return 0.5 * jnp.mean((x @ w - t) ** 2)


def test_train_reaches_normal_equation_solution():
    X, y = _lsq_problem()
    with precision.float64():
        X, y = X.astype(jnp.float64), y.astype(jnp.float64)
        w, hist = train.train(_lsq, jnp.zeros(5), optax.sgd(0.5), (X, y), steps=2000, log_every=500)
        w_star = np.linalg.lstsq(np.asarray(X), np.asarray(y), rcond=None)[0]
        np.testing.assert_allclose(np.asarray(w), w_star, rtol=1e-9, atol=1e-10)
        assert hist.loss.shape == (2000,)


def test_gradient_descent_matches_closed_form_iterates():
    """Full-batch GD on a quadratic: w_t = w* + (I - eta A)^t (w_0 - w*), exactly."""
    X, y = _lsq_problem(n=64, d=3)
    with precision.float64():
        X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
        A, b = X.T @ X / len(X), X.T @ y / len(X)
        w_star = np.linalg.solve(A, b)
        eta, t = 0.1, 37
        expected = w_star + np.linalg.matrix_power(np.eye(3) - eta * A, t) @ (0 - w_star)
        w, _ = train.train(_lsq, jnp.zeros(3), optax.sgd(eta), (jnp.asarray(X), jnp.asarray(y)),
                           steps=t, log_every=10)
        np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-12, atol=1e-13)


def test_train_is_deterministic_with_minibatches():
    X, y = _lsq_problem()
    runs = [train.train(_lsq, jnp.zeros(5), optax.adam(1e-2), (X, y), steps=300, batch_size=16,
                        key=jax.random.key(3), log_every=100)[0] for _ in range(2)]
    np.testing.assert_array_equal(np.asarray(runs[0]), np.asarray(runs[1]))


def test_minibatch_stream_does_not_depend_on_log_every():
    X, y = _lsq_problem()
    runs = [train.train(_lsq, jnp.zeros(5), optax.sgd(0.1), (X, y), steps=50, batch_size=8,
                        key=jax.random.key(1), log_every=k)[0] for k in (3, 7, 50)]
    for r in runs[1:]:
        np.testing.assert_array_equal(np.asarray(r), np.asarray(runs[0]))


def test_train_stops_on_nan_data_and_keeps_last_good_params():
    X, y = _lsq_problem()
    y = y.at[5].set(jnp.nan)
    with pytest.raises(train.NonFiniteError) as err:
        train.train(_lsq, jnp.zeros(5), optax.sgd(0.1), (X, y), steps=10)
    assert err.value.step == 0 and np.all(np.isfinite(np.asarray(err.value.state.params)))


def test_minibatches_are_uniform_without_replacement():
    data = jnp.arange(10)
    draws = jax.vmap(lambda k: train.sample_batch(data, k, 4))(jax.random.split(jax.random.key(0), 5000))
    assert all(len(set(row)) == 4 for row in np.asarray(draws[:200]).tolist())
    counts = np.bincount(np.asarray(draws).ravel(), minlength=10)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


# -- plot ----------------------------------------------------------------------------------
def test_band_draws_mean_and_standard_error():
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(1)
    ys = rng.normal(size=(6, 20))
    fig, ax = plt.subplots()
    line = plot.band(ax, np.arange(20), ys)
    np.testing.assert_allclose(line.get_ydata(), ys.mean(0))
    verts = ax.collections[0].get_paths()[0].vertices
    upper = [verts[np.isclose(verts[:, 0], x), 1].max() for x in range(20)]
    np.testing.assert_allclose(upper, ys.mean(0) + scipy.stats.sem(ys, axis=0), rtol=1e-12)
    plt.close(fig)


# -- store: atomic writes under a hard kill ---------------------------------------------------
_WRITER = """
import sys, numpy as np
from physml_book.core.store import save_result
path = sys.argv[1]
i = 0
while True:
    i += 1
    save_result(path, {"x": np.full(2_000_000, float(i)), "i": i})
"""


def test_results_survive_a_hard_kill_mid_write(tmp_path):
    path = tmp_path / "r.npz"
    store.save_result(path, {"x": np.zeros(2_000_000), "i": 0})
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    try:
        for delay in (1.5, 0.37, 0.21, 0.53):
            time.sleep(delay)
            res, _ = store.load_result(path)  # readable at any moment
            assert np.all(res["x"] == float(res["i"]))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    res, _ = store.load_result(path)
    assert np.all(res["x"] == float(res["i"]))


def test_fingerprint_sees_every_array_entry_and_the_config_class():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class A:
        n: int = 1

    @dataclasses.dataclass(frozen=True)
    class B:
        n: int = 1

    big = np.arange(5000.0)
    other = big.copy(); other[2500] = -1
    assert store.fingerprint({"x": big}) != store.fingerprint({"x": other})
    assert store.fingerprint(A()) != store.fingerprint(B())
    assert store.fingerprint(A()) == store.fingerprint(A())


def test_cached_recovers_from_truncated_files(tmp_path):
    (tmp_path / "t.npz").write_bytes(b"")
    with pytest.warns(UserWarning, match="could not be read"):
        res, _ = store.cached(tmp_path / "t.npz", lambda: {"v": np.ones(2)}, config={})
    np.testing.assert_array_equal(res["v"], np.ones(2))


def test_cached_recomputes_only_for_a_new_config(tmp_path):
    calls = []
    def fn():
        calls.append(1)
        return {"v": np.arange(3.0)}
    cfg = config.RunStamp("quick", 0, 0.0)
    store.cached(tmp_path / "c.npz", fn, config={"a": 1})
    store.cached(tmp_path / "c.npz", fn, config={"a": 1})
    assert len(calls) == 1
    with pytest.warns(UserWarning, match="another config"):
        store.cached(tmp_path / "c.npz", fn, config={"a": 2})
    assert len(calls) == 2 and str(cfg).startswith("scale=quick")
