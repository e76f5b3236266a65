"""Latent-space exploration: encode, interpolate (linear / spherical), traverse, map, embed, attribute vectors,
per-dimension KL and the mutual information gap (MIG).

All functions take a trained :class:`~vaekit.core.model.VAE` and model-space tensors (see ``workflows.prepare_for_model``);
decoded outputs are E[x|z] in model space.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from vaekit.core.model import VAE
from vaekit.errors import VaekitError
from vaekit.files import atomic_save


@torch.no_grad()
def encode(model: VAE, x: torch.Tensor, c: torch.Tensor | None = None, sample: bool = False,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ(x) (posterior mean) by default; ``sample=True`` draws z ~ q(z|x)."""
    model.eval()
    mu, logvar = model.encode(x, c)
    return model.reparameterize(mu, logvar, generator=generator) if sample else mu


@torch.no_grad()
def decode(model: VAE, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """E[x|z] for a batch of latents."""
    model.eval()
    return model.likelihood.mean(model.decode(z, c))


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: sin((1−t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1, Ω = angle(z0, z1); linear if Ω ≈ 0."""
    t = t.reshape(-1, 1)
    n0, n1 = z0.norm(), z1.norm()
    cos = torch.clamp(torch.dot(z0, z1) / (n0 * n1 + 1e-12), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * z0 + t * z1
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1


@torch.no_grad()
def interpolate(model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8, method: str = "slerp",
                c: torch.Tensor | None = None) -> torch.Tensor:
    """Decode the path between μ(x_a) and μ(x_b): ``steps`` points, linear or spherical → (steps, D)."""
    if steps < 2:
        raise VaekitError(f"steps must be >= 2, got {steps}")
    if method not in ("linear", "slerp"):
        raise VaekitError(f"method must be 'linear' or 'slerp', got {method!r}")
    za = encode(model, x_a.reshape(1, -1), None if c is None else c[:1])[0]
    zb = encode(model, x_b.reshape(1, -1), None if c is None else c[:1])[0]
    t = torch.linspace(0, 1, steps)
    z = slerp(za, zb, t) if method == "slerp" else (1 - t[:, None]) * za + t[:, None] * zb
    return decode(model, z, None if c is None else c[:1].expand(steps, *c.shape[1:]))


@torch.no_grad()
def traverse(model: VAE, z: torch.Tensor | None = None, dims: Sequence[int] | None = None,
             values: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3), c: torch.Tensor | None = None) -> torch.Tensor:
    """Vary one latent dimension at a time around ``z`` (default 0): → (len(dims), len(values), D)."""
    d = model.config.latent_dim
    base = torch.zeros(d) if z is None else z.reshape(-1)
    dims = list(range(d)) if dims is None else list(dims)
    if any(not 0 <= i < d for i in dims):
        raise VaekitError(f"latent dimensions must be in 0..{d - 1}, got {dims}")
    vals = torch.tensor(list(values), dtype=torch.float32)
    zs = base.repeat(len(dims), len(vals), 1)
    for row, i in enumerate(dims):
        zs[row, :, i] = base[i] + vals if z is not None else vals
    flat = zs.reshape(-1, d)
    out = decode(model, flat, None if c is None else c[:1].expand(len(flat), *c.shape[1:]))
    return out.reshape(len(dims), len(vals), -1)


@torch.no_grad()
def latent_map(model: VAE, dims: tuple[int, int] = (0, 1), grid: int = 15, span: float = 2.5,
               z: torch.Tensor | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
    """Decode a grid over two latent dimensions (others held at ``z`` or 0), z_i ∈ [−span, span] → (grid, grid, D)."""
    d = model.config.latent_dim
    if d < 2 or dims[0] == dims[1] or not all(0 <= i < d for i in dims):
        raise VaekitError(f"a latent map needs two different dimensions in 0..{d - 1}, got {dims}")
    # Gaussian quantiles give equal prior mass per cell
    q = torch.distributions.Normal(0, 1).icdf(torch.linspace(0.5 / grid, 1 - 0.5 / grid, grid)) * (span / 2.0)
    base = torch.zeros(d) if z is None else z.reshape(-1).clone()
    zs = base.repeat(grid * grid, 1)
    zs[:, dims[0]] = q.repeat_interleave(grid)
    zs[:, dims[1]] = q.repeat(grid)
    out = decode(model, zs, None if c is None else c[:1].expand(len(zs), *c.shape[1:]))
    return out.reshape(grid, grid, -1)


def embed(z: np.ndarray | torch.Tensor, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D embedding of latent codes: PCA (scikit-learn) or UMAP (if ``umap-learn`` is installed)."""
    if method not in ("pca", "umap"):
        raise VaekitError(f"method must be 'pca' or 'umap', got {method!r}")
    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] <= 2:
        return np.pad(z, ((0, 0), (0, 2 - z.shape[1])))
    if method == "umap":
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError:
            raise VaekitError("method 'umap' needs the umap-learn package (pip install umap-learn)") from None
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(z)
    if method != "pca":
        raise VaekitError(f"method must be 'pca' or 'umap', got {method!r}")
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(z)


def attribute_vector(z: torch.Tensor, has_attribute: np.ndarray | torch.Tensor) -> torch.Tensor:
    """v = mean(z | attribute) − mean(z | not attribute)."""
    m = torch.as_tensor(np.asarray(has_attribute), dtype=torch.bool)
    if m.all() or not m.any():
        raise VaekitError("an attribute vector needs examples with and without the attribute")
    return z[m].mean(0) - z[~m].mean(0)


@torch.no_grad()
def apply_attribute(model: VAE, x: torch.Tensor, vector: torch.Tensor, alphas: Sequence[float] = (0, 0.5, 1, 1.5),
                    c: torch.Tensor | None = None) -> torch.Tensor:
    """Decode μ(x) + α·v for each α → (N, len(alphas), D)."""
    z = encode(model, x, c)
    a = torch.tensor(list(alphas), dtype=torch.float32)
    zs = z[:, None, :] + a[None, :, None] * vector
    cc = None if c is None else c.repeat_interleave(len(a), 0)
    return decode(model, zs.reshape(-1, z.shape[1]), cc).reshape(len(x), len(a), -1)


@torch.no_grad()
def kl_per_dimension(model: VAE, x: torch.Tensor, c: torch.Tensor | None = None,
                     batch_size: int = 500) -> dict[str, Any]:
    """Mean KL(q(z_i|x) ‖ p(z_i)) per dimension and active units (Cov_x E_q[z_i] > 0.01, Burda et al. 2015)."""
    model.eval()
    kls, mus = [], []
    for i in range(0, len(x), batch_size):
        mu, logvar = model.encode(x[i:i + batch_size], None if c is None else c[i:i + batch_size])
        kl = model.prior.kl_dims(mu, logvar)  # closed form, or Monte Carlo for mixture / VampPrior priors
        if kl is None:
            raise VaekitError("per-dimension KL needs a prior with a closed-form KL or a per-dimension marginal")
        kls.append(kl)
        mus.append(mu)
    kl_d = torch.cat(kls).mean(0)
    var = torch.cat(mus).var(0) if len(x) > 1 else torch.zeros_like(kl_d)
    return {"kl": kl_d.tolist(), "activity": var.tolist(), "active": (var > 0.01).tolist(),
            "active_units": int((var > 0.01).sum())}


@torch.no_grad()
def overview(model: VAE, x: torch.Tensor | None, c: torch.Tensor | None = None, max_points: int = 2000,
             batch_size: int = 500) -> dict[str, Any]:
    """What the explorer page draws: KL per dimension (None without examples, or for a prior with no closed-form
    KL), the dimensions ordered by KL (largest first; by index without KL), and a 2-D map of the first
    ``max_points`` examples' posterior means — PCA when there are at least 3 examples and 3 dimensions, else the
    two dimensions with the largest KL (axes named in ``map["axes"]``)."""
    d = model.config.latent_dim
    if x is None or len(x) == 0:
        return {"kl": None, "order": list(range(d)), "map": None}
    try:
        kl: list[float] | None = kl_per_dimension(model, x, c, batch_size)["kl"]
    except VaekitError:
        kl = None
    order = [int(i) for i in np.argsort(-np.asarray(kl), kind="stable")] if kl is not None else list(range(d))
    n = min(len(x), max_points)
    z = torch.cat([encode(model, x[i:min(i + batch_size, n)], None if c is None else c[i:min(i + batch_size, n)])
                   for i in range(0, n, batch_size)]).cpu().numpy().astype(np.float64)
    if n >= 3 and d >= 3:
        xy, axes = embed(z, "pca"), ["principal component 1", "principal component 2"]
    else:
        dims = order[:2]
        xy = np.stack([z[:, dims[0]], z[:, dims[1]] if len(dims) > 1 else np.zeros(n)], 1)
        axes = [f"z{i}" for i in dims] + ([] if len(dims) > 1 else ["(none)"])
    xy = np.nan_to_num(np.asarray(xy, dtype=np.float64))
    return {"kl": kl, "order": order, "map": {"axes": axes, "points": np.round(xy, 5).tolist()}}


def mig(z: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Mutual information gap (Chen et al. 2018): mean over factors k of (I(z_j*; v_k) − I(z_j°; v_k)) / H(v_k),
    with z histogram-discretised into ``bins`` and j*, j° the two latents most informative about v_k."""
    from sklearn.metrics import mutual_info_score

    z, factors = np.asarray(z), np.asarray(factors)
    if factors.ndim == 1:
        factors = factors[:, None]
    if len(z) != len(factors) or z.shape[1] < 2:
        raise VaekitError("MIG needs as many factor rows as codes and at least 2 latent dimensions")
    zd = np.stack([np.digitize(col, np.histogram_bin_edges(col, bins)[1:-1]) for col in z.T])
    gaps = []
    for v in factors.T:
        h = mutual_info_score(v, v)
        if h <= 0:
            continue
        mi = np.sort([mutual_info_score(v, zj) for zj in zd])[::-1]
        gaps.append((mi[0] - mi[1]) / h)
    if not gaps:
        raise VaekitError("MIG needs at least one non-constant factor")
    return float(np.mean(gaps))


@torch.no_grad()
def sample_near(model: VAE, x: torch.Tensor, n: int = 16, scale: float = 1.0, c: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Neighbourhood sampling: z = μ(x) + scale·σ(x)·ε, decoded → (n, D)."""
    mu, logvar = model.encode(x.reshape(1, -1), None if c is None else c[:1])
    eps = torch.randn((n, mu.shape[1]), generator=generator)
    z = mu + scale * torch.exp(0.5 * logvar) * eps
    return decode(model, z, None if c is None else c[:1].expand(n, *c.shape[1:]))


def gif(path: Any, frames: np.ndarray, duration_ms: int = 120, scale: int = 4) -> None:
    """Animated GIF of (T, H, W[, C]) uint8 frames, played forth and back; written atomically."""
    from PIL import Image


    seq = list(frames) + list(frames[-2:0:-1])
    imgs = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in seq]
    atomic_save(path, lambda tmp: imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                                               duration=duration_ms, loop=0))


__all__ = ["encode", "decode", "slerp", "interpolate", "traverse", "latent_map", "embed", "attribute_vector",
           "apply_attribute", "kl_per_dimension", "overview", "mig", "sample_near", "gif"]
