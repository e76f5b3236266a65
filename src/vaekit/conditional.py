"""Conditional inference under a trained VAE when some entries of x are missing (Mattei & Frellsen 2019, MIWAE).

With z_l = μ(x̃) + σ(x̃)·ε_l (ε_l ~ N(0, I), l = 1..L; x̃ = what the encoder sees: zero-filled values plus the mask for
tables, the image with its masked pixels filled for inpainting) and log-weights
    log w_l = log p(x_obs | z_l) + log p(z_l) − log q(z_l | x̃),
self-normalised importance sampling (SNIS) estimates E[f(x_mis) | x_obs] ≈ Σ_l w̄_l E[f(x_mis) | z_l], w̄ = softmax(log w),
and sampling-importance-resampling (SIR) draws x_mis ~ p(x_mis | z_l*), l* ~ Categorical(w̄).

One set of draws ε_1..ε_L is shared by all rows, so a row's estimate does not depend on the other rows of its batch.
Images: :func:`inpaint` (per-pixel masked log-likelihood) and :func:`inpaint_file` behind ``vaekit inpaint``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import DataError, VaekitError
from .model import VAE

Fn = Callable[[torch.Tensor, slice], torch.Tensor]  # (decoder params (L, B, P, D), rows of the batch) → values


def shared_eps(n_samples: int, latent_dim: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ε_1..ε_L ~ N(0, I), (L, d), from a seeded generator (the same for every row)."""
    if n_samples < 1:
        raise VaekitError(f"the number of importance samples must be >= 1, got {n_samples}")
    return torch.randn(n_samples, latent_dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _rows_per_chunk(model: VAE, chunk: int, memory_mb: float) -> int:
    """Rows per chunk so that ~3 live (chunk, rows, width) float32 tensors fit in ``memory_mb``."""
    cfg = model.config
    width = max(max(cfg.hidden, default=1), model.decoder.n_params * cfg.data_dim)
    if cfg.arch == "conv":  # the first transposed convolution's output map is the widest activation
        _, h, w = cfg.input_shape
        width = max(width, max(cfg.channels, default=1) * math.ceil(h / 2) * math.ceil(w / 2))
    return max(1, int(memory_mb * 2**20 // (3 * chunk * width * 4)))


@torch.no_grad()
def snis(model: VAE, x_in: torch.Tensor, log_lik: Fn, stat: Fn, eps: torch.Tensor, chunk: int = 128,
         memory_mb: float = 96.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_l w̄_l f(θ(z_l)) per row with w̄ ∝ p(x_obs|z_l) p(z_l) / q(z_l|x̃) → (expectations (N, F), log w (L, N)).

    ``log_lik(params, rows)`` = log p(x_obs | z) (L', B); ``stat(params, rows)`` = E[f(x) | z] (L', B, F).
    Streams over chunks of samples (online log-sum-exp) and rows, so memory stays within ~``memory_mb``.
    """
    model.eval()
    dt = eps.dtype
    rows = _rows_per_chunk(model, chunk, memory_mb)
    means, lws = [], []
    for a in range(0, len(x_in), rows):
        sl = slice(a, min(a + rows, len(x_in)))
        mu, logvar = model.encode(x_in[sl].to(dt))
        sd = torch.exp(0.5 * logvar)
        top = acc = tot = None
        lw_parts = []
        for b in range(0, len(eps), chunk):
            e = eps[b:b + chunk, None, :]
            z = mu + sd * e  # (L', B, d)
            params = model.decode(z)
            log_qz = -0.5 * (e.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)
            lw = log_lik(params, sl) + model.prior.log_prob(z) - log_qz
            f = stat(params, sl)
            m = lw.max(0).values if top is None else torch.maximum(top, lw.max(0).values)
            w = torch.exp(lw - m)
            if top is None:
                acc, tot = (w.unsqueeze(-1) * f).sum(0), w.sum(0)
            else:
                r = torch.exp(top - m)
                acc, tot = acc * r.unsqueeze(-1) + (w.unsqueeze(-1) * f).sum(0), tot * r + w.sum(0)
            top = m
            lw_parts.append(lw)
        means.append(acc / tot.unsqueeze(-1))
        lws.append(torch.cat(lw_parts))
    return torch.cat(means), torch.cat(lws, 1)


@torch.no_grad()
def sir(model: VAE, x_in: torch.Tensor, log_w: torch.Tensor, eps: torch.Tensor, m: int, draw: Fn,
        generator: torch.Generator | None = None, memory_mb: float = 96.0) -> torch.Tensor:
    """m draws per row: l* ~ Categorical(softmax(log w)), z = μ + σ·ε_l*, x ~ p(x | z) → (m, N, F)."""
    dt = eps.dtype
    rows = _rows_per_chunk(model, max(1, m), memory_mb)
    out = []
    for a in range(0, len(x_in), rows):
        sl = slice(a, min(a + rows, len(x_in)))
        mu, logvar = model.encode(x_in[sl].to(dt))
        probs = torch.softmax(log_w[:, sl].double(), 0).T  # (B, L)
        idx = torch.multinomial(probs, m, replacement=True, generator=generator).T  # (m, B)
        z = mu + torch.exp(0.5 * logvar) * eps[idx]
        out.append(draw(model.decode(z), sl))
    return torch.cat(out, 1)


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """ESS = 1 / Σ_l w̄_l² per row (between 1 and L)."""
    w = torch.softmax(log_w.double(), 0)
    return 1.0 / (w ** 2).sum(0)


# --- images ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def inpaint(model: VAE, x: torch.Tensor, observed: torch.Tensor, n_samples: int = 1000, rounds: int = 2,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """E[x_mis | x_obs] per pixel with log p(x_obs|z) = Σ_d m_d log p(x_d|z) → (filled x (N, D), ESS (N,)).

    Round 1 encodes the image with its masked pixels set to the mean of its observed ones; each further round
    encodes the previous round's completion (a better proposal; the weights keep every round unbiased in the limit).
    """
    if x.dim() != 2 or observed.shape != x.shape:
        raise DataError(f"inpaint: x and the mask must both be (N, D), got {tuple(x.shape)} and {tuple(observed.shape)}")
    lik = model.likelihood
    x = x.float()
    m = observed.to(x.dtype)
    x_obs = torch.where(observed, x, torch.zeros_like(x))  # hidden values (even NaN) never reach the likelihood
    fill = (x_obs * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
    filled = torch.where(observed, x_obs, fill.expand_as(x))
    eps = shared_eps(n_samples, model.config.latent_dim, seed)
    log_w = torch.zeros(n_samples, len(x))
    for _ in range(max(1, rounds)):
        mean, log_w = snis(model, filled, lambda p, sl: (lik.log_prob_dims(p, x_obs[sl]) * m[sl]).sum(-1),
                           lambda p, sl: lik.mean(p), eps)
        filled = torch.where(observed, x_obs, mean.to(x.dtype))
    return filled, effective_sample_size(log_w)


def _read_png(path: Path, channels: int, what: str, refuse_colour: bool = False) -> np.ndarray:
    """PNG → uint8 (H, W) or (H, W, 3); ``refuse_colour``: a grayscale read of a truly coloured image is an error."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        with Image.open(path) as im:
            if refuse_colour and channels == 1 and im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                if (rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any():
                    raise DataError(f"{path}: a colour image, but this model is trained on grayscale images")
            return np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: {what} is not a readable image ({e})") from None


def _to_uint8(model: VAE, v: torch.Tensor) -> np.ndarray:
    """Model-space values → 8-bit pixels (Bernoulli p·255; Gaussian on dequantised pixels v·256 − ½; logistic)."""
    name = model.likelihood.name
    if name == "logistic":
        v = (v + 1) * 127.5
    elif name in ("gaussian", "gaussian_learned"):
        v = v * 256 - 0.5
    else:
        v = v * 255
    return np.clip(np.round(v.double().numpy()), 0, 255).astype(np.uint8)


def inpaint_file(model_dir: str | Path, image: str | Path, mask: str | Path, out: str | Path,
                 n_samples: int = 1000, rounds: int = 2, seed: int = 0) -> dict[str, Any]:
    """Fill the pixels of IMAGE where MASK is white (≥ 128) under the image VAE in MODEL_DIR; write a PNG."""
    from PIL import Image

    from .data import Dataset
    from .io import atomic_save
    from .workflows import load, prepare_for_model

    model, extra = load(model_dir)
    if model.config.likelihood not in ("bernoulli", "gaussian", "gaussian_learned", "logistic"):
        raise VaekitError(f"{model_dir}: inpainting needs an image model (bernoulli, gaussian or logistic likelihood), "
                          f"this one has {model.config.likelihood!r}")
    if model.config.n_conditions:
        raise VaekitError(f"{model_dir}: inpainting with conditional models is not supported")
    shape = model.config.input_shape
    c, h, w = shape if len(shape) == 3 else (1, *((int(round(math.sqrt(shape[0]))),) * 2))
    if c * h * w != model.config.data_dim:
        raise VaekitError(f"{model_dir}: model input {shape} is not an image")
    if Path(out).suffix.lower() != ".png":
        raise VaekitError(f"{out}: output must end in .png")
    img = _read_png(Path(image), c, "image", refuse_colour=True)
    msk = _read_png(Path(mask), 1, "mask")
    if img.shape[:2] != (h, w):
        raise DataError(f"{image}: image is {img.shape[1]}×{img.shape[0]} pixels, the model expects {w}×{h}")
    if msk.shape != img.shape[:2]:
        raise DataError(f"{mask}: mask is {msk.shape[1]}×{msk.shape[0]} pixels, the image is {img.shape[1]}×{img.shape[0]}")
    chw = img[None] if c == 1 else img.transpose(2, 0, 1)
    x, _ = prepare_for_model(model, extra, Dataset(chw[None], None, str(image)))
    hole = np.broadcast_to(msk >= 128, (c, h, w)).reshape(1, -1)
    filled, ess = inpaint(model, x, torch.from_numpy(~hole), n_samples, rounds, seed)
    pix = np.where(hole, _to_uint8(model, filled), chw.reshape(1, -1)).reshape(c, h, w)
    arr = pix[0] if c == 1 else pix.transpose(1, 2, 0)
    atomic_save(out, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))
    return {"out": str(out), "filled_pixels": int(hole.sum()) // c, "pixels": h * w, "ess": float(ess[0]),
            "n_samples": n_samples}
