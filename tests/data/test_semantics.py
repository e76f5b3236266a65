"""Data semantics (issue 11.7): unseen categories, missing values, type inference, duplicate names, CSV formulas,
validation of every batch, column resolution, too-small data, splits, posterior collapse, error wording."""
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import run_cli as cli
from vaekit import VAEAnomalyDetector, VAEImputer
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.core.workflows import evaluate_file, warn_if_collapsed
from vaekit.data import load_array, load_splits
from vaekit.data.tables import read_table, write_table
from vaekit.errors import DataError, VaekitWarning
from vaekit.jobs.anomaly.files import load_detector, score_file
from vaekit.jobs.generate.tabular import TabularGenerator

FAST = dict(n_models=1, max_steps=50, k=4, hidden=(16,), latent_dim=2, random_state=0)
IMP = dict(max_steps=50, n_samples=20, k=4, hidden=(16,), random_state=0)
GEN = dict(max_steps=50, epochs=5, hidden=(16,), latent_dim=2, random_state=0)


def _shops(n=200, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": a * 2 + 0.3 * rng.normal(size=n), "c": rng.normal(size=n),
                         "country": rng.choice(["FR", "DE", "IT"], n)})


# --- 1. unseen categories ------------------------------------------------------------------------------------------
def test_unseen_category_is_abnormal_by_default_and_blamed_on_its_column(tmp_path):
    df = _shops()
    det = VAEAnomalyDetector(**FAST).fit(df)
    assert det.unknown_category == "abnormal"
    atlantis = df.iloc[:20].assign(country="Atlantis")
    s = det.decision_function(atlantis)
    assert (s > det.threshold_).all() and (s > det.decision_function(df.iloc[:20])).all()
    assert [t[0] for t in det.top_columns(atlantis)] == ["country"] * 20
    lenient = VAEAnomalyDetector(**{**FAST, "unknown_category": "missing"}).fit(df)
    assert np.median(lenient.decision_function(atlantis)) < np.median(lenient.decision_scores_)  # the old bug
    with pytest.raises(DataError, match=r"column 'country' has 20 value\(s\) of unseen categor.*'Atlantis'"):
        VAEAnomalyDetector(**{**FAST, "unknown_category": "error"}).fit(df).decision_function(atlantis)
    # saved and streamed: the same scores
    det.save(tmp_path / "det")
    again = load_detector(tmp_path / "det")
    assert np.array_equal(again.decision_function(atlantis), s)
    atlantis.to_csv(tmp_path / "new.csv", index=False)
    score_file(again, tmp_path / "new.csv", tmp_path / "s.csv", chunksize=7)
    got = pd.read_csv(tmp_path / "s.csv")
    assert np.allclose(got["score"], s) and got["top_columns"].str.startswith("country").all()


def test_default_scores_of_complete_numeric_tables_are_unchanged():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    new = VAEAnomalyDetector(**FAST).fit(X)
    old = VAEAnomalyDetector(**{**FAST, "unknown_category": "error", "missing_score": "observed"}).fit(X)
    assert np.array_equal(new.decision_scores_, old.decision_scores_)
    assert np.array_equal(new.decision_function(X[:10] * 3), old.decision_function(X[:10] * 3))
    both = VAEAnomalyDetector(**{**FAST, "allow_missing": True}).fit(X)  # on, but nothing missing: same numbers
    assert np.array_equal(both.decision_scores_, VAEAnomalyDetector(
        **{**FAST, "allow_missing": True, "missing_score": "observed"}).fit(X).decision_scores_)


# --- 2. missing values ---------------------------------------------------------------------------------------------
def test_rows_with_many_missing_values_are_not_scored_as_most_normal():
    rng = np.random.default_rng(0)
    C = 10
    X = rng.normal(size=(300, 3)) @ rng.normal(size=(3, C)) + 0.3 * rng.normal(size=(300, C))
    X[rng.random(X.shape) < 0.05] = np.nan
    normal = np.nan_to_num(X[:100])
    holes = normal.copy()
    for i in range(len(holes)):  # 80% of each row missing
        holes[i, np.random.default_rng(i).choice(C, 8, replace=False)] = np.nan
    params = {**FAST, "max_steps": 300, "allow_missing": True}
    det = VAEAnomalyDetector(**params).fit(X)
    assert det.missing_score == "per_observed"
    full = det.decision_function(normal)
    assert np.median(det.decision_function(holes)) >= np.median(full)
    raw = VAEAnomalyDetector(**{**params, "missing_score": "observed"}).fit(X)
    assert (raw.decision_function(holes) < np.median(raw.decision_function(normal))).mean() > 0.9  # the old bug
    with pytest.raises(ValueError, match="missing_score must be one of"):
        VAEAnomalyDetector(missing_score="nope").fit(X)


