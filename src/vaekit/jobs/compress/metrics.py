"""Image-quality and rate–distortion metrics: PSNR, MS-SSIM (Wang et al. 2003) and Bjøntegaard BD-rate."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """10·log₁₀(255² / MSE) over all pixels and channels (inf for identical images)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0 ** 2 / mse))


def _window(size: int) -> np.ndarray:
    """1-D Gaussian taps, applied separably along H then W."""
    g = np.exp(-((np.arange(size, dtype=np.float64) - size // 2) ** 2) / (2 * SIGMA ** 2))
    return g / g.sum()


def _blur(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Valid separable Gaussian filtering of (..., H, W): float32 correlate1d along W, transpose, along H."""
    r = len(g) // 2
    out = correlate1d(v.astype(np.float32), g.astype(np.float32), axis=-1, mode="constant")
    out = correlate1d(np.ascontiguousarray(out.swapaxes(-1, -2)), g.astype(np.float32), axis=-1, mode="constant")
    return out.swapaxes(-1, -2)[..., r:v.shape[-2] - r, r:v.shape[-1] - r].astype(np.float64)


def _ssim_cs(x: np.ndarray, y: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and contrast–structure term over valid Gaussian windows, per channel ((C,H,W) inputs)."""
    mu_x, mu_y, exx, eyy, exy = _blur(np.stack([x, y, x * x, y * y, x * y]), win)
    sxx, syy, sxy = exx - mu_x ** 2, eyy - mu_y ** 2, exy - mu_x * mu_y
    cs = (2 * sxy + C2) / (sxx + syy + C2)
    ssim = (2 * mu_x * mu_y + C1) / (mu_x ** 2 + mu_y ** 2 + C1) * cs
    return ssim.mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _pool2(v: np.ndarray) -> np.ndarray:
    """2×2 average pooling of (C,H,W), odd last row/column dropped."""
    h, w = v.shape[1] // 2 * 2, v.shape[2] // 2 * 2
    v = v[:, :h, :w]
    return 0.25 * (v[:, 0::2, 0::2] + v[:, 1::2, 0::2] + v[:, 0::2, 1::2] + v[:, 1::2, 1::2])


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM = ssim_S^{w_S} · Π_{j<S} cs_j^{w_j} on the 0..255 scale, averaged over channels.

    11×11 Gaussian window (σ 1.5, separable, float32 filtering), 2×2 average-pool between scales.
    S = min(5, number of scales whose side is ≥ 11 px); with fewer than 5 scales (e.g. 28×28 images: S = 2)
    the first S weights are renormalized.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ms_ssim: shapes differ {x.shape} vs {y.shape}")
    x, y = (x[None], y[None]) if x.ndim == 2 else (x.transpose(2, 0, 1), y.transpose(2, 0, 1))
    side = min(x.shape[-2:])
    scales = 0
    while scales < 5 and side // (2 ** scales) >= WINDOW:
        scales += 1
    if scales == 0:
        raise ValueError(f"ms_ssim: images must be at least {WINDOW}×{WINDOW}")
    w = np.array(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    win = _window(WINDOW)
    vals = []
    for j in range(scales):
        ssim, cs = _ssim_cs(x, y, win)
        vals.append(ssim if j == scales - 1 else cs)
        if j < scales - 1:
            x, y = _pool2(x), _pool2(y)
    stack = np.maximum(np.stack(vals), 0.0)  # (S, C)
    return float(np.prod(stack ** w[:, None], axis=0).mean())


def bd_rate(r_ref: np.ndarray, p_ref: np.ndarray, r_new: np.ndarray, p_new: np.ndarray) -> float:
    """Bjøntegaard delta rate (%) of ``new`` vs ``ref``: exp(mean_{p∈[lo,hi]} (ln r_new − ln r_ref)(p)) − 1.

    Each curve is fitted as ln r = cubic(PSNR) (numpy.polyfit) and integrated over the overlapping PSNR
    interval [max of the minima, min of the maxima]; NaN if the curves do not overlap.
    """
    r_ref, p_ref, r_new, p_new = (np.asarray(v, np.float64) for v in (r_ref, p_ref, r_new, p_new))
    lo, hi = max(p_ref.min(), p_new.min()), min(p_ref.max(), p_new.max())
    if not hi > lo or min(len(p_ref), len(p_new)) < 4:
        return float("nan")
    fits = [np.polyint(np.polyfit(p, np.log(r), 3)) for r, p in ((r_ref, p_ref), (r_new, p_new))]
    area = [np.polyval(f, hi) - np.polyval(f, lo) for f in fits]
    return float((np.exp((area[1] - area[0]) / (hi - lo)) - 1.0) * 100.0)


def bd_rate_interp(r_ref: np.ndarray, p_ref: np.ndarray, r_new: np.ndarray, p_new: np.ndarray,
                   n: int = 1000) -> float:
    """BD-rate (%) with piecewise-linear ln r(PSNR) instead of the cubic fit (a check on fragile fits)."""
    r_ref, p_ref, r_new, p_new = (np.asarray(v, np.float64) for v in (r_ref, p_ref, r_new, p_new))
    lo, hi = max(p_ref.min(), p_new.min()), min(p_ref.max(), p_new.max())
    if not hi > lo:
        return float("nan")
    grid = np.linspace(lo, hi, n)
    a, b = (np.interp(grid, *zip(*sorted(zip(p, np.log(r))))) for r, p in ((r_ref, p_ref), (r_new, p_new)))
    return float((np.exp(np.trapezoid(b - a, grid) / (hi - lo)) - 1.0) * 100.0)
