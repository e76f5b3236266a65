"""``vaekit demo``: a small VAE on scikit-learn's bundled digits (offline), with an HTML report.

Other jobs add their sections through :func:`vaekit.report.Report.add`; the page opens with one summary card per
job (:mod:`vaekit.cli.demo_cards`). An existing non-empty ``out`` that is not an earlier report is refused unless
``overwrite``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.evaluate import evaluate
from vaekit.core.model import VAE
from vaekit.core.preprocess import prepare
from vaekit.core.trainer import Trainer
from vaekit.cli.demo_cards import add_cards, write_data_files
from vaekit.files import atomic_save
from vaekit.jobs.anomaly.detector import VAEAnomalyDetector
from vaekit.jobs.compress.report import compression_section
from vaekit.jobs.explore import latent as explore
from vaekit.jobs.generate.tabular import TabularGenerator
from vaekit.jobs.impute.inpaint import inpaint
from vaekit.plots import save_curves, save_grid, save_histogram, to_images
from vaekit.report import Report, Section, check_report_folder


def digits_splits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 1,797 8×8 digits scaled to [0, 1], split 1,400 / 200 / 197 (seeded)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    parts = {"train": perm[:1400], "valid": perm[1400:1600], "test": perm[1600:]}
    return {k: (x[v], d.target[v]) for k, v in parts.items()}


def run_demo(out: str | Path = "demo-report", epochs: int = 200, seed: int = 0, progress: bool = True,
             overwrite: bool = False) -> Path:
    out = Path(out)
    check_report_folder(out, overwrite)
    t0 = time.perf_counter()
    data = digits_splits(seed)
    mcfg = ModelConfig(input_shape=(1, 8, 8), latent_dim=8, hidden=(256, 128), activation="tanh",
                       likelihood="bernoulli")
    tcfg = TrainConfig(epochs=epochs, batch_size=50, lr=2e-3, warmup_epochs=epochs / 10, seed=seed,
                       schedule="cosine", objective="elbo", precision="fp32")
    model = VAE(mcfg)
    x = {k: prepare(v[0], model.likelihood, f"digits[{k}]")[0] for k, v in data.items()}
    hist = Trainer(model, tcfg, out_dir=out / "run", progress=progress).fit(x["train"], x["valid"])
    train_s = time.perf_counter() - t0
    metrics = evaluate(model, x["test"], k=1000, seed=seed)
    metrics.update({"train_seconds": train_s, "epochs": len(hist.epochs), "best_epoch": hist.best_epoch})

    report = Report(out, "vaekit demo: a VAE on scikit-learn digits",
                    f"A VAE with an {mcfg.latent_dim}-dimensional latent code trained for {len(hist.epochs)} epochs "
                    f"({train_s:.0f} s) on scikit-learn's bundled 8×8 digits, offline; every number on this page "
                    "comes from this run. Each card's command reproduces it on the files written beside this page.")
    report.metrics["model"] = metrics
    write_data_files(out, data)
    gen = torch.Generator().manual_seed(seed)
    save_grid(out / "samples.png", model.sample(64, gen).numpy(), (8, 8), ncol=8, scale=8)
    recon = model.reconstruct(x["test"][:16])
    save_grid(out / "reconstructions.png", np.concatenate([x["test"][:16].numpy(), recon.numpy()]), (8, 8),
              ncol=16, scale=6)
    save_curves(out / "loss_curve.png", hist.epochs, ["train_loss", "val_recon", "val_kl"], title="training",
                ylabel="nats per digit", labels=["training loss (−ELBO)", "validation reconstruction term",
                                                 "validation KL to the prior"])
    report.add(Section(
        "Model", f"MLP VAE 64-256-128-{mcfg.latent_dim}, Bernoulli likelihood on pixel intensities in [0, 1]; "
                 f"{len(hist.epochs)} epochs in {train_s:.1f} s. Test metrics use k = 1000 importance samples.",
        images=[("samples.png", "samples from the prior"),
                ("reconstructions.png", "test digits (top) and their reconstructions (bottom)"),
                ("loss_curve.png", "loss per epoch")],
        meaning=f"an unseen digit costs {metrics['nll']:.1f} nats to describe ({metrics['bits_per_dim']:.2f} bits "
                f"per pixel, against 1 bit for a coin flip per pixel); lower is better. The ELBO lies "
                f"{-metrics['elbo'] - metrics['nll']:.2f} nats below the log-likelihood.",
        table={"test negative log-likelihood (nats per digit; lower is better)": metrics["nll"],
               "the same in bits per pixel": metrics["bits_per_dim"],
               "evidence lower bound, ELBO (nats per digit)": metrics["elbo"],
               "reconstruction term (nats per digit)": metrics["recon"],
               "KL to the prior (nats per digit)": metrics["kl"],
               f"latent dimensions in use (of {mcfg.latent_dim})": metrics["active_units"],
               "training time (s)": train_s}))
    exploration_section(report, model, x["test"], seed)
    anomaly_section(report, data, epochs, seed)
    inpainting_section(report, model, x, seed)

    compression_section(report, model, x["test"], seed)
    tabular_generation_section(report, epochs, seed)
    add_cards(report, out, epochs, seed)
    return report.write()


def exploration_section(report: Report, model: VAE, x_test: torch.Tensor, seed: int) -> None:
    """Generation and latent exploration: temperature samples, a spherical interpolation (PNG strip + GIF),
    a latent map over the two dimensions with the largest KL, and traversals."""

    out = report.dir
    gen = torch.Generator().manual_seed(seed)
    cold = model.sample(16, gen, temperature=0.7)
    save_grid(out / "samples_t07.png", cold.numpy(), (8, 8), ncol=16, scale=6)
    path = explore.interpolate(model, x_test[0], x_test[1], steps=10)
    save_grid(out / "interpolation.png", path.numpy(), (8, 8), ncol=10, scale=8)
    explore.gif(out / "interpolation.gif", to_images(path.numpy(), (8, 8)), scale=16)
    info = explore.kl_per_dimension(model, x_test)
    top = [int(i) for i in np.argsort(info["kl"])[::-1][:2]]
    lmap = explore.latent_map(model, (top[0], top[1]), grid=12)
    save_grid(out / "latent_map.png", lmap.reshape(-1, 64).numpy(), (8, 8), ncol=12, scale=5)
    order = [int(i) for i in np.argsort(info["kl"])[::-1][:4]]
    trav = explore.traverse(model, None, order, np.linspace(-2.5, 2.5, 9).tolist())
    save_grid(out / "traversals.png", trav.reshape(-1, 64).numpy(), (8, 8), ncol=9, scale=6)
    d = len(info["kl"])
    table = {f"latent dimensions in use (of {d}; variance of the code over digits > 0.01)": info["active_units"],
             "information per dimension, KL in nats (z0 … z" + str(d - 1) + ")":
                 " ".join(f"{v:.2f}" for v in info["kl"])}
    report.metrics["exploration"] = {"active_units": info["active_units"], "kl_per_dim": info["kl"],
                                     "map_dimensions": top}
    report.add(Section(
        "Generation and latent exploration",
        "Samples at temperature 0.7; spherical interpolation between two test digits; a latent map over the two "
        f"dimensions with the largest KL ({top[0]}, {top[1]}; others at 0); traversals of the four most "
        "informative dimensions from −2.5 to 2.5. Interactive: vaekit explore MODEL_DIR --data FILE.",
        images=[("samples_t07.png", "samples, temperature 0.7"), ("interpolation.png", "interpolation (slerp)"),
                ("interpolation.gif", "interpolation, animated"), ("latent_map.png", "latent map"),
                ("traversals.png", "traversals, one row per dimension")],
        meaning=f"the model uses {info['active_units']} of its {d} latent dimensions; moving along the strongest "
                "ones changes the digit smoothly (the map and the traversals), the others are ignored by the decoder.",
        table=table))


def anomaly_section(report: Report, data: dict[str, tuple[np.ndarray, np.ndarray]], epochs: int, seed: int) -> None:
    """Fit :class:`VAEAnomalyDetector` on the training digits; score held-out digits against noise-corrupted ones
    (a quarter of the pixels replaced by uniform noise); histogram, ROC-AUC and the most abnormal test digits."""
    from sklearn.metrics import roc_auc_score


    t0 = time.perf_counter()
    out = report.dir
    x_test = data["test"][0]
    rng = np.random.default_rng(seed)
    noisy = x_test.copy()
    hit = rng.random(noisy.shape) < 0.25
    noisy[hit] = rng.random(int(hit.sum())).astype(np.float32)
    det = VAEAnomalyDetector(likelihood="bernoulli", score_type="nll", k=32, latent_dim=8, hidden=(128, 64),
                             epochs=min(epochs, 100), n_models=1, contamination=0.05, random_state=seed)
    det.fit(data["train"][0])
    s_test, s_noisy = det.decision_function(x_test), det.decision_function(noisy)
    auc = float(roc_auc_score(np.r_[np.zeros(len(s_test)), np.ones(len(s_noisy))], np.r_[s_test, s_noisy]))
    save_histogram(out / "anomaly_scores.png", {"held-out digits": s_test, "noise-corrupted digits": s_noisy},
                   det.threshold_, title=f"VAE anomaly scores (−log p(x), k = {det.k}); ROC-AUC {auc:.3f}",
                   xlabel="anomaly score, −log p(x) in nats")
    worst = np.argsort(-s_test)[:8]
    save_grid(out / "anomaly_top.png", x_test[worst], (8, 8), ncol=8, scale=8)
    table = {"roc_auc": auc, "threshold": det.threshold_, "flagged_held_out": float(det.predict(x_test).mean()),
             "flagged_noisy": float(det.predict(noisy).mean()), "seconds": time.perf_counter() - t0}
    report.metrics["anomaly"] = table
    shown = {"ROC-AUC, clean vs corrupted digits (1 = perfect, 0.5 = chance)": auc,
             "score threshold, −log p(x) in nats (above = anomaly)": det.threshold_,
             "clean held-out digits flagged (false alarms)": f"{table['flagged_held_out']:.1%}",
             "noise-corrupted digits flagged (caught)": f"{table['flagged_noisy']:.1%}",
             "time (s)": table["seconds"]}
    report.add(Section(
        "Anomaly detection", "VAEAnomalyDetector (Bernoulli likelihood, importance-sampled −log p(x)) fitted on the "
        "training digits with contamination 0.05; held-out digits against the same digits with 25% of the pixels "
        "replaced by uniform noise.",
        images=[("anomaly_scores.png", "scores of held-out vs. noise-corrupted digits, threshold dashed"),
                ("anomaly_top.png", "the 8 held-out digits with the highest anomaly scores")],
        meaning=f"given one clean and one corrupted digit, the corrupted one gets the higher score {auc:.1%} of the "
                f"time; at the threshold {table['flagged_noisy']:.0%} of the corrupted digits are caught and "
                f"{table['flagged_held_out']:.0%} of the clean ones are false alarms (about 5% by construction).",
        table=shown))


def inpainting_section(report: Report, model: VAE, x: dict[str, torch.Tensor], seed: int) -> None:
    """Inpaint the central 4×4 block of the test digits with E[x_mis | x_obs] (importance-weighted, masked
    likelihood, :func:`vaekit.jobs.impute.inpaint.inpaint`); compare with filling the block with the training pixel means."""

    t0 = time.perf_counter()
    x_test = x["test"]
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 2:6] = True
    observed = ~hole.flatten().expand_as(x_test)
    filled, ess = inpaint(model, x_test, observed, n_samples=500, rounds=2, seed=seed)
    mean_fill = torch.where(observed, x_test, x["train"].mean(0).expand_as(x_test))
    table = {"mse_masked_vae": float(((filled - x_test)[~observed] ** 2).mean()),
             "mse_masked_mean_fill": float(((mean_fill - x_test)[~observed] ** 2).mean()),
             "mean_effective_sample_size": float(ess.mean()), "seconds": time.perf_counter() - t0}
    report.metrics["inpainting"] = table
    shown = torch.where(observed[:8], x_test[:8], torch.full_like(x_test[:8], 0.5))
    save_grid(report.dir / "inpainting.png", torch.cat([x_test[:8], shown, filled[:8]]).numpy(), (8, 8), ncol=8,
              scale=8)
    gain = 1 - table["mse_masked_vae"] / table["mse_masked_mean_fill"]
    report.add(Section(
        "Inpainting", "The central 4×4 block of each test digit is hidden and filled with the importance-weighted "
        "conditional expectation E[x_mis | x_obs] under the model above (L = 500 samples, likelihood restricted to "
        "the observed pixels); the error on the hidden pixels is compared with filling them by training pixel means.",
        images=[("inpainting.png", "test digits (top), block hidden (middle, grey), inpainted (bottom)")],
        meaning=f"the model's guess for the hidden centre has {abs(gain):.0%} {'less' if gain >= 0 else 'MORE'} "
                "squared error than pasting in the average digit's centre: it uses the visible border to tell which "
                "digit it is.",
        table={"squared error on the hidden pixels, VAE (intensities in [0, 1])": table["mse_masked_vae"],
               "squared error on the hidden pixels, average-digit fill": table["mse_masked_mean_fill"],
               "effective sample size (of 500 importance samples)": table["mean_effective_sample_size"],
               "time (s)": table["seconds"]}))


def tabular_generation_section(report: Report, epochs: int, seed: int) -> None:
    """Conditional table generation: a :class:`~vaekit.jobs.generate.tabular.TabularGenerator` conditioned on the cultivar of
    scikit-learn's wine table (178 rows, 13 measurements); 200 rows drawn per cultivar are compared with the real
    rows (per-class means of two measurements, and a scatter plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.datasets import load_wine


    t0 = time.perf_counter()
    w = load_wine(as_frame=True)
    df = w.data.assign(cultivar=[str(w.target_names[i]) for i in w.target])
    gen = TabularGenerator(condition_columns=["cultivar"], max_steps=min(800, 20 * epochs), latent_dim=8,
                           hidden=(128, 128), random_state=seed).fit(df)
    classes = sorted(df["cultivar"].unique())
    synth = pd.concat([gen.sample(200, {"cultivar": c}, random_state=seed + i) for i, c in enumerate(classes)])
    gen.sample(500, random_state=seed).to_csv(report.dir / "synthetic_wine.csv", index=False)
    cols = ["alcohol", "proline"]
    table: dict[str, Any] = {"fit_seconds": time.perf_counter() - t0}
    units = {"alcohol": "% vol", "proline": "mg/L"}
    shown: dict[str, Any] = {}
    worst = 0.0
    for c in classes:
        for col in cols:
            real, fake = df.loc[df.cultivar == c, col].mean(), synth.loc[synth.cultivar == c, col].mean()
            worst = max(worst, abs(fake - real) / abs(real))
            table[f"{c} {col}: real / synthetic mean"] = f"{real:.3g} / {fake:.3g}"
            shown[f"{c}: mean {col} ({units[col]}), real / synthetic"] = f"{real:.3g} / {fake:.3g}"
    table["worst_relative_mean_error"] = worst
    shown["fit time (s)"] = table["fit_seconds"]
    report.metrics["tabular_generation"] = dict(table)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=90, sharex=True, sharey=True)
    for ax, (title, frame) in zip(axes, (("real rows", df), ("synthetic rows (200 per cultivar)", synth))):
        for c in classes:
            part = frame[frame.cultivar == c]
            ax.scatter(part[cols[0]], part[cols[1]], s=6, label=c)
        ax.set_title(title)
        ax.set_xlabel(cols[0])
    axes[0].set_ylabel(cols[1])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_save(report.dir / "tabular_generation.png", lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    report.add(Section(
        "Tabular generation", "A conditional VAE (TabularGenerator; mixed likelihood over quantile-transformed "
        "measurements) fitted on scikit-learn's wine table with the cultivar as condition column; rows are drawn "
        "for a given cultivar without rejection sampling. Also written: synthetic_wine.csv (500 unconditioned rows). "
        "CLI: vaekit generate fit TABLE.csv --out DIR --condition-columns cultivar; "
        "vaekit generate sample DIR -n 1000 --where cultivar=class_0 --out rows.csv.",
        images=[("tabular_generation.png", "alcohol vs proline, real and synthetic, coloured by cultivar")],
        meaning=f"rows drawn for a cultivar have that cultivar's typical values: every per-cultivar mean shown is "
                f"within {worst:.0%} of the real one, and the scatter plots overlap.",
        table=shown))
