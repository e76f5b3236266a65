import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.helpers import run_cli as cli
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.jobs.impute.inpaint import inpaint

FAST = ["--max-steps", "60", "--n-samples", "32"]




@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    a = rng.normal(size=n)
    df = pd.DataFrame({"id": np.arange(n), "a": a, "b": 2 * a + 0.1 * rng.normal(size=n),
                       "shop": np.where(a > 0, "north", "south")})
    holes = df.copy()
    holes.loc[rng.random(n) < 0.3, "b"] = np.nan
    holes.loc[rng.random(n) < 0.2, "shop"] = np.nan
    holes["a"] = holes["a"].astype(object)
    holes.loc[5, "a"] = "?"
    holes.to_csv(tmp_path / "data.csv", index=False)
    return tmp_path, holes


def test_impute_csv_and_parquet_single_and_multiple(capsys, table):
    t, holes = table
    code, out, err = cli(capsys, "impute", t / "data.csv", "--out", t / "done.csv", "--na-values", "?",
                         "--ignore", "id", "--uncertainty", t / "unc.parquet", *FAST)
    assert code == 0, err
    assert "imputed" in out and "completed table" in out
    done = pd.read_csv(t / "done.csv")
    assert list(done.columns) == ["id", "a", "b", "shop"] and len(done) == 120 and not done.isna().any().any()
    obs = holes["b"].notna()
    assert np.allclose(done.loc[obs, "b"], holes.loc[obs, "b"].astype(float), rtol=0, atol=1e-12)
    assert set(done["shop"]) <= {"north", "south"} and (done["id"] == np.arange(120)).all()
    unc = pd.read_parquet(t / "unc.parquet")
    assert unc.shape == (120, 3) and (unc.loc[obs, "b"] == 0).all() and (unc.loc[~obs, "b"] > 0).all()
    code, out, err = cli(capsys, "impute", t / "data.csv", "--out", t / "many.parquet", "--multiple", "3",
                         "--na-values", "?", "--ignore", "id", *FAST)
    assert code == 0, err
    many = pd.read_parquet(t / "many.parquet")
    assert list(many.columns) == ["imputation", "id", "a", "b", "shop"] and len(many) == 360
    assert list(many.groupby("imputation").size()) == [120, 120, 120]
    b = many.pivot(index="id", columns="imputation", values="b")
    assert (b[~obs.to_numpy()].std(axis=1) > 0).all() and (b[obs.to_numpy()].std(axis=1) < 1e-9).all()


def test_impute_transform_option(capsys, table):
    t, holes = table
    outs = {}
    for how in ("standard", "quantile"):
        code, _, err = cli(capsys, "impute", t / "data.csv", "--out", t / f"{how}.csv", "--na-values", "?",
                           "--ignore", "id", "--transform", how, *FAST)
        assert code == 0, err
        outs[how] = pd.read_csv(t / f"{how}.csv")
    hole = holes["b"].isna()
    # the option reaches the model
    assert not np.allclose(outs["standard"].loc[hole, "b"], outs["quantile"].loc[hole, "b"])
    code, _, err = cli(capsys, "impute", t / "data.csv", "--out", t / "x.csv", "--na-values", "?", "--transform", "log",
                       *FAST)
    assert code == 2 and err.count("\n") == 1 and "'log'" in err and "quantile" in err, err


def test_impute_errors_are_one_line(capsys, table):
    t, _ = table
    code, out, err = cli(capsys, "impute", t / "data.csv", "--out", t / "x.csv", *FAST)  # '?' not declared missing
    assert code == 2 and err.count("\n") == 1 and "column 'a' holds numbers" in err and "'?'" in err
    code, _, err = cli(capsys, "impute", t / "data.csv", "--out", t / "x.txt", *FAST)
    assert code == 2 and "must end in .csv or .parquet" in err
    code, _, err = cli(capsys, "impute", t / "nope.csv", "--out", t / "x.csv")
    assert code == 2 and "not found" in err


@pytest.fixture
def image_model(tmp_path, tiny_npz, capsys):
    code, _, err = cli(capsys, "train", "--data", tiny_npz, "--out", tmp_path / "run", "--epochs", "3",
                       "--latent-dim", "4", "--hidden", "32", "--no-progress")
    assert code == 0, err
    img = (np.load(tiny_npz)["test"][0].reshape(6, 6) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    hole = np.zeros((6, 6), dtype=np.uint8)
    hole[1:4, 2:5] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    return tmp_path, img, hole


def test_inpaint_fills_only_masked_pixels(capsys, image_model):
    t, img, hole = image_model
    code, out, err = cli(capsys, "inpaint", t / "run", t / "img.png", "--mask", t / "mask.png", "--out",
                         t / "filled.png", "--n-samples", "64")
    assert code == 0, err
    assert "filled 9 of 36 pixels" in out
    filled = np.asarray(Image.open(t / "filled.png"))
    assert filled.shape == (6, 6) and np.array_equal(filled[hole == 0], img[hole == 0])
    Image.fromarray(np.zeros((5, 6), dtype=np.uint8)).save(t / "bad.png")
    code, _, err = cli(capsys, "inpaint", t / "run", t / "img.png", "--mask", t / "bad.png", "--out", t / "f.png")
    assert code == 2 and "mask is 6×5 pixels" in err and err.count("\n") == 1


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "logistic"])
def test_inpainting_ignores_the_hidden_pixels_and_keeps_the_others(likelihood):
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden=(16,), likelihood=likelihood)).eval()
    x = torch.rand(3, 16) if likelihood != "logistic" else torch.randint(0, 256, (3, 16)) / 127.5 - 1
    observed = torch.rand(3, 16) > 0.4
    a, ess = inpaint(model, x, observed, n_samples=50)
    b, _ = inpaint(model, torch.where(observed, x, x.flip(0)), observed, n_samples=50)
    assert torch.equal(a, b)  # the hidden values play no part
    assert torch.equal(a[observed], x[observed]) and ((ess >= 1) & (ess <= 50)).all()
    full, _ = inpaint(model, x, torch.ones_like(observed), n_samples=10)
    assert torch.equal(full, x)


