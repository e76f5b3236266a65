import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.likelihoods import MixedTabular
from vaekit.core.model import VAE
from vaekit.core.trainer import Trainer
from vaekit.data.tables import read_table
from vaekit.data.tabular import Column, TabularSchema
from vaekit.errors import DataError, VaekitError


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(5, 2, n)
    return pd.DataFrame({"a": a, "b": np.exp(rng.normal(size=n)), "color": rng.choice(["red", "green", "blue"], n),
                         "flag": rng.integers(0, 2, n), "ok": rng.random(n) < 0.4, "count": rng.integers(0, 9, n)})


def test_kinds_are_inferred_from_dtypes_or_declared():
    df = _frame()
    s = TabularSchema.infer(df)
    assert s.column_kinds == ("continuous", "continuous", "categorical", "binary", "binary", "continuous")
    s2 = TabularSchema.infer(df, kinds={"count": "categorical", "flag": "continuous"}).fit(df)
    assert s2.column_kinds[3] == "continuous" and s2.column_kinds[5] == "categorical"
    assert s2.columns[5].categories == list(range(9))
    with pytest.raises(DataError, match=r"column\(s\) \['nope'\]"):
        TabularSchema.infer(df, kinds={"nope": "binary"})


def test_encoding_layout_values_one_hot_and_mask():
    df = _frame()
    s = TabularSchema.infer(df).fit(df)
    x = s.encode(df)
    assert x.shape == (200, 1 + 1 + 3 + 1 + 1 + 1 + 6) and x.dtype == np.float32
    assert s.columns[2].categories == ["blue", "green", "red"]
    onehot = x[:, 2:5]
    assert (onehot.sum(1) == 1).all() and (onehot.argmax(1) == df["color"].map({"blue": 0, "green": 1, "red": 2})).all()
    assert np.allclose(x[:, 0], (df["a"] - df["a"].mean()) / df["a"].std(ddof=0), atol=1e-5)
    assert (x[:, 6] == df["ok"]).all() and (x[:, -6:] == 1).all()


@pytest.mark.parametrize("how", ["standard", "quantile", "yeo-johnson", "none"])
def test_transforms_are_invertible_and_round_trip_through_json(how, tmp_path):
    df = _frame()
    s = TabularSchema.infer(df, transform=how).fit(df)
    s.save(tmp_path / "schema.json")
    s2 = TabularSchema.load(tmp_path / "schema.json")
    assert s2 == s and [p.name for p in tmp_path.iterdir()] == ["schema.json"]
    x = s2.encode(df)
    assert np.array_equal(x, s.encode(df))
    back = s2.decode(x)
    assert np.allclose(back["a"], df["a"], atol=1e-3) and np.allclose(back["b"], df["b"], rtol=1e-3, atol=1e-3)
    assert (back["color"] == df["color"]).all() and (back["flag"] == df["flag"]).all() and (back["ok"] == df["ok"]).all()
    if how == "quantile":  # new extremes stay ordered and beyond the training range (linear tails)
        ext = s2.encode(pd.concat([df.iloc[:2].assign(a=[-100.0, 100.0])]))[:, 0]
        assert ext[0] < x[:, 0].min() - 10 and ext[1] > x[:, 0].max() + 10


def test_missing_values_need_a_declaration_and_become_mask_zeros():
    df = _frame(50)
    df.loc[3, "a"] = np.nan
    df.loc[4, "color"] = None
    with pytest.raises(DataError, match=r"column 'a' has 1 missing value.*no missing values were declared"):
        TabularSchema.infer(df).fit(df)
    s = TabularSchema.infer(df, allow_missing=["a", "color"]).fit(df)
    x = s.encode(df)
    assert x[3, 0] == 0 and x[3, -6] == 0 and x[4, 2:5].sum() == 0 and x[4, -4] == 0 and x[5, -6:].all()


def test_bad_input_gives_one_line_data_errors():
    df = _frame(60)
    s = TabularSchema.infer(df).fit(df)
    new = df.copy()
    new.loc[7, "color"] = "purple"
    with pytest.raises(DataError, match=r"column 'color' has 1 value\(s\) of unseen categor.*'purple'") as e:
        s.encode(new, "new.csv")
    assert "\n" not in str(e.value) and str(e.value).startswith("new.csv:")
    x = s.encode(new, unknown="missing")  # documented alternative: unseen → missing
    assert x[7, 2:5].sum() == 0 and x[7, -4] == 0
    with pytest.raises(DataError, match=r"missing column\(s\) \['b'\]; unexpected column\(s\) \['z'\]"):
        s.encode(df.drop(columns="b").assign(z=1.0))
    with pytest.raises(DataError, match="column 'a' is continuous but holds non-numeric value"):
        s.encode(df.assign(a=["x"] + [1.0] * 59))
    with pytest.raises(DataError, match="column 'b' has 1 infinite"):
        s.encode(df.assign(b=[np.inf] + [1.0] * 59))
    with pytest.raises(DataError, match="declared binary but has 3 values"):
        TabularSchema.infer(df, kinds={"color": "binary"}).fit(df)
    ids = df.assign(id=[f"row{i}" for i in range(60)])
    with pytest.raises(DataError, match="'id' has 60 distinct values"):
        TabularSchema.infer(ids, max_categories=50).fit(ids)


