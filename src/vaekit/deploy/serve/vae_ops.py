"""The endpoints of a VAE model folder: encode, decode, sample, reconstruct (micro-batched), and, for a model with
a discrete likelihood, lossless compress / decompress with bits-back coding (:mod:`vaekit.jobs.compress.bitsback`).

Rows are the model's flattened examples (C·H·W values for images), in the units of its training data: values in
[0, 1] for a Bernoulli model, integers 0..255 for a model trained on 8-bit pixels (``dtype`` uint8 in its
config.json), floats otherwise. Answers give E[x|z] in those units (the likelihood's ``to_output``).
"""
from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from vaekit.core.model import VAE
from vaekit.core.workflows import image_shape, to_display
from vaekit.deploy.serve.ops import (
    MAX_SEED,
    Op,
    Work,
    blocked,
    check_rows,
    check_seed,
    finite_list,
    labels,
    matrix,
    split,
)
from vaekit.errors import CorruptFileError, DataError
from vaekit.plots import grid, to_images

Num = Annotated[float, Field(allow_inf_nan=False)]
PNG_SCALE = 2


def _png(model: VAE, x: torch.Tensor) -> bytes:
    """Model-space rows → one PNG: a grid of the images, 8 per row, each side ×2."""
    from PIL import Image

    img = grid(to_images(to_display(model, x), image_shape(model)), ncol=min(8, len(x)), pad=1 if len(x) > 1 else 0,
               scale=PNG_SCALE)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _model(name: str, fields: dict[str, Any], example: dict[str, Any]) -> type[BaseModel]:
    return create_model(name, __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
                        **fields)