def test_inpainting_fills_the_hole_better_than_the_pixel_means(tmp_path, capsys):
    """On real digits: the CLI changes the hidden block, and E[x_mis | x_obs] beats filling it with the training
    pixel means (the claim, not just "the observed pixels are unchanged")."""
    from sklearn.datasets import load_digits

    from vaekit.core.workflows import load
    from vaekit.jobs.impute.inpaint import inpaint

    x = (load_digits().data / 16.0).astype(np.float32)
    np.savez(tmp_path / "d.npz", train=x[:1400], valid=x[1400:1600], test=x[1600:])
    code, _, err = cli(capsys, "train", "--data", tmp_path / "d.npz", "--out", tmp_path / "run", "--epochs", "100",
                       "--latent-dim", "8", "--hidden", "128,128", "--objective", "elbo", "--warmup", "0",
                       "--no-progress", "--threads", "1")
    assert code == 0, err
    model, _ = load(tmp_path / "run")
    test = torch.from_numpy(x[1600:1700])
    observed = torch.ones_like(test, dtype=torch.bool)
    block = np.zeros((8, 8), dtype=bool)
    block[2:6, 2:6] = True
    observed[:, torch.from_numpy(block.ravel())] = False
    filled, _ = inpaint(model, test, observed, n_samples=200)
    hole = ~observed
    vae_mse = float(((filled - test)[hole] ** 2).mean())
    mean_fill = torch.from_numpy(x[:1400].mean(0)).expand_as(test)
    mean_mse = float(((mean_fill - test)[hole] ** 2).mean())
    assert vae_mse < 0.75 * mean_mse, (vae_mse, mean_mse)  # measured: 0.089 vs 0.148
    # through the CLI: the hole changes, the rest is kept
    img = (x[1600].reshape(8, 8) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(block.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    code, _, err = cli(capsys, "inpaint", tmp_path / "run", tmp_path / "img.png", "--mask", tmp_path / "mask.png",
                       "--out", tmp_path / "filled.png", "--n-samples", "200")
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "filled.png"))
    assert np.array_equal(out[~block], img[~block]) and not np.array_equal(out[block], img[block])


def test_impute_device_and_threads_options(capsys, table):
    t, _ = table
    code, out, err = cli(capsys, "impute", t / "data.csv", "--out", t / "done.csv", "--na-values", "?",
                         "--ignore", "id", *FAST, "--device", "cpu", "--threads", "1")
    assert code == 0 and "imputed" in out, err
    code, _, err = cli(capsys, "impute", t / "data.csv", "--out", t / "x.csv", "--na-values", "?", *FAST,
                       "--device", "tpu")
    assert code == 2 and "device 'tpu'" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, msg", [
    (["--n-samples", str(10 ** 9)], "--n-samples must be an integer in 1..100000, got 1000000000"),
    (["--n-samples", "0"], "--n-samples must be an integer in 1..100000, got 0"),
    (["--multiple", str(10 ** 6)], "--multiple must be an integer in 0..1000, got 1000000"),
    (["--multiple", "-1"], "--multiple must be an integer in 0..1000, got -1"),
])
def test_impute_counts_past_their_bounds_are_one_line(capsys, table, args, msg):
    t, _ = table
    code, _, err = cli(capsys, "impute", t / "data.csv", "--out", t / "x.csv", "--na-values", "?", *args)
    assert code == 2 and err.count("\n") == 1 and msg in err, err


def test_imputer_refuses_absurd_counts_and_imputes_long_tables_in_blocks(monkeypatch):
    from vaekit import VAEImputer
    from vaekit.errors import VaekitError
    from vaekit.jobs.impute import imputer as imputer_module

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    x[:, 2] = x[:, 0] + 0.1 * rng.normal(size=80)
    holes = x.copy()
    holes[rng.random(80) < 0.4, 2] = np.nan
    with pytest.raises(VaekitError, match="n_samples must be at most 100000"):
        VAEImputer(n_samples=10 ** 9).fit(holes)
    imp = VAEImputer(n_samples=40, max_steps=30, hidden=(8,), latent_dim=2, random_state=0).fit(holes)
    for call in (lambda: imp.multiple_imputations(holes, m=10 ** 6), lambda: imp.multiple_imputations(holes, m=0),
                 lambda: imp.uncertainty(holes, m=10 ** 6), lambda: imp.uncertainty(holes, m=2.5)):
        with pytest.raises(VaekitError, match=r"m must be an integer in 1\.\.1000"):
            call()
    with pytest.raises(VaekitError, match="n_samples must be at most 100000"):
        imp.set_params(n_samples=10 ** 9).transform(holes)
    imp.set_params(n_samples=40)
    whole, draws = imp.transform(holes), imp.multiple_imputations(holes, m=3, seed=1)
    monkeypatch.setattr(imputer_module, "LOG_W_VALUES", 40 * 7)  # blocks of 7 rows
    assert np.allclose(imp.transform(holes), whole, rtol=1e-5, atol=1e-6)
    blocked = imp.multiple_imputations(holes, m=3, seed=1)
    assert len(blocked) == 3 and all(np.isfinite(b).all() for b in blocked)
    assert all(np.array_equal(b[~np.isnan(holes)], holes[~np.isnan(holes)]) for b in blocked)
    assert [d.shape for d in draws] == [b.shape for b in blocked]
