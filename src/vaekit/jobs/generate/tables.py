"""Table-level helpers for :mod:`vaekit.jobs.generate.tabular`: condition values (check, convert, complete) and output dtypes.

Condition values: a continuous column takes any finite number (a numeric string is parsed); a binary/categorical
column takes one of its training categories, matched exactly, else by its text (``"5"`` → 5, ``"true"`` → True).
Anything else is a :class:`~vaekit.errors.DataError` naming the column and the value.

Completion: condition columns the caller leaves out are drawn from the training rows that agree with the given
ones, i.e. from the empirical p(c_rest | c_given): rows equal on every given binary/categorical column and, when
continuous columns are given, the nearest 5% of those by Σ_j |c_j − v_j| / s_j (s_j = the column's training sd).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from vaekit.data.tabular import Column, TabularSchema
from vaekit.errors import DataError

NEAREST_SHARE = 0.05


def _equal(a: Any, b: Any) -> bool:
    """a == b, or False where the two cannot be compared."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def convert_value(col: Column, value: Any, source: str = "conditions") -> Any:
    """One condition value → the schema's own value (float for continuous, the matching training category)."""
    if col.kind == "continuous":
        if isinstance(value, (bool, np.bool_)):
            raise DataError(f"{source}: column {col.name!r} is continuous; {value!r} is not a number")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{source}: column {col.name!r} is continuous; {value!r} is not a number") from None
        if not math.isfinite(v):
            raise DataError(f"{source}: column {col.name!r} needs a finite number, got {value!r}")
        return v
    if isinstance(value, np.generic):
        value = value.item()
    for c in col.categories:
        if type(c) is type(value) and c == value:
            return c
    for c in col.categories:
        if not isinstance(c, bool) and not isinstance(value, bool) and _equal(c, value):
            return c
    text = str(value).strip()
    hits = [c for c in col.categories if str(c) == text] or \
           [c for c in col.categories if str(c).lower() == text.lower()]
    if len(hits) == 1:
        return hits[0]
    raise DataError(f"{source}: {value!r} is not a category of column {col.name!r} seen in training "
                    f"(categories: {col.categories[:10]}{' …' if len(col.categories) > 10 else ''})")


def given_values(schema: TabularSchema, conditions: Mapping[str, Any], n: int, all_columns: list[str],
                 source: str = "conditions") -> dict[str, list[Any]]:
    """Check the keys of ``conditions`` and expand each value (a scalar, or one per row) to n converted values."""
    import pandas as pd

    by_name = {c.name: c for c in schema.columns}
    out: dict[str, list[Any]] = {}
    for key, value in conditions.items():
        key = str(key)
        if key not in by_name:
            if key in all_columns:
                what = (f"condition columns: {schema.names}" if schema.columns
                        else "this generator was fitted without condition columns")
                raise DataError(f"{source}: column {key!r} was not a condition column at fit time ({what}); "
                                "refit with it in condition_columns to condition on it")
            raise DataError(f"{source}: unknown column {key!r}; the table's columns are {all_columns}")
        col = by_name[key]
        if isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index)):
            values = list(value)
            if len(values) != n:
                raise DataError(f"{source}: column {key!r} has {len(values)} values for {n} rows; give one value "
                                "or one per row")
            out[key] = [convert_value(col, v, source) for v in values]
        else:
            out[key] = [convert_value(col, value, source)] * n
    return out


def table_to_frame(schema: TabularSchema, table: Mapping[str, np.ndarray]) -> Any:
    """Stored training condition columns (floats, or codes into the categories) → DataFrame of raw values."""
    import pandas as pd

    cols = {}
    for c in schema.columns:
        v = np.asarray(table[c.name])
        cols[c.name] = v.astype(np.float64) if c.kind == "continuous" else np.asarray(c.categories, dtype=object)[v]
    return pd.DataFrame(cols)


def frame_to_table(schema: TabularSchema, df: Any) -> dict[str, np.ndarray]:
    """Training condition columns → floats (continuous) or int64 codes into the schema's categories."""
    import pandas as pd

    out = {}
    for c in schema.columns:
        s = df[c.name]
        if c.kind == "continuous":
            out[c.name] = pd.to_numeric(s).to_numpy(dtype=np.float64)
        else:
            out[c.name] = pd.Index(c.categories, dtype=object).get_indexer(s.astype(object)).astype(np.int64)
    return out