def vae_ops(prefix: str, model: VAE, extra: dict[str, Any], max_rows: int, path: Any) -> list[Op]:
    """The ops of one VAE (``prefix`` names its request models in the OpenAPI document)."""
    cfg = model.config
    D, d, nc = cfg.data_dim, cfg.latent_dim, cfg.n_conditions
    lik = model.likelihood
    dev = next(model.parameters()).device
    uint8 = str(extra.get("data", {}).get("dtype", "")) == "uint8"
    zero = 0 if uint8 or lik.coding else 0.0
    rows_doc = f"rows of {D} values (flattened {tuple(cfg.input_shape)}); at most {max_rows} rows (413 beyond)"
    X = Annotated[list[Annotated[list[Num], Field(min_length=D, max_length=D)]], Field(min_length=1,
                                                                                       description=rows_doc)]
    Z = Annotated[list[Annotated[list[Num], Field(min_length=d, max_length=d)]],
                  Field(min_length=1, description=f"latent codes, rows of {d} values; at most {max_rows} rows")]
    lab = ({"labels": (list[Annotated[int, Field(ge=0, le=nc - 1)]] | None,
                       Field(None, description=f"class label per row, 0..{nc - 1} (conditional model)"))} if nc
           else {})
    one_label = {"label": (int, Field(0, ge=0, le=nc - 1, description="class label of every sample"))} if nc else {}
    fmt = {"format": (Literal["json", "png"], Field("json", description="json, or png: a grid of the images"))}
    ex_lab = {"labels": [0]} if nc else {}

    def cond(c: torch.Tensor | None) -> torch.Tensor | None:
        return None if c is None else c.to(dev)

    def x_in(rows: list[list[float]], what: str = "x") -> torch.Tensor:
        check_rows(len(rows), max_rows)
        a = matrix(rows, D, what)
        if uint8:
            if (a != np.round(a)).any() or a.min() < 0 or a.max() > 255:
                raise DataError(f"{what}: this model was trained on 8-bit pixels: give integers 0..255")
            a = a.astype(np.uint8)
        elif np.abs(a).max(initial=0) > np.finfo(np.float32).max:
            raise DataError(f"{what}: values beyond the float32 range")
        return lik.prepare(a, what).reshape(len(a), D)

    # --- encode / reconstruct: rows of x ----------------------------------------------------------------------
    def prep_x(req: Any) -> Work:
        x = x_in(req.x)
        return Work(len(x), (x, labels(getattr(req, "labels", None), len(x), nc)),
                    {"format": getattr(req, "format", "json")})

    def cat(works: list[Work]) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.cat([w.data[0] for w in works])
        c = None if works[0].data[1] is None else torch.cat([w.data[1] for w in works])
        return x, c

    @torch.inference_mode()
    def run_encode(works: list[Work]) -> list[Any]:
        mu, logvar = blocked(lambda x, c: tuple(t.cpu() for t in model.encode(x.to(dev), cond(c))), *cat(works))
        return list(zip(split(mu, works), split(logvar, works)))

    def render_encode(w: Work, r: Any) -> Any:
        return JSONResponse({"mu": finite_list(r[0], "mu"), "logvar": finite_list(r[1], "logvar")})

    @torch.inference_mode()
    def run_reconstruct(works: list[Work]) -> list[Any]:
        (mean,) = blocked(lambda x, c: model.reconstruct(x.to(dev), cond(c)).cpu(), *cat(works))
        return split(mean, works)

    def render_x(w: Work, mean: torch.Tensor, more: dict[str, Any] | None = None) -> Any:
        if w.meta.get("format") == "png":
            seed = (more or {}).get("seed")
            return Response(_png(model, mean), media_type="image/png",
                            headers={} if seed is None else {"X-Seed": str(seed)})
        out = lik.to_output(mean)
        return JSONResponse({"x": finite_list(out, "x"), **(more or {})})

    # --- decode / sample: rows of z ---------------------------------------------------------------------------
    def prep_z(req: Any) -> Work:
        check_rows(len(req.z), max_rows)
        a = matrix(req.z, d, "z")
        if np.abs(a).max(initial=0) > np.finfo(np.float32).max:
            raise DataError("z: values beyond the float32 range")
        z = torch.from_numpy(a.astype(np.float32))
        return Work(len(z), (z, labels(getattr(req, "labels", None), len(z), nc)), {"format": req.format})

    def prep_sample(req: Any) -> Work:
        check_rows(req.n, max_rows)
        seed = check_seed(req.seed)
        z = model.prior.sample(req.n, torch.Generator().manual_seed(seed), float(req.temperature)).cpu().float()
        c = torch.full((req.n,), int(req.label), dtype=torch.long) if nc else None
        return Work(req.n, (z, c), {"format": req.format, "seed": seed})

    @torch.inference_mode()
    def run_decode(works: list[Work]) -> list[Any]:
        (mean,) = blocked(lambda z, c: lik.mean(model.decode(z.to(dev), cond(c))).cpu(), *cat(works))
        return split(mean, works)

    def render_sample(w: Work, mean: torch.Tensor) -> Any:
        more = {"seed": w.meta["seed"]}
        if w.meta["format"] == "json":
            more["z"] = finite_list(w.data[0], "z")
        return render_x(w, mean, more)

    x_ex = {"x": [[zero] * D], **ex_lab}
    ops = [
        Op("encode", "posterior q(z|x) = N(mu, exp(logvar)) of each row", _model(
            f"{prefix}EncodeRequest", {"x": (X, ...), **lab}, x_ex), prep_x, run_encode, render_encode,
            batched=True, example={"mu": [[0.0] * d], "logvar": [[0.0] * d]}),
        Op("decode", "E[x|z] of each latent code (the likelihood's mean, in the data's units)", _model(
            f"{prefix}DecodeRequest", {"z": (Z, ...), **lab, **fmt}, {"z": [[0.0] * d], **ex_lab}), prep_z,
            run_decode, render_x, batched=True, example={"x": [[zero] * D]}),
        Op("sample", "E[x|z] for z ~ p(z) with the prior scaled by temperature; same seed, same samples", _model(
            f"{prefix}SampleRequest", {
                "n": (int, Field(1, ge=1, description=f"samples, at most {max_rows}")),
                "seed": (int | None, Field(None, ge=0, le=MAX_SEED, description="omitted: a fresh one, returned")),
                "temperature": (float, Field(1.0, gt=0, le=10, allow_inf_nan=False)), **one_label, **fmt},
            {"n": 2, "seed": 0, "temperature": 1.0}), prep_sample, run_decode, render_sample, batched=True,
            example={"x": [[zero] * D], "z": [[0.0] * d], "seed": 0}),
        Op("reconstruct", "E[x | z = mu(x)] of each row", _model(
            f"{prefix}ReconstructRequest", {"x": (X, ...), **lab, **fmt}, x_ex), prep_x, run_reconstruct, render_x,
            batched=True, example={"x": [[zero] * D]}),
    ]
    if lik.coding is not None and not nc:
        ops += bitsback_ops(prefix, model, max_rows, path)
    return ops


