"""The demo report's one-screen summary: one card per job, its headline number in words (computed from this run's
metrics, never typed in) and the command that reproduces it on the files the demo writes beside the report."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.files import atomic_save
from vaekit.plots import save_png, to_images
from vaekit.report import Card, Report


def times(ratio: float, what: str) -> str:
    """1.65 → '1.65× smaller than WHAT'; 0.8 → '1.25× larger than WHAT'."""
    r, word = (ratio, "smaller") if ratio >= 1 else (1 / ratio, "larger")
    return f"{r:.2f}× {word} than {what}" if r < 10 else f"{r:.0f}× {word} than {what}"


def write_data_files(out: Path, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The demo's own data, for the cards' commands: digits.npz (intensities in [0, 1], x_/y_ train/valid/test),
    digits_binary.npz (the pixels ≥ ½, as coded by the compression section), digit.png + mask.png (the first test
    digit and its hidden centre, as in the inpainting section)."""
    arrays = {f"x_{k}": v[0] for k, v in data.items()} | {f"y_{k}": v[1] for k, v in data.items()}
    atomic_save(out / "digits.npz", lambda tmp: np.savez_compressed(tmp, **arrays))
    binary = {f"x_{k}": (v[0] >= 0.5).astype(np.uint8) for k, v in data.items()}
    atomic_save(out / "digits_binary.npz", lambda tmp: np.savez_compressed(tmp, **binary))
    save_png(out / "digit.png", to_images(data["test"][0][:1], (8, 8))[0])
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    save_png(out / "mask.png", mask)


def add_cards(report: Report, out: Path, epochs: int, seed: int) -> None:
    """Generate, compress, detect, impute, explore: one card each, from ``report.metrics``."""
    m: dict[str, Any] = report.metrics
    d = shlex.quote(str(out))

    def p(name: str) -> str:
        return shlex.quote(str(out / name))

    model, tab = m["model"], m["tabular_generation"]
    report.add_card(Card(
        "generate", "samples.png",
        f"new digits drawn from the model; an unseen digit costs {model['nll']:.1f} nats "
        f"({model['bits_per_dim']:.2f} bits/pixel); synthetic wine rows within "
        f"{tab['worst_relative_mean_error']:.0%} of the real per-cultivar means",
        f"vaekit sample {p('run')} --n 64 --seed {seed} -o samples.png\n"
        f"vaekit eval {p('run')} --data {p('digits.npz')} --split test --k 1000", "samples from the model"))
    c = m["compression"]
    report.add_card(Card(
        "compress", "compression_pair.png",
        f"compressed to {c['bits_per_dim_file']:.2f} bits/pixel, {times(c['bz2_bytes'] / c['file_bytes'], 'bz2')}, "
        f"{'exact' if c['round_trip_exact'] else 'NOT exact'}",
        f"vaekit compress {p('digits_binary.npz')} --lossless --model {p('run/model')} --latent-bits 10 "
        "-o digits.vkz\nvaekit decompress digits.vkz -o digits.npy", "original and decoded digits"))
    a = m["anomaly"]
    report.add_card(Card(
        "detect", "anomaly_scores.png",
        f"anomalies found: AUC {a['roc_auc']:.3f} on noise-corrupted digits ({a['flagged_noisy']:.0%} of them "
        f"flagged, {a['flagged_held_out']:.0%} false alarms)",
        f"vaekit demo --out {d} --epochs {epochs} --seed {seed}\n"
        "(tables: vaekit anomaly fit train.csv --out detector/)", "anomaly score histograms"))
    i = m["inpainting"]
    gain = 1 - i["mse_masked_vae"] / i["mse_masked_mean_fill"]
    report.add_card(Card(
        "impute", "inpainting.png",
        f"hidden 4×4 centres filled in: {abs(gain):.0%} {'lower' if gain >= 0 else 'HIGHER'} squared error than "
        f"filling with the average digit",
        f"vaekit inpaint {p('run')} {p('digit.png')} --mask {p('mask.png')} --n-samples 500 --seed {seed} "
        "--out filled.png", "digits, hidden centres, inpainted"))
    e = m["exploration"]
    top = e["map_dimensions"]
    report.add_card(Card(
        "explore", "latent_map.png",
        f"{e['active_units']} of {len(e['kl_per_dim'])} latent dimensions in use; the map spans the two most "
        f"informative (z{top[0]}: {e['kl_per_dim'][top[0]]:.2f} nats, z{top[1]}: {e['kl_per_dim'][top[1]]:.2f} nats)",
        f"vaekit explore {p('run')} --data {p('digits.npz')}", "latent map"))