def test_constant_column_keeps_scale_one_so_deviations_show():
    df = pd.DataFrame({"c": [3.0] * 20, "v": np.arange(20.0)})
    s = TabularSchema.infer(df).fit(df)
    assert s.columns[0].params["constant"] and s.columns[0].params["scale"] == 1.0
    x = s.encode(pd.DataFrame({"c": [3.0, 5.0], "v": [1.0, 1.0]}))
    assert x[:, 0].tolist() == [0.0, 2.0]


def test_csv_and_parquet_read_the_same(tmp_path):
    df = _frame(30)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    a, b = read_table(tmp_path / "t.csv"), read_table(tmp_path / "t.parquet")
    sa, sb = TabularSchema.infer(a).fit(a), TabularSchema.infer(b).fit(b)
    assert sa == sb and np.allclose(sa.encode(a), sb.encode(b))
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "missing.csv")


def test_mixed_likelihood_matches_torch_distributions_per_column():
    lik = MixedTabular(("continuous", "categorical", "binary"), (1, 3, 1), logvar_min=-9)
    assert lik.in_dim == 5 and lik.out_dim == 6
    torch.manual_seed(0)
    params = torch.randn(4, 7, 1, 6)  # (k, N, P=1, out)
    x = torch.zeros(7, 8)
    x[:, 0] = torch.randn(7)
    x[torch.arange(7), 1 + torch.randint(0, 3, (7,))] = 1
    x[:, 4] = (torch.rand(7) < 0.5).float()
    x[:, 5:] = 1
    x[2, 6] = 0  # row 2: categorical column missing
    cols = lik.log_prob_columns(params, x)
    assert cols.shape == (4, 7, 3)
    p = params[..., 0, :]
    ref0 = torch.distributions.Normal(p[..., 0], torch.exp(0.5 * p[..., 1])).log_prob(x[:, 0])
    ref1 = torch.distributions.Categorical(logits=p[..., 2:5]).log_prob(x[:, 1:4].argmax(1))
    ref2 = torch.distributions.Bernoulli(logits=p[..., 5]).log_prob(x[:, 4])
    assert torch.allclose(cols[..., 0], ref0, atol=1e-5) and torch.allclose(cols[..., 2], ref2, atol=1e-5)
    assert torch.allclose(cols[..., 1][:, [0, 1, 3, 4, 5, 6]], ref1[:, [0, 1, 3, 4, 5, 6]], atol=1e-5)
    assert (cols[:, 2, 1] == 0).all()
    assert torch.allclose(lik.log_prob(params, x), cols.sum(-1))
    # categorical + binary parts normalise over all their outcomes
    total = 0.0
    for c in range(3):
        for b in (0.0, 1.0):
            xx = torch.tensor([[0.0, *(1.0 if i == c else 0.0 for i in range(3)), b, 0, 1, 1]])
            total += math.exp(lik.log_prob(params[0, :1], xx).item())
    assert total == pytest.approx(1.0, abs=1e-5)


def test_mixed_config_round_trips_and_old_configs_still_load(tmp_path):
    df = _frame(300)
    s = TabularSchema.infer(df).fit(df)
    cfg = ModelConfig(input_shape=(s.input_dim,), latent_dim=2, hidden=(16,), likelihood="mixed",
                      column_kinds=s.column_kinds, column_sizes=s.column_sizes, obs_logvar_min=-5)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = {k: v for k, v in ModelConfig().to_dict().items() if k not in ("column_kinds", "column_sizes", "obs_logvar_min")}
    assert ModelConfig.from_dict(old) == ModelConfig()
    with pytest.raises(VaekitError, match=r"input_shape must be \(14,\)"):
        ModelConfig(input_shape=(9,), likelihood="mixed", column_kinds=s.column_kinds, column_sizes=s.column_sizes)
    x = torch.from_numpy(s.encode(df))
    m = VAE(cfg)
    hist = Trainer(m, TrainConfig(epochs=8, batch_size=50, lr=3e-3, seed=0), progress=False).fit(x[:250], x[250:])
    assert hist.epochs[-1]["val_elbo"] > hist.epochs[0]["val_elbo"]
    save_model(m, tmp_path / "m", extra={"schema": s.to_dict()})
    m2, extra = load_model(tmp_path / "m")
    assert TabularSchema.from_dict(extra["schema"]) == s
    assert torch.equal(m.log_px(m.decode(m.encode(x)[0]), x), m2.log_px(m2.decode(m2.encode(x)[0]), x))
    draws = s.decode(m2.sample(5, torch.Generator().manual_seed(0), mean=False).numpy())
    assert list(draws.columns) == list(df.columns) and set(draws["color"]) <= {"red", "green", "blue"}


def test_declared_schema_from_columns():
    s = TabularSchema([Column("u", "continuous"), Column("k", "categorical")])
    s.fit(pd.DataFrame({"u": [1.0, 2.0, 3.0], "k": ["a", "b", "a"]}))
    assert s.column_sizes == (1, 2) and s.input_dim == 5
    with pytest.raises(DataError, match="duplicate column names"):
        TabularSchema([Column("u", "continuous"), Column("u", "binary")])