def bitsback_ops(prefix: str, model: VAE, max_rows: int, path: Any) -> list[Op]:
    """Lossless compress (JSON rows of integer symbols → .vkz bytes) and decompress (.vkz bytes → JSON rows)."""
    from vaekit.jobs.compress.bitsback import CODEC, BitsBackCodec
    from vaekit.jobs.compress.container import unpack
    from vaekit.jobs.compress.lossless import decompress_array

    D, hi = model.config.data_dim, model.likelihood.n_symbols() - 1
    codecs: dict[int, BitsBackCodec] = {}
    Sym = Annotated[list[Annotated[list[int], Field(min_length=D, max_length=D)]],
                    Field(min_length=1, description=f"items: rows of {D} integer symbols 0..{hi}; at most "
                                                    f"{max_rows} items")]
    request = _model(f"{prefix}CompressRequest", {
        "x": (Sym, ...), "latent_bits": (int, Field(12, ge=4, le=16, description="buckets 2^b per latent"))},
        {"x": [[0] * D], "latent_bits": 12})

    def prep_compress(req: Any) -> Work:
        check_rows(len(req.x), max_rows, "items")
        a = matrix(req.x, D, "x", np.int64)
        if a.min() < 0 or a.max() > hi:
            raise DataError(f"x: symbols must be integers in 0..{hi}")
        return Work(len(a), a.astype(np.uint8 if hi < 256 else np.int32), {"latent_bits": req.latent_bits})

    def run_compress(works: list[Work]) -> list[Any]:
        (w,) = works
        bits = w.meta["latent_bits"]
        if bits not in codecs:
            codecs[bits] = BitsBackCodec(model, latent_bits=bits)
        x = w.data
        return [codecs[bits].encode(x, extra_meta={"dtype": str(x.dtype), "array_shape": list(x.shape)})]

    def render_compress(w: Work, data: bytes) -> Any:
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Bits-Per-Dim": f"{8 * len(data) / max(1, w.data.size):.6g}"})

    def prep_decompress(body: bytes) -> Work:
        box = unpack(body, "request body")
        if box.codec != CODEC:
            raise CorruptFileError(f"request body: not a lossless (bits-back) file (codec {box.codec[:40]!r})")
        n = box.meta.get("n") if isinstance(box.meta, dict) else None
        if isinstance(n, int) and not isinstance(n, bool):
            check_rows(n, max_rows, "items")
        return Work(1, box)

    def run_decompress(works: list[Work]) -> list[Any]:
        return [decompress_array(works[0].data, path, "request body")]

    def render_decompress(w: Work, x: np.ndarray) -> Any:
        return JSONResponse({"x": x.reshape(len(x), -1).tolist(), "shape": list(x.shape), "dtype": str(x.dtype)})

    return [
        Op("compress", "lossless bits-back coding (BB-ANS) of integer items; cost ≈ −ELBO bits per item", request,
           prep_compress, run_compress, render_compress, response="application/octet-stream"),
        Op("decompress", "a .vkz file from compress (or 'vaekit compress --lossless' with this model) → the items",
           "application/octet-stream", prep_decompress, run_decompress, render_decompress,
           example={"x": [[0] * D], "shape": [1, D], "dtype": "uint8"}),
    ]

