import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from vaekit import VAEImputer
from vaekit.core.inference import shared_eps, snis
from vaekit.errors import DataError

TINY = dict(max_steps=10, hidden=(8,), k=2, n_samples=8, random_state=0)
SMALL = dict(max_steps=500, hidden=(32, 32), k=10, n_samples=200, batch_size=32, lr=3e-3, patience=0,
             random_state=0)


@parametrize_with_checks([VAEImputer(**TINY)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _correlated(n=300, d=5, seed=0):
    """Rank-2 Gaussian data plus a little noise: each column is predictable from the others."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) + 0.1 * rng.normal(size=(n, d))
    return (x - x.mean(0)) / x.std(0)


def _mcar(x, rate=0.3, seed=1):
    miss = np.random.default_rng(seed).random(x.shape) < rate
    return np.where(miss, np.nan, x), miss


@pytest.fixture(scope="module")
def fitted():
    x = _correlated()
    x_miss, miss = _mcar(x)
    return VAEImputer(**SMALL).fit(x_miss), x, x_miss, miss


def test_beats_mean_imputation_and_keeps_observed_entries(fitted):
    imp, x, x_miss, miss = fitted
    out = imp.transform(x_miss)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == x.shape
    assert np.array_equal(out[~miss], x_miss[~miss])  # observed entries bit for bit
    mse = np.mean((out[miss] - x[miss]) ** 2)
    mse_mean = np.mean((np.nanmean(x_miss, 0)[np.nonzero(miss)[1]] - x[miss]) ** 2)
    assert mse < 0.5 * mse_mean, (mse, mse_mean)
    assert imp.n_steps_ == imp.best_step_ == 500 and imp.validation_ == []  # no early stopping by default


def test_early_stopping_keeps_the_best_weights_on_held_out_entries():
    x = _correlated(n=200)
    x_miss, _ = _mcar(x)
    imp = VAEImputer(**{**SMALL, "max_steps": 300, "validation_fraction": 0.2, "patience": 2}).fit(x_miss)
    steps, errs = zip(*imp.validation_)
    assert imp.n_steps_ == steps[-1] <= 300 and imp.best_step_ == steps[int(np.argmin(errs))]
    if imp.n_steps_ < 300:  # stopped early: the last `patience` checks did not improve on the best one
        assert int(np.argmin(errs)) == len(errs) - 3


def test_a_row_is_imputed_the_same_whatever_its_batch(fitted):
    imp, _, x_miss, _ = fitted
    full = imp.transform(x_miss)
    part = imp.transform(x_miss[7:19][::-1])
    assert np.allclose(full[7:19][::-1], part, atol=1e-5)
    assert np.array_equal(imp.transform(x_miss), full)  # deterministic


def test_multiple_imputations_differ_and_average_to_the_single_imputation(fitted):
    imp, _, x_miss, miss = fitted
    single = imp.transform(x_miss)
    draws = imp.multiple_imputations(x_miss, m=40)
    assert len(draws) == 40 and all(np.array_equal(d[~miss], x_miss[~miss]) for d in draws)
    stack = np.stack(draws)
    assert (stack[0][miss] != stack[1][miss]).mean() > 0.99  # draws differ on every missing entry
    spread = stack.std(0)[miss]
    err = np.abs(stack.mean(0)[miss] - single[miss])
    assert np.median(err / spread) < 0.4  # mean of 40 draws within ~2.5 standard errors of the conditional mean
    assert np.array_equal(np.stack(imp.multiple_imputations(x_miss, m=2, seed=3)),
                          np.stack(imp.multiple_imputations(x_miss, m=2, seed=3)))
    u = imp.uncertainty(x_miss, m=40)
    assert np.all(u[~miss] == 0) and np.all(u[miss] > 0)
    assert np.allclose(u[miss], spread, rtol=0.5)


def test_mixed_dataframe_keeps_columns_index_and_dtypes():
    rng = np.random.default_rng(0)
    n = 240
    a = rng.normal(size=n)
    df = pd.DataFrame({
        "a": a.astype(np.float32),
        "b": pd.array(np.round(10 + 3 * a).astype(int), dtype="Int64"),
        "shop": pd.Categorical(np.where(a > 0, "north", "south")),
        "city": np.where(a > 0.5, "x", "y").astype(object),
        "flag": pd.array(a > 0, dtype="boolean"),
    }, index=np.arange(n) * 3 + 5)
    holes = df.copy()
    miss = rng.random(df.shape) < 0.25
    for j, c in enumerate(df.columns):
        holes.loc[holes.index[miss[:, j]], c] = pd.NA if c in ("b", "flag") else np.nan
    imp = VAEImputer(**{**SMALL, "max_steps": 300})
    out = imp.fit_transform(holes)
    assert list(out.columns) == list(df.columns) and out.index.equals(df.index)
    assert list(out.dtypes) == list(holes.dtypes)
    assert not out.isna().to_numpy().any()
    obs = ~holes.isna().to_numpy()
    for j, c in enumerate(df.columns):
        assert (out[c][obs[:, j]] == holes[c][obs[:, j]]).all(), c
    assert {c.name: c.kind for c in imp.schema_.columns} == {
        "a": "continuous", "b": "continuous", "shop": "categorical", "city": "categorical", "flag": "binary"}
    # the categories follow from `a`: imputed shop/flag agree with the truth far above chance
    for c in ("shop", "flag"):
        m = miss[:, list(df.columns).index(c)] & obs[:, 0]
        assert (out[c][m] == df[c][m]).mean() > 0.85, c
    u = imp.uncertainty(holes, m=10)
    assert list(u.columns) == list(df.columns) and (u.to_numpy()[obs] == 0).all()
    assert ((u["shop"] >= 0) & (u["shop"] < 0.5)).all()


def test_works_in_a_pipeline_and_with_a_sentinel():
    x = _correlated(n=120, d=4)
    y = x @ np.array([1.0, -1.0, 0.5, 2.0])
    x_miss, miss = _mcar(x, 0.2)
    pipe = make_pipeline(VAEImputer(**{**TINY, "max_steps": 50}), LinearRegression()).fit(x_miss, y)
    assert pipe.predict(x_miss).shape == (120,)
    sentinel = np.where(miss, -999.0, x)
    out = VAEImputer(missing_values=-999.0, **TINY).fit_transform(sentinel)
    assert not (out == -999.0).any() and np.array_equal(out[~miss], x[~miss])


def test_all_missing_rows_are_imputed_from_the_marginal(fitted):
    imp, x, x_miss, _ = fitted
    rows = x_miss[:3].copy()
    rows[1] = np.nan
    out = imp.transform(rows)
    assert np.isfinite(out).all()
    assert np.all(np.abs(out[1] - np.nanmean(x_miss, 0)) < 0.5)  # near the column means (the data are standardised)


def test_bad_input_gives_one_line_errors():
    df = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0] * 10, "b": [np.nan] * 40})
    with pytest.raises(DataError, match="column 'b' has no observed values"):
        VAEImputer(**TINY).fit(df)
    junk = pd.DataFrame({"a": ["1.5", "2.0", "oops", None] * 10, "b": np.arange(40.0)})
    with pytest.raises(DataError, match=r"column 'a' holds numbers and 10 non-numeric value\(s\), e\.g\. 'oops'") as e:
        VAEImputer(**TINY).fit(junk)
    assert "\n" not in str(e.value)
    arr = np.array([[1.0, "x"], [2.0, 3.0]], dtype=object)
    with pytest.raises(DataError, match="non-numeric value in a numeric array"):
        VAEImputer(**TINY).fit(arr)
    text_numbers = pd.DataFrame({"a": ["1.5", "2.0", None, "4"] * 10, "b": np.arange(40.0)})
    imp = VAEImputer(**TINY).fit(text_numbers)
    assert imp.schema_.columns[0].kind == "continuous"
    with pytest.raises(ValueError, match="must be"):
        VAEImputer(k=0).fit(np.ones((5, 2)))


def test_snis_is_exact_for_a_constant_statistic_and_ignores_unobserved_entries(fitted):
    imp, _, x_miss, _ = fitted
    model, lik = imp.model_, imp.model_.likelihood
    x = torch.from_numpy(imp.schema_.encode(pd.DataFrame(x_miss[:20], columns=imp.schema_.names), "X", "missing"))
    eps = shared_eps(64, model.config.latent_dim, 0)
    one, _ = snis(model, x, lambda p, sl: lik.log_prob(p, x[sl]), lambda p, sl: torch.ones(*p.shape[:2], 1), eps)
    assert torch.allclose(one, torch.ones_like(one))
    vd = imp.schema_.value_dim
    noisy = x.clone()
    noisy[:, :vd] += (x[:, vd:] < 0.5) * 5.0  # change only unobserved value slots: the log-likelihood ignores them
    a = torch.stack([lik.log_prob(model.decode(model.encode(x)[0]), t) for t in (x, noisy)])
    assert torch.allclose(a[0], a[1])


def test_auto_budget_small_tables_as_before_large_ones_larger_batches():
    from vaekit.jobs.impute.imputer import auto_batch

    assert [auto_batch(n) for n in (2, 569, 1599, 1810, 1812, 3000, 4898, 10 ** 6)] == [64, 64, 64, 64, 128, 128,
                                                                                         256, 256]
    imp = VAEImputer()
    assert imp._budget(1599) == (64, 1e-3, 8000)  # the old defaults (64 rows, 1e-3; 300 epochs = 7200 steps < cap)
    b, lr, cap = imp._budget(4898)
    assert (b, cap) == (256, 2000) and lr == pytest.approx(2e-3)
    assert VAEImputer(batch_size=32, lr=5e-3, max_steps=7)._budget(4898) == (32, 5e-3, 7)  # explicit values kept
    x = _correlated(n=300)
    x_miss, _ = _mcar(x)
    fit = VAEImputer(**{**TINY, "max_steps": "auto", "epochs": 1}).fit(x_miss)
    assert (fit.batch_size_, fit.lr_, fit.n_steps_) == (64, 1e-3, 4)  # 1 epoch = 4 full batches of 64
    for bad in ({"batch_size": "big"}, {"max_steps": 0}, {"lr": "fast"}, {"lr": 0.0}, {"batch_size": True}):
        with pytest.raises(ValueError, match="must be"):
            VAEImputer(**{**TINY, **bad}).fit(x_miss)


def test_default_fit_is_deterministic():
    x = _correlated(n=120)
    x_miss, _ = _mcar(x)
    a, b = (VAEImputer(random_state=3, epochs=2, n_samples=16).fit(x_miss) for _ in range(2))
    assert np.array_equal(a.transform(x_miss), b.transform(x_miss))
