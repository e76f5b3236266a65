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
from typing import Any

import numpy as np
import torch

from vaekit.core.inference import effective_sample_size, shared_eps, snis
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.model import VAE
from vaekit.core.workflows import load, prepare_for_model
from vaekit.data import Dataset
from vaekit.data.loaders import open_image
from vaekit.errors import DataError, VaekitError
from vaekit.files import atomic_save


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
    eps = shared_eps(n_samples, model.noise_dim, seed)
    log_w = torch.zeros(n_samples, len(x))
    for _ in range(max(1, rounds)):
        mean, log_w = snis(model, filled, lambda p, sl: (lik.log_prob_dims(p, x_obs[sl]) * m[sl]).sum(-1),
                           lambda p, sl: lik.mean(p), eps)
        filled = torch.where(observed, x_obs, mean.to(x.dtype))
    return filled, effective_sample_size(log_w)


def _read_png(path: Path, channels: int, what: str, refuse_colour: bool = False) -> np.ndarray:
    """PNG → uint8 (H, W) or (H, W, 3); ``refuse_colour``: a grayscale read of a truly coloured image is an error."""
    from PIL import UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        with open_image(path, what) as im:  # its declared size is checked before any pixel is decoded
            if refuse_colour and channels == 1 and im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                if (rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any():
                    raise DataError(f"{path}: a colour image, but this model is trained on grayscale images")
            return np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: {what} is not a readable image ({e})") from None


def inpaint_file(model_dir: str | Path, image: str | Path, mask: str | Path, out: str | Path,
                 n_samples: int = 1000, rounds: int = 2, seed: int = 0) -> dict[str, Any]:
    """Fill the pixels of IMAGE where MASK is white (≥ 128) under the image VAE in MODEL_DIR; write a PNG."""
    from PIL import Image


    model, extra = load(model_dir)
    if not model.likelihood.supports_images:
        able = ", ".join(n for n in LIKELIHOODS.names() if LIKELIHOODS.get(n).supports_images)
        raise VaekitError(f"{model_dir}: inpainting needs an image model (likelihood {able}), "
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
    pix = np.where(hole, model.likelihood.to_uint8(filled), chw.reshape(1, -1)).reshape(c, h, w)
    arr = pix[0] if c == 1 else pix.transpose(1, 2, 0)
    atomic_save(out, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))
    return {"out": str(out), "filled_pixels": int(hole.sum()) // c, "pixels": h * w, "ess": float(ess[0]),
            "n_samples": n_samples}
