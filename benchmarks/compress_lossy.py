"""Benchmark: the lossy learned image codec vs JPEG and WebP (Pillow) — RD curves, BD-rate, speed.

Sets: MNIST and Fashion-MNIST test images (codecs trained on x_train), Kodak (24 RGB images, 2-fold: a codec
trained on random crops of kodim01–12 codes kodim13–24 and vice versa). For every image and operating point:
bpp = 8·bytes/(H·W) and PSNR / MS-SSIM (vaekit.jobs.compress.metrics) of the decoded uint8 image, averaged per image.
Two rate accountings: "file" = whole files (ours: the .vkz container, compact version-2 header (magic,
version, codec id, fingerprint, [h, w, c, q]) and checksum, 38 bytes in all on a 28×28 image; JPEG:
a full JFIF file; WebP: the RIFF file) and "stream" = entropy-coded data only (ours: the range-coder payload;
JPEG: Pillow's abbreviated stream without quantization/Huffman tables, streamtype=2). BD-rate (Bjøntegaard,
cubic fit of log-rate over PSNR on the overlapping PSNR interval) vs JPEG, negative = fewer bits.

    OMP_NUM_THREADS=1 python benchmarks/compress_lossy.py --out benchmarks/results/compress [--n-test 1000]
    python benchmarks/compress_lossy.py --seed 1 --name lossy_s1      # another training seed (codecs *_s1)
    python benchmarks/compress_lossy.py --summarize lossy.json lossy_s1.json lossy_s2.json --name lossy_seeds
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from vaekit.files import atomic_save, atomic_write_text
from vaekit.jobs.compress.container import unpack
from vaekit.jobs.compress.lossy import compress_image, decompress_image, load_codec
from vaekit.jobs.compress.lossy_train import train_codec
from vaekit.jobs.compress.metrics import bd_rate, bd_rate_interp, ms_ssim, psnr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PSNR_CAP = 100.0
QUALITIES = {"small": [5, 10, 20, 30, 40, 50, 70, 85, 95], "kodak": [10, 20, 35, 50, 70, 90]}  # JPEG/WebP
SMALL = dict(N=64, M=16, n_down=2, steps=2500, finetune_steps=600, batch_size=32, crop=28, lr=2e-3)
SETTINGS: dict[str, dict[str, Any]] = {  # sized for ≈ 45 CPU-minutes of training in all, single thread
    "mnist": dict(SMALL, lambdas=[300, 120, 50, 20, 8]),
    "fashion_mnist": dict(SMALL, lambdas=[300, 120, 50, 20, 8]),
    "kodak": dict(N=48, M=64, n_down=4, steps=8000, finetune_steps=800, batch_size=8, crop=64, lr=2e-3,
                  lambdas=[400, 150, 60, 25]),
}


def pil_codec(img: np.ndarray, fmt: str, q: int) -> tuple[int, int, np.ndarray]:
    """(file bytes, stream bytes, decoded) for JPEG/WebP at quality q (stream = file for WebP)."""
    buf = io.BytesIO()
    opts = {"quality": q} if fmt == "JPEG" else {"quality": q, "method": 4}
    Image.fromarray(img).save(buf, format=fmt, **opts)
    data = buf.getvalue()
    dec = np.asarray(Image.open(io.BytesIO(data)).convert("L" if img.ndim == 2 else "RGB"))
    stream = len(data)
    if fmt == "JPEG":
        b2 = io.BytesIO()
        Image.fromarray(img).save(b2, format=fmt, streamtype=2, **opts)
        stream = len(b2.getvalue())
    return len(data), stream, dec


def summarize(rows: list[tuple[float, float, float, float]]) -> dict[str, float]:
    """Per-image means; a per-image PSNR is capped at PSNR_CAP dB so an exact reconstruction stays finite."""
    a = np.array(rows, dtype=np.float64)
    a[:, 2] = np.minimum(a[:, 2], PSNR_CAP)
    return {"bpp": float(a[:, 0].mean()), "bpp_stream": float(a[:, 1].mean()), "psnr": float(a[:, 2].mean()),
            "ms_ssim": float(a[:, 3].mean())}


def eval_baselines(images: list[np.ndarray], qualities: list[int]) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {}
    for fmt, name in (("JPEG", "jpeg"), ("WEBP", "webp")):
        out[name] = []
        for q in qualities:
            rows = []
            for img in images:
                n, ns, dec = pil_codec(img, fmt, q)
                px = img.shape[0] * img.shape[1]
                rows.append((8 * n / px, 8 * ns / px, psnr(img, dec), ms_ssim(img, dec)))
            out[name].append(dict(summarize(rows), quality=q))
    return out


def eval_ours(images: list[np.ndarray], codec_for: Callable[[int], Any], n_levels: int) -> tuple[list, dict]:
    """RD points per quality level through the real API (compress_image → bytes → decompress_image)."""
    points, raw = [], 0
    wall, cpu = np.zeros(2), np.zeros(2)  # [encode, decode] seconds
    for q in range(n_levels):
        rows = []
        for i, img in enumerate(images):
            codec = codec_for(i)
            t, c = time.perf_counter(), time.process_time()
            data = compress_image(codec, img, q)
            t1, c1 = time.perf_counter(), time.process_time()
            dec = decompress_image(data, codec)
            wall += (t1 - t, time.perf_counter() - t1)
            cpu += (c1 - c, time.process_time() - c1)
            raw += img.size
            px = img.shape[0] * img.shape[1]
            rows.append((8 * len(data) / px, 8 * len(unpack(data).payload) / px, psnr(img, dec), ms_ssim(img, dec)))
        points.append(dict(summarize(rows), quality=q, **{"lambda": codec_for(0).lambdas[q]}))
    speed = {"encode_MB_s": raw / wall[0] / 1e6, "decode_MB_s": raw / wall[1] / 1e6,
             "encode_MB_s_cpu": raw / cpu[0] / 1e6, "decode_MB_s_cpu": raw / cpu[1] / 1e6,
             "images": len(images) * n_levels}
    return points, speed


def ensure_codec(name: str, images: Any, out: Path, log: Callable[[str], None],
                 seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """Train the codec into ``out`` unless it is already there → (folder, its recorded training time)."""
    if not (out / "config.json").is_file():
        s = dict(SETTINGS[name.split("_fold")[0]])
        lambdas = s.pop("lambdas")
        train_codec(images, out, lambdas, seed=seed, log=lambda m: log(f"[{name}] {m}"), **s)
    train = json.loads((out / "config.json").read_text())["extra"].get("train", {})
    return out, {"wall_seconds": train.get("seconds"), "cpu_seconds": train.get("cpu_seconds")}


def curves(res: dict[str, list[dict[str, float]]], key: str, bd: Callable[..., float] = bd_rate) -> dict[str, Any]:
    """BD-rates (PSNR) of ours/WebP vs JPEG in the file and stream accountings, plus the PSNR overlap used."""
    def arr(pts: list[dict[str, float]], k: str) -> np.ndarray:
        return np.array([p[k] for p in pts])
    j = res["jpeg"]
    out: dict[str, Any] = {"ours_file_vs_jpeg_file": bd(arr(j, "bpp"), arr(j, "psnr"), arr(res[key], "bpp"),
                                             arr(res[key], "psnr")),
           "ours_stream_vs_jpeg_stream": bd(arr(j, "bpp_stream"), arr(j, "psnr"), arr(res[key], "bpp_stream"),
                                                 arr(res[key], "psnr")),
           "webp_file_vs_jpeg_file": bd(arr(j, "bpp"), arr(j, "psnr"), arr(res["webp"], "bpp"),
                                             arr(res["webp"], "psnr")),
           "ours_file_vs_webp_file": bd(arr(res["webp"], "bpp"), arr(res["webp"], "psnr"), arr(res[key], "bpp"),
                                             arr(res[key], "psnr"))}
    out = {k: round(v, 2) for k, v in out.items()}
    lo = max(arr(j, "psnr").min(), arr(res[key], "psnr").min())
    hi = min(arr(j, "psnr").max(), arr(res[key], "psnr").max())
    out["psnr_overlap_vs_jpeg_db"] = [round(float(lo), 2), round(float(hi), 2)]
    return out


def bd_fields(res: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Cubic-fit BD-rates (the Bjøntegaard definition) and the piecewise-linear check."""
    return {"bd_rate_psnr_pct": curves(res, "ours"), "bd_rate_psnr_pct_linear": curves(res, "ours", bd_rate_interp)}


