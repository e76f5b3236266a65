"""What one endpoint of one served artifact is (:class:`Op`), and the helpers the ops share: fixed row blocks,
request limits, tables in and out of JSON.

An op is three steps: ``prepare`` checks one request and turns it into a :class:`Work` (rows in model space, or the
estimator's table), ``compute`` runs a list of works in one pass (a micro-batch; a list of one without batching) and
``render`` turns one work's result into the HTTP answer. Only ``compute`` runs on the compute thread.

Rows of batched ops always go through the models in blocks of exactly :data:`BLOCK` rows (the last one zero-padded).
CPU kernels round a row differently with the number of rows in the product (measured here: a lone row differs
from the same row in a batch of 50 in the last bits), and a fixed block removes that source: a row's numbers no
longer depend on how many rows shared its pass. What remains is the position of a row in its block: elementwise
kernels run SIMD over most elements and a scalar loop over a tensor's remainder, which can differ by one float32
ulp (seen on a 3-dimensional latent's softplus). So a batched answer equals the unbatched one to float32 rounding
(tests/deploy/test_serve.py: |difference| ≤ 1e-6 relative), and on layers whose widths are multiples of the SIMD width
it is byte-identical (benchmarks/serve_load.py, the MNIST VAE: 2,000 of 2,000 answers). A request's own answer is
deterministic: the same request gives the same bytes, batched with any others or alone, up to that ulp.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from vaekit.errors import DataError, VaekitError

BLOCK = 16  # rows per forward pass of a batched op (fixed: see the module docstring)
MAX_SEED = 2**63 - 1
Scalar = str | int | float | bool | None


class RequestTooLarge(DataError):
    """A request over a size limit of the service (rows, items, image pixels): answered with 413."""


@dataclass
class Work:
    """One checked request: ``rows`` counts against the batch limit; ``data`` is what ``compute`` reads;
    ``meta`` what ``render`` needs besides the result."""

    rows: int
    data: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Op:
    """One endpoint of an artifact: POST /models/{name}/{op.name}.

    ``body`` is a pydantic model (JSON body) or a media type (a raw body: "application/octet-stream", "image/*");
    ``query`` the query parameters of a raw-body op: name → (type, fastapi.Query(...)); ``batched``: concurrent
    requests are gathered into one ``compute`` call; ``response`` the media type of the answer and ``example`` an
    example answer for the OpenAPI document."""

    name: str
    summary: str
    body: Any
    prepare: Callable[..., Work]
    compute: Callable[[list[Work]], list[Any]]
    render: Callable[[Work, Any], Any]
    batched: bool = False
    query: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    response: str = "application/json"
    example: Any = None


def check_rows(n: int, limit: int, what: str = "rows") -> None:
    """Refuse (413) a request of more than ``limit`` rows before anything is allocated for them."""
    if n > limit:
        raise RequestTooLarge(f"{n} {what} in one request; this service takes at most {limit} "
                              "(split the request, or start it with a larger --max-rows)")


def matrix(rows: Sequence[Sequence[Any]], width: int, what: str, dtype: Any = np.float64) -> np.ndarray:
    """A list of equally long rows → (N, width) array; ragged rows or another width → one-line DataError."""
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise DataError(f"{what}: row {bad} has {len(rows[bad])} values, expected {width}")
    try:
        return np.asarray(rows, dtype=dtype).reshape(len(rows), width)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"{what}: every value must be a number ({type(e).__name__})") from None


def labels(values: Sequence[int] | None, n: int, n_conditions: int, what: str = "labels") -> torch.Tensor | None:
    """Class labels of a conditional model: n integers in 0..n_conditions−1 (None for an unconditional model)."""
    if not n_conditions:
        if values is not None:
            raise DataError(f"{what} given, but this model is not conditional")
        return None
    if values is None:
        raise DataError(f"this model is conditional: give {what}, one integer in 0..{n_conditions - 1} per row")
    if len(values) != n:
        raise DataError(f"{what}: {len(values)} value(s) for {n} row(s)")
    if any(not 0 <= int(v) < n_conditions for v in values):
        raise DataError(f"{what} must be integers in 0..{n_conditions - 1}")
    return torch.tensor([int(v) for v in values], dtype=torch.long)


def blocked(fn: Callable[..., Any], *inputs: torch.Tensor | None) -> list[torch.Tensor]:
    """Run ``fn`` on blocks of exactly BLOCK rows of the inputs (None passes through; the last block zero-padded)
    → its outputs (one tensor or a tuple) concatenated over the blocks and cut back to the real rows."""
    n = next(len(t) for t in inputs if t is not None)
    outs: list[list[torch.Tensor]] = []
    for a in range(0, n, BLOCK):
        part = []
        for t in inputs:
            if t is None:
                part.append(None)
                continue
            b = t[a:a + BLOCK]
            if len(b) < BLOCK:
                b = torch.cat([b, b.new_zeros((BLOCK - len(b), *b.shape[1:]))])
            part.append(b)
        out = fn(*part)
        out = out if isinstance(out, tuple) else (out,)
        outs.append(list(out))
    return [torch.cat([o[j] for o in outs])[:n] for j in range(len(outs[0]))]


def split(t: torch.Tensor | np.ndarray, works: Sequence[Work]) -> list[Any]:
    """Rows of a batch's result → one piece per work, in order."""
    pieces, a = [], 0
    for w in works:
        pieces.append(t[a:a + w.rows])
        a += w.rows
    return pieces


