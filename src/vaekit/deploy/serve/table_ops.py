"""The endpoints of the table artifacts: ``score`` (anomaly detector, micro-batched), ``impute`` (imputer) and
``generate`` (tabular generator), thin layers over the estimators' own methods.

Rows are JSON objects {column: value} (a column left out, or null, is a missing value) or lists of values in the
artifact's column order; answers give rows as objects. Scores are the detector's ``decision_function`` (higher = more
abnormal), labels 1 where score > threshold, top columns the ``top_columns`` rule.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import torch
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from vaekit.deploy.serve.ops import (
    BLOCK,
    MAX_SEED,
    Op,
    Scalar,
    Work,
    check_rows,
    check_seed,
    finite_list,
    frame,
    records,
    split,
)
from vaekit.errors import DataError
from vaekit.options import MAX_IMPUTATIONS
from vaekit.runtime import threads

Row = dict[str, Scalar] | list[Scalar]


def _rows_field(max_rows: int, names: list[str]) -> Any:
    return (Annotated[list[Row], Field(min_length=1, description=(
        f"rows: objects {{column: value}} or lists of values in the order {names[:20]}"
        f"{' …' if len(names) > 20 else ''}; null = missing; at most {max_rows} rows (413 beyond)"))], ...)


def _model(name: str, fields: dict[str, Any], example: dict[str, Any]) -> type[BaseModel]:
    return create_model(name, __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
                        **fields)


def _example_row(schema: Any) -> dict[str, Any]:
    """A plausible row for the OpenAPI example: each category column's first category, 0 for numbers."""
    out: dict[str, Any] = {}
    for c in schema.columns:
        cats = list(c.categories or [])
        v = cats[0] if c.kind != "continuous" and cats else 0.0
        out[c.name] = v.item() if isinstance(v, np.generic) else v
    return out


def _table(rows: list[Any], names: list[str], array_input: bool, max_rows: int) -> Any:
    """A request's rows → what the estimator was fitted on: a DataFrame, or a float64 array (NaN = missing)."""
    check_rows(len(rows), max_rows)
    df = frame(rows, names)
    if not array_input:
        return df
    try:
        return df.apply(lambda s: s.astype(np.float64)).to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("rows: this artifact was fitted on a numeric array: every value must be a number or null"
                        ) from None


# --- anomaly detector ---------------------------------------------------------------------------------------------
def detector_ops(prefix: str, det: Any, max_rows: int) -> list[Op]:
    """POST score: scores (N,), labels (N,), top columns per row."""
    from vaekit.jobs.anomaly.detector import top_names

    names = list(det.columns_)
    array_input = det._input == "array"
    request = _model(f"{prefix}ScoreRequest", {
        "rows": _rows_field(max_rows, names),
        "top": (int, Field(3, ge=0, le=len(names), description="columns named per row (largest shares first)"))},
        {"rows": [_example_row(det.schema_)] if det.schema_ is not None else [[0.0] * len(names)], "top": 3})

    def prepare(req: Any) -> Work:
        x, unseen = det._encode_rows(_table(req.rows, names, array_input, max_rows), reset=False)
        if unseen is None:
            unseen = np.zeros((len(x), len(names)), dtype=bool)
        return Work(len(x), (x, unseen), {"top": req.top})

    @torch.inference_mode()
    def compute(works: list[Work]) -> list[Any]:
        x = torch.cat([w.data[0] for w in works])
        unseen = np.concatenate([w.data[1] for w in works])
        scores, cols = [], []
        with threads(det._threads()):
            for a in range(0, len(x), BLOCK):  # fixed blocks: a row's score does not depend on its neighbours
                xb, ub = x[a:a + BLOCK], unseen[a:a + BLOCK]
                pad = BLOCK - len(xb)
                if pad:
                    xb = torch.cat([xb, xb.new_zeros((pad, xb.shape[1]))])
                    ub = np.concatenate([ub, np.zeros((pad, ub.shape[1]), dtype=bool)])
                s, c = det._score_encoded(xb, unseen=ub)
                scores.append(s[:BLOCK - pad])
                cols.append(c[:BLOCK - pad])
        return list(zip(split(np.concatenate(scores), works), split(np.concatenate(cols), works)))

    def render(w: Work, r: Any) -> Any:
        scores, cols = r
        return JSONResponse({"scores": finite_list(scores, "scores"),
                             "labels": (scores > det.threshold_).astype(int).tolist(),
                             "threshold": float(det.threshold_),
                             "top_columns": top_names(det.shares(cols), names, w.meta["top"])})

    return [Op("score", "anomaly score per row (higher = more abnormal, the detector's decision_function), label "
                        "1 where score > threshold, and the columns that made it abnormal", request, prepare, compute,
               render, batched=True,
               example={"scores": [1.5], "labels": [0], "threshold": 4.2, "top_columns": [names[:3]]})]