# --- 3. one type inference -----------------------------------------------------------------------------------------
def test_junk_in_a_numeric_column_is_refused_by_every_job(capsys, tmp_path):
    df = _shops(60).drop(columns="country")
    df["a"] = df["a"].astype(object)
    df.loc[7, "a"] = "n/a?"
    pattern = r"column 'a' holds numbers and 1 non-numeric value\(s\), e\.g\. 'n/a\?'"
    for fit in (lambda: VAEAnomalyDetector(**FAST).fit(df), lambda: VAEImputer(**IMP).fit(df),
                lambda: TabularGenerator(**GEN).fit(df)):
        with pytest.raises(DataError, match=pattern):
            fit()
    df.to_csv(tmp_path / "junk.csv", index=False)
    code, _, err = cli(capsys, "anomaly", "fit", tmp_path / "junk.csv", "--out", tmp_path / "det",
                       "--max-steps", "50", "--n-models", "1")
    assert code == 2 and re.search(pattern, err) and "junk.csv" in err
    assert "--categorical" in err and "column_kinds" not in err  # the CLI names its options


# --- 4. duplicate column names -------------------------------------------------------------------------------------
def test_duplicate_column_names_are_refused(capsys, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"d.csv: duplicate column name\(s\) \['a'\]"):
        read_table(tmp_path / "d.csv")
    with pytest.raises(DataError, match="duplicate column name"):
        load_array(tmp_path / "d.csv")
    code, _, err = cli(capsys, "impute", tmp_path / "d.csv", "--out", tmp_path / "o.csv")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "duplicate column name(s) ['a']" in err


# --- 5. formula injection ------------------------------------------------------------------------------------------
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(tmp_path):
    link = '=HYPERLINK("http://evil.example","x")'
    df = pd.DataFrame({link: ["=1+1", "-1.5", "+cmd", "@SUM(A1)", "\tx", "plain"],
                       "n": [-1.5, 2.0, -3.25, 0.0, 1e-3, -7.0], "i": [-1, 2, 3, 4, 5, 6]})
    write_table(df, tmp_path / "o.csv")
    text = (tmp_path / "o.csv").read_text()
    assert text.splitlines()[0].startswith("\"'=HYPERLINK")
    back = pd.read_csv(tmp_path / "o.csv")
    assert back.iloc[:, 0].tolist() == ["'=1+1", -1.5, "'+cmd", "'@SUM(A1)", "'\tx", "plain"] or \
        back.iloc[:, 0].tolist() == ["'=1+1", "-1.5", "'+cmd", "'@SUM(A1)", "'\tx", "plain"]
    assert back["n"].tolist() == df["n"].tolist() and back["i"].tolist() == df["i"].tolist()  # numbers stay numbers
    # the streamed scores: a column name copied into top_columns
    rng = np.random.default_rng(0)
    t = pd.DataFrame({link: rng.normal(size=120), "b": rng.normal(size=120)})
    det = VAEAnomalyDetector(**FAST).fit(t)
    t.assign(**{link: 50.0}).to_csv(tmp_path / "new.csv", index=False)
    score_file(det, tmp_path / "new.csv", tmp_path / "s.csv", top=1)
    cells = pd.read_csv(tmp_path / "s.csv")["top_columns"]
    assert cells.str.startswith("'=HYPERLINK").all()


# --- 6. every batch validated ------------------------------------------------------------------------------------
def test_imputer_validates_batches_without_missing_values():
    df = _shops(80)
    df.loc[:9, "c"] = np.nan
    imp = VAEImputer(**IMP).fit(df)
    complete = _shops(10, seed=1)
    assert imp.transform(complete).equals(complete)
    junk = complete.assign(a=complete["a"].astype(object))
    junk.loc[3, "a"] = "abc"
    for call in (imp.transform, lambda d: imp.multiple_imputations(d, 2)):
        with pytest.raises(DataError, match=r"column 'a' is continuous but holds non-numeric value\(s\), e\.g\. 'abc'"):
            call(junk)
    with pytest.raises(ValueError, match="Feature names"):
        imp.transform(complete.rename(columns={"a": "z"}))


# --- 7. resolution -------------------------------------------------------------------------------------------------
def test_imputed_and_generated_values_keep_the_column_resolution(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"year": rng.choice([2007.0, 2008.0, 2009.0], n), "flipper": np.round(rng.normal(200, 10, n), 1),
                       "bill": np.round(rng.normal(40, 5, n), 2), "island": rng.choice(["Biscoe", "Dream"], n)})
    holes = df.copy()
    holes.loc[rng.random(n) < 0.3, "year"] = np.nan
    holes.loc[rng.random(n) < 0.3, "flipper"] = np.nan
    out = VAEImputer(**IMP).fit_transform(holes)
    assert (out["year"] == np.round(out["year"])).all()
    assert np.allclose(out["flipper"], np.round(out["flipper"], 1), rtol=0, atol=1e-9)
    gen = TabularGenerator(**GEN).fit(df).sample(200, random_state=0)
    assert (gen["year"] == np.round(gen["year"])).all()
    assert np.allclose(gen["bill"], np.round(gen["bill"], 2), rtol=0, atol=1e-9)
    write_table(pd.concat([out, gen]), tmp_path / "o.csv")
    text = (tmp_path / "o.csv").read_text()
    assert not re.search(r"\d\.\d{7,}", text), text[:500]  # no float noise such as 15.600000000000001


