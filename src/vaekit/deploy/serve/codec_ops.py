"""The endpoints of a lossy image codec folder (``vaekit codec train``): compress (an image file's bytes → .vkz
bytes) and decompress (.vkz bytes → PNG), through :mod:`vaekit.jobs.compress.lossy` (its size limits are checked from
the image or .vkz header before anything is allocated)."""
from __future__ import annotations

import io
import os
import tempfile
from typing import Any

from fastapi import Query
from fastapi.responses import Response

from vaekit.deploy.serve.ops import Op, Work
from vaekit.errors import DataError, VaekitError


def _read_image(body: bytes) -> Any:
    """Image file bytes → uint8 array, by the same reader (and rules) as ``vaekit compress``."""
    from vaekit.jobs.compress.lossy import read_image

    if not body:
        raise DataError("request body: empty; send the image file's bytes (PNG, JPEG …)")
    fd, name = tempfile.mkstemp(prefix="vaekit-serve-", suffix=".img")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return read_image(name)
    except VaekitError as e:
        raise type(e)(str(e).replace(name, "request body")) from None
    finally:
        os.unlink(name)


def codec_ops(codec: Any) -> list[Op]:
    """Ops of one loaded :class:`~vaekit.jobs.compress.lossy.ImageCodec` (quality levels 0..L−1, −1 = highest)."""
    from vaekit.jobs.compress.container import unpack
    from vaekit.jobs.compress.lossy import compress_image, decompress_image

    L = len(codec.levels)
    kind = "grayscale" if codec.cfg.channels == 1 else "RGB"

    def prep_compress(body: bytes, quality: int = -1) -> Work:
        img = _read_image(body)
        codec.level_index(quality)  # an out-of-range level: one line, before any work
        return Work(1, img, {"quality": quality})

    def run_compress(works: list[Work]) -> list[Any]:
        (w,) = works
        return [compress_image(codec, w.data, w.meta["quality"])]

    def render_compress(w: Work, data: bytes) -> Any:
        h, wd = w.data.shape[:2]
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Bits-Per-Pixel": f"{8 * len(data) / (h * wd):.6g}",
                                 "X-Quality": str(codec.level_index(w.meta["quality"]))})

    def prep_decompress(body: bytes) -> Work:
        return Work(1, unpack(body, "request body"))

    def run_decompress(works: list[Work]) -> list[Any]:
        return [decompress_image(works[0].data, codec, "request body")]

    def render_decompress(w: Work, img: Any) -> Any:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")

    quality = {"quality": (int, Query(-1, ge=-L, le=L - 1, description=f"level 0 (fewest bits) .. {L - 1} (best); "
                                                                         "-1 = the best"))}
    return [
        Op("compress", f"a {kind} image file (PNG, JPEG …) → .vkz bytes: latents ŷ = round(g_a(x)), range-coded",
           "application/octet-stream", prep_compress, run_compress, render_compress, query=quality,
           response="application/octet-stream"),
        Op("decompress", "a .vkz file of this codec → the decoded image, x̂ = g_s(ŷ), as PNG",
           "application/octet-stream", prep_decompress, run_decompress, render_decompress, response="image/png"),
    ]
