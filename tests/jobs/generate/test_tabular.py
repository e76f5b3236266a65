"""TabularGenerator: conditional sampling honours the condition and follows the training data; dtypes, seeds,
temperature, save/load, bad conditions; the ``vaekit generate`` CLI."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import run_cli as cli
from vaekit import TabularGenerator
from vaekit.errors import CheckpointError, DataError, VaekitError
from vaekit.files import document_digest

FAST = dict(max_steps=500, latent_dim=4, hidden=(64, 64), random_state=0)
SHOP_MEAN = {"north": 0.0, "south": 5.0, "east": -5.0}
SIZE_P = {"north": [0.8, 0.1, 0.1], "south": [0.1, 0.1, 0.8], "east": [0.1, 0.8, 0.1]}


def shop_table(n=900, seed=0):
    rng = np.random.default_rng(seed)
    shop = rng.choice(["north", "south", "east"], n, p=[0.4, 0.35, 0.25])
    a = np.array([SHOP_MEAN[s] for s in shop]) + rng.normal(size=n)
    size = [rng.choice(["S", "M", "L"], p=SIZE_P[s]) for s in shop]
    temp = rng.normal(20, 5, n)
    return pd.DataFrame({"shop": shop, "region": np.where(shop == "east", "E", "W"), "a": a.astype(np.float32),
                         "size": pd.Categorical(size, categories=["S", "M", "L"]),
                         "cnt": rng.poisson(2 + 4 * (shop == "south")).astype(np.int64), "big": a > 2,
                         "temp": temp, "heat": 2 * (temp - 20) + 0.5 * rng.normal(size=n)})


@pytest.fixture(autouse=True)
def _threads() -> None:
    """One thread: on a shared 2-core machine a second intra-op thread makes these small nets ~10× slower."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    df = shop_table()
    gen = TabularGenerator(condition_columns=["shop", "region", "temp"], **FAST).fit(df)
    return df, gen


def test_conditional_rows_carry_the_condition_and_match_the_training_data(fitted):
    df, gen = fitted
    rows = {s: gen.sample(800, {"shop": s, "temp": 20.0}, random_state=1) for s in SHOP_MEAN}
    for s, r in rows.items():
        assert (r["shop"] == s).all() and (r["temp"] == 20.0).all()
        assert (r["region"] == ("E" if s == "east" else "W")).all()  # unfixed condition column: drawn given shop
        assert abs(r["a"].mean() - SHOP_MEAN[s]) < 0.6, (s, r["a"].mean())
        share = r["size"].value_counts(normalize=True).reindex(["S", "M", "L"]).to_numpy()
        assert np.abs(share - SIZE_P[s]).max() < 0.15, (s, share)
    # distributions differ by condition as in the training data
    train_gap = df.loc[df.shop == "south", "cnt"].mean() - df.loc[df.shop == "north", "cnt"].mean()
    gen_gap = rows["south"]["cnt"].mean() - rows["north"]["cnt"].mean()
    assert abs(gen_gap - train_gap) < 1.0 and gen_gap > 2.5
    assert rows["south"]["big"].mean() > 0.8 and rows["east"]["big"].mean() < 0.05
    # a continuous condition: heat ≈ 2 (temp − 20)
    hot, cold = (gen.sample(600, {"temp": t}, random_state=2) for t in (26.0, 14.0))
    assert hot["heat"].mean() - cold["heat"].mean() == pytest.approx(24.0, abs=4.0)


def test_unconditioned_draws_follow_the_training_mix_dtypes_and_seeds(fitted):
    df, gen = fitted
    s = gen.sample(3000, random_state=3)
    assert list(s.columns) == list(df.columns) and len(s) == 3000
    assert s.dtypes.to_dict() == df.dtypes.to_dict()
    assert list(s["size"].cat.categories) == ["S", "M", "L"]
    share = s["shop"].value_counts(normalize=True)
    assert abs(share["north"] - 0.4) < 0.05 and abs(share["east"] - 0.25) < 0.05
    assert s["a"].min() >= df["a"].min() and s["a"].max() <= df["a"].max()  # clipped to the training range
    assert s.equals(gen.sample(3000, random_state=3)) and not s.equals(gen.sample(3000, random_state=4))
    cold = gen.sample(3000, {"shop": "north", "temp": 20.0}, temperature=0.3, random_state=3)
    warm = gen.sample(3000, {"shop": "north", "temp": 20.0}, temperature=1.0, random_state=3)
    assert cold["a"].std() < 0.7 * warm["a"].std()


