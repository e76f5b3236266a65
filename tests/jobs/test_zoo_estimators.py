"""The table estimators (detector, imputer, generator) with zoo models: ``prior``, ``posterior``,
``stochastic_layers`` reach the model, the scores/imputations/samples use the model's own draws (exact weights),
and a saved estimator loads back to the same outputs. The defaults are the one-layer Gaussian VAE of before."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from vaekit import VAEAnomalyDetector, VAEImputer
from vaekit.core.evaluate import evaluate
from vaekit.errors import VaekitError
from vaekit.jobs.generate.tabular import TabularGenerator
from vaekit.jobs.impute.folder import load_imputer, save_imputer
from tests.helpers import run_cli

ZOO = [{"prior": "mog"}, {"prior": "vampprior"}, {"posterior": "iaf"}, {"stochastic_layers": 2}]
IDS = ["mog", "vampprior", "iaf", "hierarchical"]


def _table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    df = pd.DataFrame(z @ rng.normal(size=(2, 4)) + 0.3 * rng.normal(size=(n, 4)), columns=list("abcd"))
    df["g"] = np.where(z[:, 0] > 0, "u", "v")
    return df


def _config_has(model: torch.nn.Module, zoo: dict) -> bool:
    return all(getattr(model.config, k) == v for k, v in zoo.items())


@pytest.mark.parametrize("zoo", ZOO, ids=IDS)
def test_detector_with_a_zoo_model(tmp_path, zoo):
    df = _table()
    det = VAEAnomalyDetector(max_steps=40, n_models=1, k=8, random_state=0, **zoo).fit(df)
    assert _config_has(det.models_[0], zoo)
    plain = VAEAnomalyDetector(max_steps=40, n_models=1, k=8, random_state=0).fit(df)
    assert not np.allclose(det.decision_function(df), plain.decision_function(df))
    det.save(tmp_path / "det")
    back = VAEAnomalyDetector.load(tmp_path / "det")
    assert np.array_equal(back.decision_function(df), det.decision_function(df))
    assert back.get_params()["prior"] == det.prior and _config_has(back.models_[0], zoo)
    # the 'nll' score weights the model's own draws exactly: on one row, with the draws the core IS-NLL makes from
    # the same seed, both give the same −log (1/k) Σ p(x|z) p(z) / q(z|x)
    x = det._encode(df.iloc[:3], reset=False).double()
    model = det.models_[0]
    for i in range(3):
        eps = torch.randn(2000, model.noise_dim, generator=torch.Generator().manual_seed(10 + i)).double()
        ours = float(det._terms(model, x[i:i + 1], eps)[0][0])
        core = float(evaluate(copy.deepcopy(model).float(), x[i:i + 1].float(), k=2000, batch_size=1, seed=10 + i)["nll"])
        assert abs(ours - core) < 1e-3 * max(1.0, abs(core)), (i, ours, core)


@pytest.mark.parametrize("zoo", ZOO, ids=IDS)
def test_imputer_with_a_zoo_model(tmp_path, zoo):
    df = _table()
    miss = df.copy()
    rng = np.random.default_rng(3)
    miss.loc[rng.random(len(df)) < 0.25, "a"] = np.nan
    miss.loc[rng.random(len(df)) < 0.2, "g"] = None
    imp = VAEImputer(max_steps=60, n_samples=30, random_state=0, **zoo).fit(miss)
    assert _config_has(imp.model_, zoo)
    out = imp.transform(miss)
    assert not out.isna().any().any() and out["g"].isin(["u", "v"]).all()
    hole = miss["a"].isna()
    assert float(((out.loc[hole, "a"] - df.loc[hole, "a"]) ** 2).mean()) < float(df["a"].var())  # beats a mean fill
    save_imputer(imp, tmp_path / "imp")
    back = load_imputer(tmp_path / "imp")
    assert back.transform(miss).equals(out)


@pytest.mark.parametrize("zoo", ZOO, ids=IDS)
def test_generator_with_a_zoo_model(tmp_path, zoo):
    df = _table()
    gen = TabularGenerator(max_steps=60, random_state=0, **zoo).fit(df)
    assert _config_has(gen.model_, zoo)
    rows = gen.sample(200, random_state=1)
    assert list(rows.columns) == list(df.columns) and rows["g"].isin(["u", "v"]).all()
    assert rows[list("abcd")].std().min() > 0.05  # draws, not one point
    gen.save(tmp_path / "gen")
    assert TabularGenerator.load(tmp_path / "gen").sample(200, random_state=1).equals(rows)


def test_hierarchical_samples_draw_every_layer():
    gen = TabularGenerator(max_steps=30, random_state=0, stochastic_layers=3, latent_dim=4).fit(_table())
    z = gen.model_.sample_latents(500, torch.Generator().manual_seed(0))
    assert z.shape == (500, 12)  # all three layers, bottom first
    assert float(z[:, :4].std(0).min()) > 0.05  # the bottom layer is drawn, not set to its conditional mean


@pytest.mark.parametrize("make", [VAEAnomalyDetector, VAEImputer, TabularGenerator])
@pytest.mark.parametrize("bad, msg", [({"prior": "gamma"}, "gamma"), ({"posterior": "made"}, "made"),
                                      ({"stochastic_layers": 0}, "stochastic_layers")])
def test_an_unknown_zoo_choice_is_a_one_line_error(make, bad, msg):
    with pytest.raises(VaekitError, match=msg) as e:
        make(**bad).fit(_table(40))
    assert "\n" not in str(e.value)


def test_the_table_commands_take_the_zoo_options(tmp_path, capsys):
    df = _table(120)
    df.to_csv(tmp_path / "t.csv", index=False)
    miss = df.copy()
    miss.loc[np.random.default_rng(0).random(len(df)) < 0.2, "b"] = np.nan
    miss.to_csv(tmp_path / "m.csv", index=False)
    code, out, err = run_cli(capsys, "anomaly", "fit", tmp_path / "t.csv", "--out", tmp_path / "det", "--max-steps", 20,
                             "--n-models", 1, "--prior", "mog", "--stochastic-layers", 2)
    assert code == 0, err
    assert VAEAnomalyDetector.load(tmp_path / "det").models_[0].config.stochastic_layers == 2
    code, out, err = run_cli(capsys, "generate", "fit", tmp_path / "t.csv", "--out", tmp_path / "gen", "--max-steps", 20,
                             "--posterior", "iaf")
    assert code == 0, err
    assert TabularGenerator.load(tmp_path / "gen").model_.config.posterior == "iaf"
    code, out, err = run_cli(capsys, "impute", tmp_path / "m.csv", "--out", tmp_path / "done.csv", "--max-steps", 20,
                             "--n-samples", 20, "--prior", "vampprior")
    assert code == 0, err
    assert not pd.read_csv(tmp_path / "done.csv").isna().any().any()
    for cmd in (["anomaly", "fit", tmp_path / "t.csv", "--out", tmp_path / "d2"],
                ["generate", "fit", tmp_path / "t.csv", "--out", tmp_path / "g2"],
                ["impute", tmp_path / "m.csv", "--out", tmp_path / "o2.csv"]):
        code, out, err = run_cli(capsys, *cmd, "--prior", "gamma")
        assert code == 2 and "gamma" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