def finite_list(a: torch.Tensor | np.ndarray, what: str) -> list[Any]:
    """An array as nested lists for JSON; a non-finite value (the input was far outside what the model was trained
    on) is a DataError, not a reply JSON cannot carry."""
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{what}: the model's output is not finite for this input (values far outside what it was "
                        "trained on)")
    return arr.tolist()


# --- tables ---------------------------------------------------------------------------------------------------
def frame(rows: Sequence[Any], names: Sequence[str], what: str = "rows") -> Any:
    """JSON rows → DataFrame with the artifact's columns: objects {column: value} (a column left out is missing)
    or lists of values in column order; None is a missing value; an unknown column is a DataError naming it."""
    if not rows:
        return pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    if all(isinstance(r, dict) for r in rows):
        known = set(names)
        unknown = sorted({k for r in rows for k in r if k not in known})
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5
                                                              else "")
            raise DataError(f"{what}: unknown column(s) {shown}; the columns are {list(names)}")
        cols = {n: [r.get(n) for r in rows] for n in names}
    elif all(isinstance(r, list) for r in rows):
        bad = next((i for i, r in enumerate(rows) if len(r) != len(names)), None)
        if bad is not None:
            raise DataError(f"{what}: row {bad} has {len(rows[bad])} values, expected {len(names)} ({list(names)})")
        cols = {n: [r[j] for r in rows] for j, n in enumerate(names)}
    else:
        raise DataError(f"{what}: give every row as an object {{column: value}} or every row as a list of values")
    out = {}
    for n, vals in cols.items():
        s = pd.Series(vals, dtype=object).infer_objects()
        if s.dtype == object and all(v is None for v in vals):  # an all-missing column: missing numbers
            s = pd.Series(np.full(len(vals), np.nan))
        out[n] = s
    return pd.DataFrame(out)


def _cell(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def records(df: Any) -> list[dict[str, Any]]:
    """A DataFrame as JSON rows {column: value} (NaN/NA → null, NumPy scalars → Python ones)."""
    cols = [(str(c), df[c].tolist()) for c in df.columns]
    return [{c: _cell(v[i]) for c, v in cols} for i in range(len(df))]


def check_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one (returned in the answer, so the draw can be repeated)."""
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    if not 0 <= seed <= MAX_SEED:
        raise VaekitError(f"seed must be in 0..{MAX_SEED}")
    return int(seed)
