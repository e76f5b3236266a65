"""CLI for generation and latent exploration: ``vaekit explore`` (the page) and ``vaekit latent …`` (files).

NumPy, PyTorch and the core are imported inside the commands, so that building the app and ``--help`` stay fast."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from vaekit.errors import VaekitError
from vaekit.files import atomic_save
from vaekit.options import MAX_GRID, MAX_SAMPLES, MAX_STEPS, count_option, floats

if TYPE_CHECKING:
    import numpy as np
    import torch

app = typer.Typer(rich_markup_mode=None, help="Latent-space exploration: the explorer page and latent pictures.")
latent_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Latent-space pictures: interpolate, traverse, map, embed, near, attribute, kl.")


def _model_and_data(model_dir: Path, data: Optional[Path], split: str, limit: int = 0):
    import numpy as np

    from vaekit.core.workflows import load, prepare_for_model
    from vaekit.data import load_array

    model, extra = load(model_dir)
    if data is None:
        return model, None, None, None
    ds = load_array(data, split if data.suffix == ".npz" else None)
    x, c = prepare_for_model(model, extra, ds)
    y = None if ds.y is None else np.asarray(ds.y)
    if limit:
        x, c, y = x[:limit], None if c is None else c[:limit], None if y is None else y[:limit]
    return model, x, c, y


def _save(model, x: torch.Tensor, out: Path, ncol: int) -> None:
    from vaekit.core.workflows import image_shape, to_display
    from vaekit.plots import save_grid

    if out.suffix.lower() != ".png":
        raise VaekitError(f"{out}: output must be a .png file")
    save_grid(out, to_display(model, x), image_shape(model), ncol=ncol, scale=2)


def _dims(text: str, latent_dim: int) -> list[int]:
    """'0,3' → [0, 3]; each must be an integer in 0..latent_dim−1."""
    try:
        dims = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise VaekitError(f"--dims must be comma-separated integers, got {text!r}") from None
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad:
        raise VaekitError(f"--dims {bad} out of range: this model has latent dimensions 0..{latent_dim - 1}")
    return dims


def _span(span: float) -> float:
    if not (math.isfinite(span) and span > 0):
        raise VaekitError(f"--span must be a finite number > 0, got {span}")
    return float(span)


@latent_app.command()
def interpolate(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Data file holding the two examples."),
    a: int = typer.Option(0, help="Index of the first example."),
    b: int = typer.Option(1, help="Index of the second example."),
    steps: int = count_option(10, "--steps", lo=2, hi=MAX_STEPS, help="Images along the path."),
    method: str = typer.Option("slerp", help="slerp | linear."),
    split: str = typer.Option("test"),
    out: Path = typer.Option(Path("interpolation.png"), "--out", "-o", help="PNG strip; also writes OUT.gif (the "
                             "animation) beside it, replacing an existing one only with --overwrite."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT.gif (the side output)."),
) -> None:
    """Decode the latent path between two examples: a PNG strip and an animated GIF."""
    from vaekit.core.workflows import image_shape, to_display
    from vaekit.jobs.explore import latent as explore
    from vaekit.plots import to_images

    gif = out.with_suffix(".gif")
    if out.suffix.lower() != ".png":
        raise VaekitError(f"{out}: output must be a .png file")
    if gif.exists() and not overwrite:
        raise VaekitError(f"{gif}: exists, and 'latent interpolate' also writes OUT.gif; pass --overwrite to "
                          "replace it or choose another -o")
    model, x, c, _ = _model_and_data(model_dir, data, split)
    n = len(x)
    if not (0 <= a < n and 0 <= b < n):
        raise VaekitError(f"--a and --b must be example indices in 0..{n - 1}")
    path = explore.interpolate(model, x[a], x[b], steps, method, None if c is None else c[a:a + 1])
    _save(model, path, out, ncol=steps)
    explore.gif(gif, to_images(to_display(model, path), image_shape(model)))
    typer.echo(f"wrote {out} and {gif}")


@latent_app.command()
def traverse(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    dims: str = typer.Option("", help="Comma-separated latent dimensions (default: the 10 with the largest KL if --data, else 0..9)."),
    span: float = typer.Option(3.0, help="Values from −span to +span."),
    steps: int = count_option(9, "--steps", lo=2, hi=MAX_STEPS, help="Values per dimension."),
    data: Optional[Path] = typer.Option(None, "--data", help="Start from this data's example --index (else z = 0)."),
    index: int = typer.Option(0),
    label: Optional[int] = typer.Option(None, help="Class (conditional models)."),
    out: Path = typer.Option(Path("traversal.png"), "--out", "-o"),
) -> None:
    """One row per latent dimension, varied from −span to +span around a code."""
    import numpy as np

    from vaekit.core.workflows import condition_labels
    from vaekit.jobs.explore import latent as explore

    model, x, c, _ = _model_and_data(model_dir, data, "test")
    z = None
    order = list(range(min(10, model.config.latent_dim)))
    if x is not None:
        if not 0 <= index < len(x):
            raise VaekitError(f"--index must be in 0..{len(x) - 1}")
        z = explore.encode(model, x[index:index + 1], None if c is None else c[index:index + 1])[0]
        kl = explore.kl_per_dimension(model, x[:2000], None if c is None else c[:2000])["kl"]
        order = list(np.argsort(kl)[::-1][:10])
    chosen = _dims(dims, model.config.latent_dim) if dims else order
    span = _span(span)
    values = np.linspace(-span, span, steps).tolist()
    cc = c[index:index + 1] if c is not None and x is not None else condition_labels(model, label, 1)
    grid_ = explore.traverse(model, z, chosen, values, cc)
    _save(model, grid_.reshape(-1, grid_.shape[-1]), out, ncol=steps)
    typer.echo(f"wrote {out} (dimensions {chosen})")


@latent_app.command("map")
def latent_map(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    dims: str = typer.Option("0,1", help="Two latent dimensions."),
    grid: int = count_option(15, "--grid", lo=2, hi=MAX_GRID, help="Tiles per side."),
    span: float = typer.Option(3.0),
    label: Optional[int] = typer.Option(None, help="Class (conditional models)."),
    out: Path = typer.Option(Path("latent_map.png"), "--out", "-o"),
) -> None:
    """Decode a grid over two latent dimensions (the others at 0)."""
    from vaekit.core.workflows import condition_labels
    from vaekit.jobs.explore import latent as explore

    model, *_ = _model_and_data(model_dir, None, "test")
    pair = _dims(dims, model.config.latent_dim)
    if len(pair) != 2:
        raise VaekitError(f"--dims needs two dimensions, got {dims!r}")
    m = explore.latent_map(model, (pair[0], pair[1]), grid, _span(span), c=condition_labels(model, label, 1))
    _save(model, m.reshape(-1, m.shape[-1]), out, ncol=grid)
    typer.echo(f"wrote {out}")


@latent_app.command()
def embed(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data"),
    split: str = typer.Option("test"),
    method: str = typer.Option("pca", help="pca | umap (needs umap-learn)."),
    limit: int = typer.Option(5000, min=2, help="At most this many examples."),
    out: Path = typer.Option(Path("embedding.png"), "--out", "-o"),
) -> None:
    """Scatter of the posterior means in 2-D, coloured by label when the data has labels."""

    if out.suffix.lower() != ".png":
        raise VaekitError(f"{out}: the embedding scatter is a PNG; give the file a .png name")
    from vaekit.jobs.explore import latent as explore

    model, x, c, y = _model_and_data(model_dir, data, split, limit)
    xy = explore.embed(explore.encode(model, x, c).cpu().numpy(), method)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    sc = ax.scatter(xy[:, 0], xy[:, 1], s=4, **({"c": y, "cmap": "tab10"} if y is not None else {"c": "tab:blue"}))
    if y is not None:
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_title(f"posterior means, {method.upper()}")
    fig.tight_layout()
    atomic_save(out, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    typer.echo(f"wrote {out}")


@latent_app.command()
def near(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Data file holding the example."),
    index: int = typer.Option(0, help="Index of the example."),
    n: int = count_option(15, "--n", hi=MAX_SAMPLES, help="Number of neighbours."),
    scale: float = typer.Option(1.0, help="z = μ(x) + scale·σ(x)·ε (0 = the posterior mean only)."),
    seed: int = typer.Option(0),
    split: str = typer.Option("test"),
    out: Path = typer.Option(Path("near.png"), "--out", "-o"),
) -> None:
    """Samples in the neighbourhood of one encoded example; the first tile is its reconstruction E[x|z=μ(x)]."""

    if not (math.isfinite(scale) and scale >= 0):
        raise VaekitError(f"--scale must be a finite number >= 0, got {scale}")
    import torch

    from vaekit.jobs.explore import latent as explore

    model, x, c, _ = _model_and_data(model_dir, data, split)
    if not 0 <= index < len(x):
        raise VaekitError(f"--index must be in 0..{len(x) - 1}")
    ci = None if c is None else c[index:index + 1]
    recon = explore.decode(model, explore.encode(model, x[index:index + 1], ci), ci)
    near_x = explore.sample_near(model, x[index], n, scale, ci, generator=torch.Generator().manual_seed(seed))
    _save(model, torch.cat([recon, near_x]), out, ncol=min(n + 1, 8))
    typer.echo(f"wrote {out}")


@latent_app.command()
def attribute(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Labelled data (y_* / labels) to estimate the vector from."),
    with_label: int = typer.Option(..., "--with-label", help="Examples with this label have the attribute."),
    without_label: Optional[int] = typer.Option(None, "--without-label", help="Examples without it (default: all "
                                                "other labels)."),
    n: int = typer.Option(4, "--n", min=1, help="Apply the vector to the first N examples without the attribute."),
    alphas: str = typer.Option("0,0.5,1,1.5", help="Strengths α: decode μ(x) + α·v."),
    split: str = typer.Option("test"),
    limit: int = typer.Option(5000, min=2, help="At most this many examples to estimate v from."),
    out: Path = typer.Option(Path("attribute.png"), "--out", "-o"),
) -> None:
    """Attribute vector v = mean μ(x | with) − mean μ(x | without), added to inputs: one row per input, α across."""
    import numpy as np

    from vaekit.jobs.explore import latent as explore

    a = floats(alphas, "alphas")
    model, x, c, y = _model_and_data(model_dir, data, split, limit)
    if y is None:
        raise VaekitError(f"{data}: attribute vectors need labels (y_* keys or label sub-folders)")
    has = y == with_label
    other = ~has if without_label is None else y == without_label
    if not has.any() or not other.any():
        raise VaekitError(f"{data}: no examples with label {with_label if not has.any() else without_label}")
    keep = has | other
    z = explore.encode(model, x[keep], None if c is None else c[keep])
    v = explore.attribute_vector(z, has[keep])
    idx = np.nonzero(other)[0][:n]
    rows = explore.apply_attribute(model, x[idx], v, a, None if c is None else c[idx])
    _save(model, rows.reshape(-1, rows.shape[-1]), out, ncol=len(a))
    typer.echo(f"wrote {out}: |v| = {float(v.norm()):.3f}, {len(idx)} inputs × α {a}")


@latent_app.command()
def kl(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data"),
    split: str = typer.Option("test"),
    factors: Optional[Path] = typer.Option(None, help=".npy of ground-truth factors (N × F) for MIG; labels are used if absent."),
) -> None:
    """Per-dimension KL, active units, and MIG against labels or given factors (JSON)."""
    from vaekit.jobs.explore import latent as explore

    model, x, c, y = _model_and_data(model_dir, data, split)
    res = explore.kl_per_dimension(model, x, c)
    f = _factors(factors, len(x)) if factors is not None else y
    if f is not None and model.config.latent_dim >= 2:
        res["mig"] = explore.mig(explore.encode(model, x, c).cpu().numpy(), f)
    typer.echo(json.dumps(res))


def _factors(path: Path, n: int) -> np.ndarray:
    """Ground-truth factors (.npy, N × F or N, numeric, finite) for MIG."""
    import numpy as np

    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VaekitError(f"{path}: not a readable .npy array ({e.__class__.__name__})") from None
    if not isinstance(f, np.ndarray) or f.dtype.kind not in "biuf" or f.ndim not in (1, 2) or len(f) != n:
        raise VaekitError(f"{path}: factors must be a numeric (N,) or (N, F) array with N = {n} rows, got "
                          f"{getattr(f, 'dtype', type(f))} {getattr(f, 'shape', '')}")
    if not np.isfinite(f).all():
        raise VaekitError(f"{path}: factors contain NaN or inf")
    return f


def explore_cmd(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Examples to encode and interpolate between."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; requests must name it or a loopback name "
                             "(localhost, 127.0.0.1, [::1]) as their Host. 0.0.0.0 opens the page to the network."),
    port: int = typer.Option(8000, min=0, max=65535),
    limit: int = typer.Option(1000, min=1, help="At most this many examples."),
) -> None:
    """Serve the interactive explorer (latent sliders, sampling, interpolation) on a local page."""
    from vaekit.jobs.explore.server import WILDCARD_HOSTS, host_name, serve

    if host_name(host) in WILDCARD_HOSTS:
        typer.echo(f"warning: --host {host} makes the explorer (and the examples of --data) reachable from the "
                   "network", err=True)
    typer.echo(f"vaekit explorer on http://{host_name(host)}:{port}/  (Ctrl-C to stop)")
    serve(model_dir, data, host, port, limit)


app.add_typer(latent_app, name="latent")
app.command("explore")(explore_cmd)