# --- 8. too-small data ---------------------------------------------------------------------------------------------
def test_too_small_datasets_are_refused(capsys, tmp_path):
    one = tmp_path / "one.npy"
    np.save(one, np.zeros((1, 16), np.float32))
    with pytest.raises(DataError, match=r"1 training example\(s\); at least 3 are needed \(2 to train \+ 1 carved"):
        load_splits(one)
    np.save(tmp_path / "two.npy", np.zeros((2, 16), np.float32))
    with pytest.raises(DataError, match="at least 3"):
        load_splits(tmp_path / "two.npy")
    assert len(load_splits(tmp_path / "two.npy", valid_fraction=0)["train"].x) == 2
    sp = load_splits(_npy(tmp_path / "five.npy", 5))
    assert len(sp["train"].x) == 4 and len(sp["valid"].x) == 1
    code, _, err = cli(capsys, "train", "--data", one, "--out", tmp_path / "run", "--epochs", "1", "--no-progress")
    assert code == 2 and "at least 3 are needed" in err and not (tmp_path / "run" / "model").exists()
    X = np.random.default_rng(0).normal(size=(1, 3))
    for est in (VAEAnomalyDetector(**FAST), VAEImputer(**IMP), TabularGenerator(**GEN)):
        with pytest.raises(ValueError, match="1 sample"):  # scikit-learn's wording for check_fit2d_1sample
            est.fit(X)
        with pytest.raises(ValueError, match="1 sample"):
            est.fit(pd.DataFrame(X, columns=["a", "b", "c"]))


def _npy(path, n):
    np.save(path, np.random.default_rng(0).random((n, 16)).astype(np.float32))
    return path


# --- 9 + 10. splits and posterior collapse -------------------------------------------------------------------------
def test_missing_split_refused_and_collapse_warned(capsys, tmp_path, tiny_npz):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((6, 6), 60 * i, np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(DataError, match=r"imgs: no split 'test'; an image folder has one split, \['train'\]"):
        load_array(folder, "test")
    assert len(load_array(folder, "train").x) == 4
    np.savez(tmp_path / "tv.npz", train=np.zeros((5, 36)), valid=np.zeros((3, 36)))
    with pytest.raises(DataError, match=r"no array for split 'test'; the file has split\(s\) \['train', 'valid'\]"):
        load_array(tmp_path / "tv.npz", "test")
    # a β large enough to collapse every unit: one warning line naming the remedies
    code, out, err = cli(capsys, "train", "--data", tiny_npz, "--out", tmp_path / "run", "--epochs", "3", "--lr", "0.01",
                         "--hidden", "16", "--latent-dim", "8", "--beta", "200", "--objective", "elbo",
                         "--warmup", "0", "--no-progress")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "latent units are active" in lines[0], err
    assert "--warmup" in lines[0] and "--free-bits" in lines[0]
    with pytest.raises(DataError, match=r"no split 'test'.*\['train'\]"):
        evaluate_file(tmp_path / "run", folder, "test", k=2)
    code, _, err = cli(capsys, "eval", tmp_path / "run", "--data", folder, "--split", "test", "--k", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "['train']" in err


def test_active_units_warning_threshold():
    model = VAE(ModelConfig(input_shape=(6,), latent_dim=4, hidden=(8,), likelihood="gaussian")).eval()
    x = torch.randn(64, 6)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        au = warn_if_collapsed(model, x)
    assert (au >= 1) == (not [m for m in w if issubclass(m.category, VaekitWarning)])
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.zero_()
    with pytest.warns(VaekitWarning, match=r"only 0 of 4 latent units are active"):
        assert warn_if_collapsed(model, x) == 0


# --- 11. wording ---------------------------------------------------------------------------------------------------
def test_messages_name_real_parameters_options_and_folders(capsys, tmp_path):
    df = _shops(60)
    with pytest.raises(DataError, match=r"missing values \(NaN/empty\); TabularGenerator needs a complete table") as e:
        TabularGenerator(**GEN).fit(df.assign(a=[np.nan] + [0.0] * 59))
    assert "allow_missing" not in str(e.value)
    (tmp_path / "t.csv").mkdir()
    with pytest.raises(DataError, match=r"t.csv: is a folder, expected a file"):
        read_table(tmp_path / "t.csv")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(DataError, match=r"d.npz: is a folder, expected a file"):
        load_array(tmp_path / "d.npz")
    code, _, err = cli(capsys, "anomaly", "fit", tmp_path / "t.csv", "--out", tmp_path / "det")
    assert code == 2 and "is a folder, expected a file" in err
    df.to_csv(tmp_path / "train.csv", index=False)
    assert cli(capsys, "anomaly", "fit", tmp_path / "train.csv", "--out", tmp_path / "det", "--max-steps", "50",
               "--n-models", "1")[0] == 0
    df.assign(a=[np.nan] + [0.0] * 59).to_csv(tmp_path / "new.csv", index=False)
    code, _, err = cli(capsys, "anomaly", "score", tmp_path / "det", tmp_path / "new.csv", "--out", tmp_path / "s.csv")
    assert code == 2 and "--allow-missing" in err and "allow_missing" not in err.replace("--allow-missing", "")