def _pct(v: float) -> str:
    return "n/a (no PSNR overlap)" if v != v else f"{v:+.1f}%"


def plot(path: Path, title: str, res: dict[str, list[dict[str, float]]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("psnr", "ms_ssim")):
        for name, style in (("ours", "o-"), ("jpeg", "s-"), ("webp", "^-")):
            pts = res[name]
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], style, label=f"{name} (file)", ms=4)
        for name, style in (("ours", "o--"), ("jpeg", "s--")):
            pts = res[name]
            ax.plot([p["bpp_stream"] for p in pts], [p[metric] for p in pts], style, alpha=0.5, ms=3,
                    label=f"{name} (stream only)")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "MS-SSIM")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def run_set(name: str, args: argparse.Namespace, models: Path, log: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.perf_counter()
    sfx = f"_s{args.seed}" if args.seed else ""  # seed 0's folders keep their first names
    train_cpu: dict[str, Any] = {}
    if name == "kodak":
        files = sorted((SHARED / "kodak").glob("kodim*.png"))
        imgs = [np.asarray(Image.open(p).convert("RGB")) for p in files]
        folds = [(list(range(0, 12)), list(range(12, 24))), (list(range(12, 24)), list(range(0, 12)))]
        codecs = []
        for k, (tr, _) in enumerate(folds):
            d, cpu = ensure_codec(f"kodak_fold{k}", [imgs[i] for i in tr], models / f"kodak_fold{k}{sfx}", log,
                                  args.seed)
            train_cpu[f"fold{k}"] = cpu
            codecs.append(load_codec(d))
        test = [i for _, te in folds for i in te]
        which = {pos: codecs[0 if pos < 12 else 1] for pos in range(24)}
        test_imgs = [imgs[i] for i in test]
        protocol = "2-fold: codec trained on kodim01-12 codes kodim13-24, codec trained on kodim13-24 codes kodim01-12"
    else:
        z = np.load(SHARED / f"{name}.npz")
        d, cpu = ensure_codec(name, z["x_train"], models / f"{name}{sfx}", log, args.seed)
        train_cpu["codec"] = cpu
        codec = load_codec(d)
        which = None
        test_imgs = list(z["x_test"][:args.n_test])
        protocol = f"trained on x_train (60,000); tested on the first {len(test_imgs)} of x_test"
    log(f"[{name}] evaluating {len(test_imgs)} images")
    ours, speed = eval_ours(test_imgs, (lambda i: which[i]) if which else (lambda i: codec), len(
        (codecs[0] if which else codec).lambdas))
    res = {"ours": ours, **eval_baselines(test_imgs, QUALITIES["kodak" if name == "kodak" else "small"])}
    if not args.seed:  # the README's plots are seed 0's
        plot(args.out / f"lossy_rd_{name}.png", f"{name}: rate–distortion (test images)", res)
    return {"protocol": protocol, "points": res, **bd_fields(res), "speed": speed, "seed": args.seed,
            "training_time": train_cpu, "settings": SETTINGS[name], "seconds": round(time.perf_counter() - t0, 1)}


def write_md(path: Path, doc: dict[str, Any]) -> None:
    lines = ["# Lossy learned image codec vs JPEG / WebP", "", doc["notes"], ""]
    for name, r in doc["sets"].items():
        bd, lin = r["bd_rate_psnr_pct"], r.get("bd_rate_psnr_pct_linear", {})
        lines += [f"## {name}", "", r["protocol"], "",
                  f"BD-rate (PSNR) vs JPEG: **file {_pct(bd['ours_file_vs_jpeg_file'])}**, stream "
                  f"{_pct(bd['ours_stream_vs_jpeg_stream'])} (over the PSNR overlap "
                  f"{bd.get('psnr_overlap_vs_jpeg_db')} dB; piecewise-linear check: file "
                  f"{_pct(lin.get('ours_file_vs_jpeg_file', float('nan')))}, stream "
                  f"{_pct(lin.get('ours_stream_vs_jpeg_stream', float('nan')))}); "
                  f"WebP vs JPEG (file) {_pct(bd['webp_file_vs_jpeg_file'])}; "
                  f"ours vs WebP (file) {_pct(bd['ours_file_vs_webp_file'])}", "",
                  f"Speed (1 thread, per image through the API incl. container, MB/s of raw pixels; wall clock on a "
                  f"shared 2-core machine / per CPU-second): encode {r['speed']['encode_MB_s']:.3f} / "
                  f"{r['speed'].get('encode_MB_s_cpu', float('nan')):.3f}, decode {r['speed']['decode_MB_s']:.3f} / "
                  f"{r['speed'].get('decode_MB_s_cpu', float('nan')):.3f}. "
                  f"Training time (s): {r['training_time']}", "",
                  "| codec | setting | bpp (file) | bpp (stream) | PSNR dB | MS-SSIM |", "|---|---|---|---|---|---|"]
        for codec in ("ours", "jpeg", "webp"):
            for p in r["points"][codec]:
                setting = f"q{p['quality']} λ={p['lambda']:g}" if codec == "ours" else f"quality {p['quality']}"
                lines.append(f"| {codec} | {setting} | {p['bpp']:.3f} | {p['bpp_stream']:.3f} | {p['psnr']:.2f} | "
                             f"{p['ms_ssim']:.4f} |")
        if not r.get("seed"):
            lines += ["", f"![RD {name}](lossy_rd_{name}.png)", ""]
    atomic_write_text(path, "\n".join(lines) + "\n")


def summarize_seeds(files: list[Path]) -> dict[str, Any]:
    """Mean ± s.d. over training seeds (one results file per seed) of every BD-rate, per set."""
    from summarise_seeds import spread  # benchmarks/ is on sys.path (main)

    docs = [json.loads(f.read_text()) for f in files]
    out: dict[str, Any] = {"files": [f.name for f in files], "sets": {}}
    for name in docs[0]["sets"]:
        runs = [d["sets"][name] for d in docs if name in d["sets"]]
        row: dict[str, Any] = {"seeds": [r.get("seed", 0) for r in runs], "protocol": runs[0]["protocol"]}
        for field in ("bd_rate_psnr_pct", "bd_rate_psnr_pct_linear"):
            row[field] = {k: spread([r[field][k] for r in runs]) for k in runs[0][field]
                          if k != "psnr_overlap_vs_jpeg_db"}
            row[field]["psnr_overlap_vs_jpeg_db"] = [r[field]["psnr_overlap_vs_jpeg_db"] for r in runs]
        row["speed"] = {k: spread([r["speed"][k] for r in runs]) for k in ("encode_MB_s", "decode_MB_s")}
        out["sets"][name] = row
    return out


def _ms(st: dict[str, Any]) -> str:
    return "n/a" if st["mean"] != st["mean"] else f"{st['mean']:+.1f}% ± {st['sd']:.1f}"


def write_seeds_md(path: Path, doc: dict[str, Any]) -> None:
    lines = ["# Lossy codec over training seeds: BD-rate (PSNR), mean ± s.d. over seeds", "",
             f"From {', '.join(doc['files'])}; each file is one training seed of every codec, coded and scored the "
             "same way (benchmarks/compress_lossy.py). Negative = fewer bits than the reference at equal PSNR.", "",
             "| set | seeds | stream vs JPEG (cubic) | (piecewise) | file vs WebP (cubic) | file vs JPEG (cubic) | "
             "per seed: stream vs JPEG |", "|---|---|---:|---:|---:|---:|---|"]
    for name, r in doc["sets"].items():
        c, lin = r["bd_rate_psnr_pct"], r["bd_rate_psnr_pct_linear"]
        per = ", ".join(f"{v:+.1f}%" for v in c["ours_stream_vs_jpeg_stream"]["values"])
        lines.append(f"| {name} | {len(r['seeds'])} | {_ms(c['ours_stream_vs_jpeg_stream'])} | "
                     f"{_ms(lin['ours_stream_vs_jpeg_stream'])} | {_ms(c['ours_file_vs_webp_file'])} | "
                     f"{_ms(c['ours_file_vs_jpeg_file'])} | {per} |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compress"))
    ap.add_argument("--models", type=Path, default=None, help="Codec folders (default OUT/lossy_models).")
    ap.add_argument("--sets", default="fashion_mnist,mnist,kodak")
    ap.add_argument("--n-test", type=int, default=1000, help="MNIST/Fashion-MNIST test images used.")
    ap.add_argument("--report-only", action="store_true", help="Recompute BD-rates, plots and the .md from "
                    "the points already in OUT/NAME.json (no training or coding).")
    ap.add_argument("--seed", type=int, default=0, help="Training seed of every codec (seed ≠ 0: folders *_sSEED).")
    ap.add_argument("--name", default="lossy", help="Results file stem: OUT/NAME.json and OUT/NAME.md.")
    ap.add_argument("--summarize", nargs="+", metavar="FILE", help="Only summarize these results files (one per "
                    "seed, names relative to OUT) over seeds into OUT/NAME.json/.md.")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from provenance import provenance

    if args.summarize:
        doc = {**summarize_seeds([args.out / f for f in args.summarize]), **provenance()}
        atomic_write_text(args.out / f"{args.name}.json", json.dumps(doc, indent=2))
        write_seeds_md(args.out / f"{args.name}.md", doc)
        return
    if args.report_only:
        path = args.out / f"{args.name}.json"
        doc = json.loads(path.read_text())
        for name, r in doc["sets"].items():
            r.update(bd_fields(r["points"]))
            plot(args.out / f"lossy_rd_{name}.png", f"{name}: rate–distortion (test images)", r["points"])
        doc["notes"] = __doc__.split("\n\n")[1].replace("\n", " ")
        atomic_write_text(path, json.dumps(doc, indent=2))
        write_md(args.out / f"{args.name}.md", doc)
        return
    torch.set_num_threads(1)
    prov = provenance(threads=1)  # before the run: its load average is the one the run met
    models = args.models or args.out / "lossy_models"
    log = lambda m: print(m, flush=True)  # noqa: E731
    path = args.out / f"{args.name}.json"
    for name in args.sets.split(","):
        res = run_set(name, args, models, log)
        doc = json.loads(path.read_text()) if path.is_file() else {"sets": {}}  # re-read: other runs may write too
        doc["sets"][name] = res
        doc.update(notes=__doc__.split("\n\n")[1].replace("\n", " "), platform=platform.platform(),
                   torch=torch.__version__, threads=torch.get_num_threads(), qualities=QUALITIES, **prov)
        atomic_write_text(path, json.dumps(doc, indent=2))
        write_md(args.out / f"{args.name}.md", doc)
        log(f"[{name}] BD-rate vs JPEG: {doc['sets'][name]['bd_rate_psnr_pct']}")


if __name__ == "__main__":
    main()
