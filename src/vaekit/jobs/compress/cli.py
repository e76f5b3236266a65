"""``vaekit compress`` / ``vaekit decompress``: thin CLI over :mod:`vaekit.jobs.compress` (lossy images, lossless arrays)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vaekit.errors import VaekitError
from vaekit.jobs.compress.cli_codec import codec_app

app = typer.Typer(rich_markup_mode=None, help="Compression: lossy learned image codecs and lossless bits-back coding.")
app.add_typer(codec_app, name="codec")



@app.command()
def compress(
    src: Path = typer.Argument(..., help="Image (PNG/JPEG; lossy) or array file (.npz/.npy/IDX; --lossless)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output .vkz file (written atomically)."),
    model: Path = typer.Option(..., "--model", help="Codec model folder (lossy) or trained VAE folder (lossless)."),
    quality: Optional[int] = typer.Option(None, "--quality", help="Lossy quality level (index into the "
                                          "codec's levels; default -1 = highest)."),
    lossless: bool = typer.Option(False, "--lossless", help="Bits-back coding of discrete data under a VAE."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of an .npz to code (default: test)."),
    latent_bits: int = typer.Option(12, "--latent-bits", help="Bits-back latent precision (buckets per dim 2^b)."),
    embed_model_path: bool = typer.Option(False, "--embed-model-path", help="Lossy: record the codec folder "
                                          "in the file so decompress needs no --model (costs its length in "
                                          "bytes; lossless files always record it)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Compress: a lossy learned image codec, or lossless bits-back coding (BB-ANS) with --lossless."""
    if lossless and (quality is not None or embed_model_path):
        raise VaekitError("--quality and --embed-model-path apply to lossy image compression, not --lossless")
    if lossless:
        from vaekit.jobs.compress.lossless import compress_array_file

        r = compress_array_file(model, src, out, split, latent_bits, progress)
        typer.echo(f"{r['items']} items, {r['raw_bytes']} raw bytes → {r['file_bytes']} bytes "
                   f"({r['bits_per_dim']:.4f} bits/dim) in {r['seconds']:.1f} s; wrote {out}")
        return
    from vaekit.jobs.compress import lossy

    r = lossy.compress_image_file(model, src, out, -1 if quality is None else quality, embed_model_path)
    typer.echo(f"wrote {out}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in r.items()))


@app.command()
def decompress(
    src: Path = typer.Argument(..., help="A .vkz file from 'vaekit compress'."),
    out: Path = typer.Option(..., "-o", "--out", help="Decoded image (.png) or array (.npy)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder (default: the one recorded in "
                                         "the file; its fingerprint is always checked)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Decompress a .vkz file; refuses a corrupt file or a model other than the one that encoded it."""
    from vaekit.jobs.compress.bitsback import CODEC
    from vaekit.jobs.compress.container import read

    box = read(src)
    if box.codec == CODEC:
        from vaekit.jobs.compress.lossless import decompress_array_file

        r = decompress_array_file(src, out, model, progress)
        typer.echo(f"decoded {r['items']} items {tuple(r['shape'])} in {r['seconds']:.1f} s; wrote {out}")
        return
    from vaekit.jobs.compress import lossy

    r = lossy.decompress_image_file(src, out, model)
    typer.echo(f"wrote {out}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in r.items()))