def complete(schema: TabularSchema, table: Mapping[str, np.ndarray], given: Mapping[str, list[Any]], n: int,
             rng: np.random.Generator) -> Any:
    """n rows of all condition columns: the given values, the others drawn from p(c_rest | c_given) (empirical)."""
    import pandas as pd

    train = table_to_frame(schema, table)
    n_train = len(train)
    rest = [c for c in schema.names if c not in given]
    out = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in given.items()}, index=range(n))
    if not rest:
        return out[schema.names]
    if not given:
        return train.iloc[rng.integers(0, n_train, n)].reset_index(drop=True)
    kinds = {c.name: c for c in schema.columns}
    picks = np.zeros(n, dtype=np.int64)
    keys = list(given)
    for combo, rows in out.groupby(keys, sort=False, dropna=False).indices.items():
        combo = combo if isinstance(combo, tuple) else (combo,)
        pool = np.ones(n_train, dtype=bool)
        dist = np.zeros(n_train)
        for k, v in zip(keys, combo):
            col = kinds[k]
            if col.kind == "continuous":
                dist += np.abs(np.asarray(table[k]) - v) / max(float(col.params.get("scale", 1.0)), 1e-12)
            else:
                pool &= np.asarray(table[k]) == col.categories.index(v)
        idx = np.nonzero(pool)[0]
        if len(idx) == 0:
            shown = dict(zip(keys, combo))
            raise DataError(f"conditions: no training row has {shown}; give values for all condition columns "
                            f"{schema.names}")
        if any(kinds[k].kind == "continuous" for k in keys):
            keep = max(1, math.ceil(NEAREST_SHARE * len(idx)))
            idx = idx[np.argsort(dist[idx], kind="stable")[:keep]]
        picks[rows] = rng.choice(idx, size=len(rows))
    for k in rest:
        out[k] = train[k].to_numpy()[picks]
    return out[schema.names]


# --- output dtypes ------------------------------------------------------------------------------------------------
def column_info(df: Any, schema: TabularSchema) -> tuple[dict[str, str], dict[str, list[float]], dict[str, list[Any]]]:
    """The training table's dtype per column, [min, max] of each continuous column of ``schema``, and the category
    order of each pandas ``category`` column."""
    import pandas as pd

    dtypes = {str(k): str(df[k].dtype) for k in df.columns}
    ranges = {}
    for c in schema.columns:
        if c.kind == "continuous":
            v = pd.to_numeric(df[c.name]).to_numpy(dtype=np.float64)
            ranges[c.name] = [float(np.nanmin(v)), float(np.nanmax(v))]
    orders = {str(k): [v.item() if isinstance(v, np.generic) else v for v in df[k].cat.categories]
              for k in df.columns if isinstance(df[k].dtype, pd.CategoricalDtype)}
    return dtypes, ranges, orders


def restore(df: Any, dtypes: Mapping[str, str], ranges: Mapping[str, list[float]], clip: bool,
            orders: Mapping[str, list[Any]]) -> Any:
    """Generated rows in the training dtypes: continuous values clipped to the training range (``clip``), rounded
    for integer columns; category dtypes keep their training categories in their order (``orders``)."""
    import pandas as pd

    out = {}
    for name in df.columns:
        s, dtype = df[name], dtypes.get(name, "object")
        integer = dtype.lower().startswith(("int", "uint"))
        if name in ranges or (integer and pd.api.types.is_float_dtype(pd.to_numeric(s, errors="coerce"))):
            v = pd.to_numeric(s).to_numpy(dtype=np.float64)
            if clip and name in ranges:
                v = np.clip(v, *ranges[name])
            s = pd.Series(np.round(v) if integer else v)
        try:
            if dtype == "category":
                s = pd.Series(pd.Categorical(s.astype(object), categories=orders.get(name)))
            else:
                s = s.astype(dtype)
        except (TypeError, ValueError):
            s = s.infer_objects()
        out[name] = s.reset_index(drop=True)
    return pd.DataFrame(out)