# --- imputer ------------------------------------------------------------------------------------------------------
def imputer_ops(prefix: str, imp: Any, max_rows: int) -> list[Op]:
    """POST impute: the rows completed (conditional means / most probable values), or ``multiple`` draws."""
    names = list(imp.schema_.names)
    array_input = imp._input == "array"
    example = {k: (None if i == 0 else v) for i, (k, v) in enumerate(_example_row(imp.schema_).items())}
    request = _model(f"{prefix}ImputeRequest", {
        "rows": _rows_field(max_rows, names),
        "multiple": (int, Field(0, ge=0, le=MAX_IMPUTATIONS, description="0: one completed table; M > 0: M draws "
                                "from p(x_mis | x_obs) (sampling-importance-resampling)")),
        "seed": (int | None, Field(None, ge=0, le=MAX_SEED, description="seed of the multiple draws"))},
        {"rows": [example], "multiple": 0})

    def prepare(req: Any) -> Work:
        table = _table(req.rows, names, array_input, max_rows)
        check_rows(len(table) * max(1, req.multiple), max_rows, "rows × imputations")
        return Work(len(table), table, {"multiple": req.multiple,
                                        "seed": check_seed(req.seed) if req.multiple else None})

    def compute(works: list[Work]) -> list[Any]:
        (w,) = works
        if w.meta["multiple"]:
            return [imp.multiple_imputations(w.data, w.meta["multiple"], w.meta["seed"])]
        return [[imp.transform(w.data)]]

    def as_rows(t: Any) -> list[Any]:
        if array_input:
            return [dict(zip(names, r)) for r in finite_list(np.asarray(t, dtype=np.float64), "rows")]
        return records(t)

    def render(w: Work, tables: list[Any]) -> Any:
        if not w.meta["multiple"]:
            return JSONResponse({"rows": as_rows(tables[0])})
        return JSONResponse({"imputations": [as_rows(t) for t in tables], "seed": w.meta["seed"]})

    return [Op("impute", "missing values filled with importance-weighted conditional means / most probable values "
                         "(MIWAE), or M draws from p(x_mis | x_obs)", request, prepare, compute, render,
               example={"rows": [_example_row(imp.schema_)]})]


# --- tabular generator --------------------------------------------------------------------------------------------
def generator_ops(prefix: str, gen: Any, max_rows: int) -> list[Op]:
    """POST generate: n new rows, optionally conditioned ({column: value or one value per row})."""
    cond_names = [] if gen.condition_schema_ is None else list(gen.condition_schema_.names)
    cond_ex = ({cond_names[0]: _example_row(gen.condition_schema_)[cond_names[0]]} if cond_names else None)
    request = _model(f"{prefix}GenerateRequest", {
        "n": (int, Field(1, ge=1, description=f"rows to draw, at most {max_rows}")),
        "conditions": (Mapping[str, Scalar | list[Scalar]] | None, Field(None, description=(
            f"condition columns {cond_names}: one value, or one per row; the others are drawn as in the training "
            "data" if cond_names else "this generator has no condition columns"))),
        "temperature": (float, Field(1.0, gt=0, le=10, allow_inf_nan=False)),
        "seed": (int | None, Field(None, ge=0, le=MAX_SEED, description="omitted: a fresh one, returned"))},
        {"n": 2, "seed": 0, **({"conditions": cond_ex} if cond_ex else {})})

    def prepare(req: Any) -> Work:
        check_rows(req.n, max_rows)
        return Work(req.n, dict(req.conditions) if req.conditions else None,
                    {"temperature": req.temperature, "seed": check_seed(req.seed)})

    def compute(works: list[Work]) -> list[Any]:
        (w,) = works
        return [gen.sample(w.rows, w.data, w.meta["temperature"], w.meta["seed"])]

    def render(w: Work, df: Any) -> Any:
        return JSONResponse({"rows": records(df), "seed": w.meta["seed"]})

    return [Op("generate", "n new rows x ~ p(x | c) of the training table's columns (same seed, same rows)",
               request, prepare, compute, render, example={"rows": [_example_row(gen.schema_)], "seed": 0})]