def test_save_and_load_give_the_same_rows(fitted, tmp_path):
    _, gen = fitted
    gen.save(tmp_path / "g")
    back = TabularGenerator.load(tmp_path / "g")
    cond = {"shop": ["north", "south"] * 50}
    assert back.sample(100, cond, random_state=5).equals(gen.sample(100, cond, random_state=5))
    doc = json.loads((tmp_path / "g" / "generator.json").read_text())
    doc["version"] = 99
    (tmp_path / "g" / "generator.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="format version"):
        TabularGenerator.load(tmp_path / "g")
    with pytest.raises(CheckpointError, match="no tabular generator"):
        TabularGenerator.load(tmp_path / "nothing")


@pytest.mark.parametrize("cond, msg", [
    ({"nope": 1}, "unknown column 'nope'"),
    ({"a": 1.0}, "'a' was not a condition column"),
    ({"shop": "west"}, "'west' is not a category of column 'shop'"),
    ({"temp": "warm"}, "'temp' is continuous; 'warm' is not a number"),
    ({"temp": float("inf")}, "finite"),
    ({"shop": ["north"] * 3}, "3 values for 10 rows"),
    ({"shop": "east", "region": "W"}, "no training row has"),
])
def test_bad_conditions_are_one_line_data_errors(fitted, cond, msg):
    _, gen = fitted
    with pytest.raises(DataError, match=msg) as e:
        gen.sample(10, cond, random_state=0)
    assert "\n" not in str(e.value)


def test_bad_fit_inputs_and_parameters():
    df = shop_table(100)
    with pytest.raises(DataError, match="condition column"):
        TabularGenerator(condition_columns=["zzz"]).fit(df)
    with pytest.raises(DataError, match="every column is a condition column"):
        TabularGenerator(condition_columns=list(df.columns)).fit(df)
    with pytest.raises(VaekitError, match="temperature"):
        small = TabularGenerator(max_steps=20, latent_dim=2, hidden=(8,), random_state=0).fit(df[["a", "cnt"]])
        small.sample(5, temperature=0)
    with pytest.raises(DataError, match="missing value"):
        TabularGenerator(max_steps=20).fit(df.assign(a=np.where(df.index == 3, np.nan, df["a"])))




def test_cli_fit_and_sample_with_where(capsys, tmp_path):
    df = shop_table(300).drop(columns=["size"]).assign(id=np.arange(300))
    df.to_csv(tmp_path / "t.csv", index=False)
    code, out, err = cli(capsys, "generate", "fit", tmp_path / "t.csv", "--out", tmp_path / "g", "--condition-columns",
                         "shop,temp", "--ignore", "id", "--max-steps", "150", "--latent-dim", "4", "--hidden", "32")
    assert code == 0, err
    assert "shop:categorical" in out and "generator in" in out
    code, out, err = cli(capsys, "generate", "sample", tmp_path / "g", "-n", "50", "--out", tmp_path / "s.csv",
                         "--where", "shop=south", "--where", "temp=21.5", "--temperature", "0.8", "--seed", "3")
    assert code == 0, err
    s = pd.read_csv(tmp_path / "s.csv")
    assert len(s) == 50 and list(s.columns) == [c for c in df.columns if c != "id"]
    assert (s["shop"] == "south").all() and (s["temp"] == 21.5).all() and s["cnt"].dtype == np.int64
    code, _, _ = cli(capsys, "generate", "sample", tmp_path / "g", "-n", "20", "--out", tmp_path / "s.parquet")
    assert code == 0 and len(pd.read_parquet(tmp_path / "s.parquet")) == 20
    for where, msg in (("colour=red", "unknown column 'colour'"), ("shop=west", "is not a category"),
                       ("temp=hot", "is not a number"), ("shop", "expected COLUMN=VALUE")):
        code, _, err = cli(capsys, "generate", "sample", tmp_path / "g", "--out", tmp_path / "x.csv", "--where", where)
        assert code == 2 and msg in err and err.count("\n") == 1, err
    code, _, err = cli(capsys, "generate", "fit", tmp_path / "t.csv", "--out", tmp_path / "g")
    assert code == 2 and "already holds a generator" in err


def test_cli_time_limit_in_minutes_device_and_threads(capsys, tmp_path):
    shop_table(200).drop(columns=["size"]).to_csv(tmp_path / "t.csv", index=False)
    code, out, err = cli(capsys, "generate", "fit", "--help")
    assert code == 0 and "minutes" in " ".join(out.split())
    code, out, err = cli(capsys, "generate", "fit", tmp_path / "t.csv", "--out", tmp_path / "g", "--max-steps",
                         "100000", "--epochs", "100000", "--time-limit", "0.0002", "--hidden", "16", "--device", "cpu",
                         "--threads", "1")
    assert code == 0, err
    assert json.loads((tmp_path / "g" / "generator.json").read_text())["params"]["time_limit_min"] == 0.0002
    code, out, err = cli(capsys, "generate", "sample", tmp_path / "g", "-n", "10", "--out", tmp_path / "s.csv",
                         "--device", "cpu", "--threads", "2")
    assert code == 0 and len(pd.read_csv(tmp_path / "s.csv")) == 10, err
    code, _, err = cli(capsys, "generate", "sample", tmp_path / "g", "-n", "10", "--out", tmp_path / "x.csv",
                       "--device", "tpu")
    assert code == 2 and "device 'tpu'" in err and err.count("\n") == 1


def test_generator_folders_written_with_a_time_limit_in_seconds_still_load(fitted, tmp_path):
    _, gen = fitted
    gen.save(tmp_path / "g")
    doc = json.loads((tmp_path / "g" / "generator.json").read_text())
    doc["params"]["time_limit"] = doc["params"].pop("time_limit_min") + 90.0
    doc["config_blake2b"] = document_digest(doc, "config_blake2b")  # re-sealed, as such a folder would be
    (tmp_path / "g" / "generator.json").write_text(json.dumps(doc))
    assert TabularGenerator.load(tmp_path / "g").time_limit_min == 1.5


def _resave(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("edit, msg", [
    (lambda d: _resave(d / "generator.json", lambda doc: doc.update(n_train=doc["n_train"] + 1)),
     r"generator.json: does not match its checksum \(config_blake2b\): the file was edited or damaged"),
    (lambda d: _resave(d / "schema.json", lambda doc: doc.update(edited=True)),
     r"schema.json: does not match the checksum recorded in generator.json \(files_blake2b\): the file was edited"),
    (lambda d: _resave(d / "condition_schema.json", lambda doc: doc.update(edited=True)),
     r"condition_schema.json: does not match the checksum recorded in generator.json"),
    (lambda d: (d / "condition_table.safetensors").write_bytes(
        (d / "condition_table.safetensors").read_bytes()[:-1] + b"\x00"), r"condition_table.safetensors: does not match"),
    (lambda d: _resave(d / "model" / "config.json", lambda doc: doc.update(extra={"x": 1})),
     r"model/config.json: does not match the checksum recorded in generator.json"),
    (lambda d: _resave(d / "generator.json", lambda doc: doc.pop("config_blake2b")),
     r"generator.json: the checksum \(config_blake2b\) is missing or malformed"),
    (lambda d: _resave(d / "generator.json", lambda doc: (doc.pop("files_blake2b"), doc.update(
        config_blake2b=document_digest(doc, "config_blake2b")))),
     r"generator.json: the file checksums \(files_blake2b\) are missing or malformed"),
])
def test_an_edited_or_damaged_generator_folder_is_refused(fitted, tmp_path, edit, msg):
    _, gen = fitted
    gen.save(tmp_path / "g")
    edit(tmp_path / "g")
    with pytest.raises(CheckpointError, match=msg) as e:
        TabularGenerator.load(tmp_path / "g")
    assert "\n" not in str(e.value)


def test_early_stopping_stops_patience_epochs_after_the_best_on_the_uninterrupted_trajectory():
    """With patience P the fit runs exactly the epochs of a fit without it until P epochs in a row have not bettered
    the held-out ELBO, then stops and keeps its best epoch; P = 0 runs to the end; a table under 50 rows has no
    held-out part and never stops early; P must be an integer >= 0."""
    df = shop_table(150, seed=3)
    params = dict(max_steps=1200, latent_dim=4, hidden=(64,), random_state=0)
    full = TabularGenerator(early_stopping=0, **params).fit(df)
    early = TabularGenerator(early_stopping=10, **params).fit(df)
    assert full.history_.stopped == "epochs" and early.history_.stopped == "early_stopping"
    n = len(early.history_.epochs)
    assert n == early.history_.best_epoch + 11 < len(full.history_.epochs)
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop_time(early.history_.epochs) == drop_time(full.history_.epochs[:n])
    vals = [r["val_elbo"] for r in early.history_.epochs]
    assert early.history_.best_epoch == int(np.argmax(vals))
    tiny = TabularGenerator(early_stopping=1, max_steps=200, latent_dim=2, hidden=(8,), random_state=0).fit(df[:40])
    assert tiny.history_.stopped == "epochs"
    for bad in (-1, 1.5, True):
        with pytest.raises(VaekitError, match="early_stopping must be an integer >= 0"):
            TabularGenerator(early_stopping=bad).fit(df)
