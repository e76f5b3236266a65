"""Pictures: image grids (PIL) and curves (matplotlib, Agg), all written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vaekit.files import atomic_save


def to_images(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Flat values in [0, 1] (N, D) → uint8 images (N, H, W) or (N, H, W, C)."""
    x = np.asarray(x, dtype=np.float32)
    if x.max(initial=0) > 1.0 + 1e-6:  # already 0..255
        x = x / 255.0
    imgs = np.clip(x.reshape(len(x), *shape) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if imgs.ndim == 4:
        imgs = imgs[:, 0] if imgs.shape[1] == 1 else imgs.transpose(0, 2, 3, 1)
    elif imgs.ndim == 2:
        side = int(round(np.sqrt(imgs.shape[1])))
        imgs = imgs.reshape(len(imgs), side, -1)
    return imgs


def grid(images: np.ndarray, ncol: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile (N, H, W[, C]) uint8 images into one image."""
    n = len(images)
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    h, w = images.shape[1:3]
    chans = images.shape[3:] if images.ndim == 4 else ()
    out = np.full(((h + pad) * nrow + pad, (w + pad) * ncol + pad, *chans), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out


def save_png(path: str | Path, image: np.ndarray) -> Path:
    from PIL import Image

    atomic_save(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
    return Path(path)


def save_grid(path: str | Path, x: np.ndarray, shape: Sequence[int], ncol: int | None = None,
              scale: int = 1) -> Path:
    return save_png(path, grid(to_images(x, shape), ncol=ncol, scale=scale))


def save_curves(path: str | Path, rows: list[dict[str, float]], keys: Sequence[str], title: str = "",
                xkey: str = "epoch", ylabel: str = "nats", labels: Sequence[str] | None = None) -> Path:
    """One line per key of ``rows`` against ``xkey``; ``labels`` (same order as ``keys``) name them in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for k, name in zip(keys, labels or keys):
        pts = [(r[xkey], r[k]) for r in rows if k in r and r[k] == r[k]]
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.set_xlabel(xkey)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return Path(path)


def save_histogram(path: str | Path, series: dict[str, np.ndarray], threshold: float | None = None,
                   title: str = "", xlabel: str = "anomaly score", bins: int = 60, clip_quantile: float = 0.995) -> Path:
    """Overlaid density histograms of score series with a threshold line; values above the pooled
    ``clip_quantile`` (or the threshold, if larger) are counted in the last bin so that a few huge scores do not
    squash the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in series.values()])
    pooled = pooled[np.isfinite(pooled)]
    lo = float(pooled.min()) if pooled.size else 0.0
    hi = float(np.quantile(pooled, clip_quantile)) if pooled.size else 1.0
    if threshold is not None and np.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold * 1.05 if threshold > 0 else threshold + 1e-3)
    hi = hi if hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, v in series.items():
        v = np.asarray(v, dtype=np.float64).ravel()
        v = np.clip(v[np.isfinite(v)], lo, hi)
        ax.hist(v, bins=edges, density=True, alpha=0.55, label=f"{name} (n={len(v)})")
    if threshold is not None:
        ax.axvline(threshold, color="crimson", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel(xlabel + (" (last bin: ≥ its left edge)" if pooled.size and pooled.max() > hi else ""))
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return Path(path)
