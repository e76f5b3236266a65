"""Mixed-type tables for the ``mixed`` likelihood: a :class:`TabularSchema` of continuous / binary / categorical columns.

Encoded row = per column its value (continuous: fitted invertible transform t(x); binary: 0/1; categorical: one-hot
over the K training categories), then one observed-mask bit per column (0 where the value is missing; the value slot
holds 0). The schema and its fitted transforms serialise to JSON (no pickle).

Column kinds: :func:`infer_kinds`, the one rule of every job (detector, imputer, generator): bool → binary;
numbers whose observed values are all 0/1 → binary; other numbers → continuous; text holding only numbers →
continuous; text that is mostly numbers with some other strings → DataError naming the column and a value (junk in
a numeric column); other text / category → categorical. ``kinds={"col": "categorical"}`` overrides.
Resolution: each continuous column records at fit time its number of decimals (``params["decimals"]``: 0 for
integer-valued columns, else the most decimals an observed value has, at most ``MAX_DECIMALS``; none recorded when
values have more), and :meth:`TabularSchema.decode` rounds to it (imputed / generated values at the data's resolution).
Documented edge cases: a constant continuous column gets scale 1 (t(x) = x − value), so any other value at scoring
time is far from the training data; values are clipped to ±1e6 after the transform.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vaekit.errors import CheckpointError, DataError
from vaekit.files import atomic_write_text, read_json

KINDS = ("continuous", "binary", "categorical")
TRANSFORMS = ("standard", "quantile", "yeo-johnson", "none")
FORMAT, VERSION = "vaekit-tabular-schema", 1
CLIP = 1e6
MAX_DECIMALS = 6
UNKNOWN = ("error", "missing", "abnormal")  # unseen categories: refuse | mask as missing | mask and report (encode_rows)


@dataclass
class Column:
    """One column: its kind, continuous transform (+ fitted ``params``), training categories, missing allowed."""

    name: str
    kind: str
    transform: str = "standard"
    allow_missing: bool = False
    categories: list[Any] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1


# --- continuous transforms: forward t(x) and inverse t⁻¹(y), parameters are JSON scalars/lists -------------------
def _fit_transform(v: np.ndarray, how: str) -> dict[str, Any]:
    """Fit t on finite values v: standard (x−m)/s; quantile → N(0,1) scores with linear tails; yeo-johnson then standard."""
    mean, std = float(v.mean()), float(v.std())
    constant = not std > 1e-8 * max(1.0, abs(mean))
    p: dict[str, Any] = {"mean": mean, "scale": 1.0 if constant else std, "constant": constant}
    if how == "quantile" and not constant:
        levels = np.linspace(0, 1, min(1001, max(2, len(v))))
        refs = np.quantile(v, levels)
        uniq, inv = np.unique(refs, return_inverse=True)
        lev = np.bincount(inv, weights=levels) / np.bincount(inv)
        p.update(refs=uniq.tolist(), levels=np.clip(lev, 1e-4, 1 - 1e-4).tolist())
    elif how == "yeo-johnson" and not constant:
        from scipy import stats

        lam = float(stats.yeojohnson_normmax(v.astype(np.float64)))
        y = stats.yeojohnson(v.astype(np.float64), lam)
        p.update(lmbda=lam, mean=float(y.mean()), scale=float(y.std()) or 1.0)
    return p


def _forward(x: np.ndarray, how: str, p: Mapping[str, Any]) -> np.ndarray:
    if how == "none":
        return x
    if how == "quantile" and "refs" in p:
        from scipy.special import ndtri

        refs, lev = np.asarray(p["refs"]), np.asarray(p["levels"])
        y = ndtri(np.interp(x, refs, lev))
        lo, hi = ndtri(lev[0]), ndtri(lev[-1])
        y = np.where(x < refs[0], lo + (x - refs[0]) / p["scale"], y)
        return np.where(x > refs[-1], hi + (x - refs[-1]) / p["scale"], y)
    if how == "yeo-johnson" and "lmbda" in p:
        from scipy import stats

        with np.errstate(over="ignore", invalid="ignore"):
            x = stats.yeojohnson(x.astype(np.float64), p["lmbda"])
    return (x - p["mean"]) / p["scale"]


def _inverse(y: np.ndarray, how: str, p: Mapping[str, Any]) -> np.ndarray:
    if how == "none":
        return y
    if how == "quantile" and "refs" in p:
        from scipy.special import ndtr, ndtri

        refs, lev = np.asarray(p["refs"]), np.asarray(p["levels"])
        lo, hi = ndtri(lev[0]), ndtri(lev[-1])
        x = np.interp(ndtr(y), lev, refs)
        x = np.where(y < lo, refs[0] + (y - lo) * p["scale"], x)
        return np.where(y > hi, refs[-1] + (y - hi) * p["scale"], x)
    x = y * p["scale"] + p["mean"]
    if how == "yeo-johnson" and "lmbda" in p:
        lam = p["lmbda"]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pos = np.expm1(x) if abs(lam) < 1e-12 else np.power(lam * x + 1, 1 / lam) - 1
            neg = -np.expm1(-x) if abs(lam - 2) < 1e-12 else 1 - np.power(1 - (2 - lam) * x, 1 / (2 - lam))
        x = np.where(x >= 0, pos, neg)
    return x


def resolution(v: np.ndarray) -> int | None:
    """Decimals of the finite values ``v``: 0 if all are integers, else the most decimals any has (1..MAX_DECIMALS);
    None when some value has more (the column is then not rounded)."""
    v = np.asarray(v, dtype=np.float64)
    for d in range(MAX_DECIMALS + 1):
        s = v * 10.0 ** d
        if np.all(np.abs(s - np.round(s)) <= 1e-11 * np.maximum(1.0, np.abs(s))):
            return d
    return None


def infer_kinds(df: Any, kinds: Mapping[str, str] | None = None, source: str = "data",
                remedy: str = "fix or blank those cells, or declare the column categorical in column_kinds") -> dict[str, str]:
    """The kind of every column of ``df`` (see the module docstring); ``kinds`` (declared) win. Junk in a numeric
    column (text that is mostly numbers) → DataError naming the column and a value, then ``remedy``."""
    import pandas as pd

    df = named(df)
    declared = {str(k): v for k, v in (kinds or {}).items()}
    unknown = sorted(set(declared) - {str(c) for c in df.columns})
    if unknown:
        raise DataError(f"{source}: declared column kind(s) for column(s) {unknown} that the table does not have")
    out: dict[str, str] = {}
    for name in df.columns:
        s, key = df[name], str(name)
        if key in declared:
            out[key] = declared[key]
            continue
        obs = s.dropna()
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[key] = "categorical"
        elif pd.api.types.is_bool_dtype(s):
            out[key] = "binary"
        elif pd.api.types.is_numeric_dtype(s):
            out[key] = "binary" if len(obs) and bool(obs.isin([0, 1]).all()) else "continuous"
        elif (s.dtype == object or pd.api.types.is_string_dtype(s)) and len(obs) and \
                not obs.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            bad = pd.to_numeric(obs, errors="coerce").isna()
            if not bad.any():
                out[key] = "continuous"  # numbers stored as text
            elif int((~bad).sum()) > int(bad.sum()):
                raise DataError(f"{source}: column {key!r} holds numbers and {int(bad.sum())} non-numeric value(s), "
                                f"e.g. {obs[bad].iloc[0]!r}; {remedy}")
            else:
                out[key] = "categorical"
        else:
            out[key] = "categorical"
    return out


def named(df: Any) -> Any:
    """The DataFrame with string column names (integer names such as 0, 1, … become '0', '1', …)."""
    return df if all(isinstance(c, str) for c in df.columns) else df.rename(columns=str)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sorted(values: Iterable[Any]) -> list[Any]:
    vals = [_scalar(v) for v in values]
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=lambda v: (type(v).__name__, str(v)))


def _finite(v: Any) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _check_loaded_column(c: Column, source: str) -> None:
    """A column read from a schema file: the field types fitting writes and finite transform parameters, so that a
    malformed (or forged) schema is one DataError at load, not a crash when rows are encoded or decoded."""
    def bad(what: str) -> DataError:
        return DataError(f"{source}: column {str(c.name)[:60]!r}: {what}")

    if not isinstance(c.name, str) or not isinstance(c.allow_missing, bool) or not isinstance(c.params, dict):
        raise bad("name must be a string, allow_missing true/false and params an object")
    cats = c.categories
    if not isinstance(cats, list) or not all(isinstance(v, str) or _finite(v) or isinstance(v, bool) for v in cats) \
            or len(set(cats)) != len(cats) or (c.kind == "categorical" and not cats):
        raise bad("categories must be a list of distinct strings or finite numbers (at least one if categorical)")
    if c.kind != "continuous":
        return
    p = c.params
    for k in ("mean", "scale"):
        if (k in p or c.transform != "none") and not _finite(p.get(k)):
            raise bad(f"transform parameter {k!r} must be a finite number")
    if "scale" in p and not p["scale"] > 0:
        raise bad("transform parameter 'scale' must be > 0")
    if "constant" in p and not isinstance(p["constant"], bool):
        raise bad("transform parameter 'constant' must be true or false")
    dec = p.get("decimals")
    if dec is not None and (isinstance(dec, bool) or not isinstance(dec, int) or not 0 <= dec <= MAX_DECIMALS):
        raise bad(f"'decimals' must be an integer in 0..{MAX_DECIMALS}")
    if c.transform == "quantile" and ("refs" in p or "levels" in p):
        refs, lev = p.get("refs"), p.get("levels")
        if not (isinstance(refs, list) and isinstance(lev, list) and 1 <= len(refs) == len(lev)
                and all(_finite(v) for v in refs + lev) and all(0 < v < 1 for v in lev)
                and all(a <= b for a, b in zip(refs, refs[1:])) and all(a <= b for a, b in zip(lev, lev[1:]))):
            raise bad("quantile parameters 'refs'/'levels' must be equal-length sorted lists of finite numbers "
                      "(levels in (0, 1))")
    if c.transform == "yeo-johnson" and "lmbda" in p and not _finite(p["lmbda"]):
        raise bad("transform parameter 'lmbda' must be a finite number")


class TabularSchema:
    """Columns of a table and their fitted transforms: ``infer`` → ``fit`` → ``encode`` / ``decode``; JSON round trip."""

    def __init__(self, columns: Sequence[Column], max_categories: int = 200) -> None:
        self.columns, self.max_categories = list(columns), int(max_categories)
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise DataError(f"schema: duplicate column names {sorted({n for n in names if names.count(n) > 1})}")
        for c in self.columns:
            if c.kind not in KINDS:
                raise DataError(f"schema: column {c.name!r} has kind {c.kind!r}, not one of {list(KINDS)}")
            if c.transform not in TRANSFORMS:
                raise DataError(f"schema: column {c.name!r} has transform {c.transform!r}, not one of {list(TRANSFORMS)}")

    # --- construction ------------------------------------------------------------------------------------------
    @classmethod
    def infer(cls, df: Any, kinds: Mapping[str, str] | None = None, transform: str = "standard",
              allow_missing: bool | Sequence[str] = False, max_categories: int = 200,
              source: str = "data") -> "TabularSchema":
        """Column kinds by :func:`infer_kinds` (``kinds`` declared ones win), not yet fitted."""
        df = named(df)
        all_kinds = infer_kinds(df, kinds, source)
        cols = []
        for name in df.columns:
            key = str(name)
            kind = all_kinds[key]
            miss = allow_missing if isinstance(allow_missing, bool) else key in set(allow_missing)
            cols.append(Column(key, kind, transform if kind == "continuous" else "none", bool(miss)))
        return cls(cols, max_categories)

    def fit(self, df: Any, source: str = "data") -> "TabularSchema":
        """Fit transforms and categories on a training table; NaN only where missing values are allowed."""
        df = named(df)
        self._check_columns(df, source)
        if len(df) == 0:
            raise DataError(f"{source}: the table has no rows")
        for c in self.columns:
            s = df[c.name]
            if c.kind == "continuous":
                v = self._numeric(s, c, source)
                ok = v[np.isfinite(v)]
                if ok.size == 0:
                    raise DataError(f"{source}: column {c.name!r} has no observed values")
                c.params = _fit_transform(ok.astype(np.float64), c.transform)
                decimals = resolution(ok)
                if decimals is not None:
                    c.params["decimals"] = decimals
            else:
                self._check_missing(s.isna().to_numpy(), c, source)
                cats = _sorted(s.dropna().unique())
                if not cats:
                    raise DataError(f"{source}: column {c.name!r} has no observed values")
                if c.kind == "binary" and len(cats) > 2:
                    raise DataError(f"{source}: column {c.name!r} is declared binary but has {len(cats)} values "
                                    f"{cats[:5]}; declare it categorical")
                if c.kind == "categorical" and len(cats) > self.max_categories:
                    raise DataError(f"{source}: column {c.name!r} has {len(cats)} distinct values (more than "
                                    f"{self.max_categories}); drop it (an ID?) or declare it continuous")
                if c.kind == "categorical" and len(cats) == 1:
                    c.kind = "binary"  # one category: a binary column that is always 0
                c.categories = cats
        return self

    # --- checks ------------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def _check_columns(self, df: Any, source: str) -> None:
        have = [str(c) for c in df.columns]
        missing = [n for n in self.names if n not in set(have)]
        extra = [n for n in have if n not in set(self.names)]
        if missing or extra or len(set(have)) != len(have):
            parts = ([f"missing column(s) {missing}"] if missing else []) + (
                [f"unexpected column(s) {extra}"] if extra else []) + (
                ["duplicate column names"] if len(set(have)) != len(have) else [])
            raise DataError(f"{source}: wrong column set: {'; '.join(parts)} (the schema has {self.names})")

    @staticmethod
    def _check_missing(isna: np.ndarray, c: Column, source: str) -> None:
        if not c.allow_missing and isna.any():
            raise DataError(f"{source}: column {c.name!r} has {int(isna.sum())} missing value(s) (NaN/empty) but no "
                            "missing values were declared for it (allow_missing)")

    def _numeric(self, s: Any, c: Column, source: str) -> np.ndarray:
        import pandas as pd

        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            v = pd.to_numeric(s, errors="coerce")
            bad = v.isna() & s.notna()
            if bad.any():
                raise DataError(f"{source}: column {c.name!r} is continuous but holds non-numeric value(s), "
                                f"e.g. {s[bad].iloc[0]!r}")
            s = v
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(v).any():
            raise DataError(f"{source}: column {c.name!r} has {int(np.isinf(v).sum())} infinite value(s)")
        self._check_missing(np.isnan(v), c, source)
        return v

    # --- layout ------------------------------------------------------------------------------------------------
    @property
    def column_kinds(self) -> tuple[str, ...]:
        return tuple(c.kind for c in self.columns)

    @property
    def column_sizes(self) -> tuple[int, ...]:
        return tuple(c.width if c.kind == "categorical" else 1 for c in self.columns)

    @property
    def value_dim(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def input_dim(self) -> int:
        """Encoded width: values plus one mask bit per column."""
        return self.value_dim + len(self.columns)

    # --- encode / decode ---------------------------------------------------------------------------------------
    def encode(self, data: Any, source: str = "data", unknown: str = "error") -> np.ndarray:
        """Table → float32 (N, input_dim). ``unknown='error'`` rejects unseen categories; ``'missing'`` and
        ``'abnormal'`` mask them (``encode_rows`` also says where they were)."""
        return self.encode_rows(data, source, unknown)[0]

    def encode_rows(self, data: Any, source: str = "data", unknown: str = "error") -> tuple[np.ndarray, np.ndarray]:
        """(encoded rows as :meth:`encode`, unseen (N, C) bool: observed values of categories unseen in training)."""
        import pandas as pd

        if isinstance(data, np.ndarray):
            if data.ndim != 2 or data.shape[1] != len(self.columns):
                raise DataError(f"{source}: expected {len(self.columns)} columns, got shape {data.shape}")
            data = pd.DataFrame(data, columns=self.names)
        data = named(data)
        self._check_columns(data, source)
        n = len(data)
        out = np.zeros((n, self.input_dim), dtype=np.float32)
        unseen_at = np.zeros((n, len(self.columns)), dtype=bool)
        off, vd = 0, self.value_dim
        for j, c in enumerate(self.columns):
            s = data[c.name]
            if c.kind == "continuous":
                v = self._numeric(s, c, source)
                ok = ~np.isnan(v)
                y = np.clip(_forward(np.where(ok, v, c.params.get("mean", 0.0)), c.transform, c.params), -CLIP, CLIP)
                out[:, off] = np.where(ok, np.nan_to_num(y, nan=0.0, posinf=CLIP, neginf=-CLIP), 0.0)
            else:
                isna = s.isna().to_numpy()
                self._check_missing(isna, c, source)
                codes = np.where(isna, -1, pd.Index(c.categories, dtype=object).get_indexer(s.astype(object)))
                unseen = (codes < 0) & ~isna
                if unseen.any():
                    unseen_at[:, j] = unseen
                    if unknown not in ("missing", "abnormal"):
                        vals = _sorted(set(s[unseen].tolist()))
                        raise DataError(f"{source}: column {c.name!r} has {int(unseen.sum())} value(s) of unseen "
                                        f"categor(ies) {vals[:5]} (training categories: {c.categories[:10]})")
                ok = codes >= 0
                if c.kind == "binary":
                    out[:, off] = np.where(ok, codes, 0)
                else:
                    rows = np.nonzero(ok)[0]
                    out[rows, off + codes[rows]] = 1.0
            out[:, vd + j] = ok
            off += c.width
        return out, unseen_at

    def decode(self, values: np.ndarray) -> Any:
        """Encoded values (means or draws, N × value_dim[+mask]) → DataFrame in the user's units and categories;
        continuous values rounded to the column's resolution (``params["decimals"]``, when recorded)."""
        import pandas as pd

        values = np.asarray(values, dtype=np.float64)
        cols: dict[str, Any] = {}
        off = 0
        for c in self.columns:
            if c.kind == "continuous":
                x = _inverse(values[:, off], c.transform, c.params)
                cols[c.name] = x if c.params.get("decimals") is None else np.round(x, int(c.params["decimals"]))
            elif c.kind == "binary":
                idx = (values[:, off] >= 0.5).astype(int)
                cats = c.categories if len(c.categories) == 2 else c.categories * 2
                cols[c.name] = pd.Series(np.asarray(cats, dtype=object)[idx]).infer_objects()
            else:
                idx = values[:, off:off + c.width].argmax(1)
                cols[c.name] = pd.Series(np.asarray(c.categories, dtype=object)[idx]).infer_objects()
            off += c.width
        return pd.DataFrame(cols)

    # --- JSON ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "max_categories": self.max_categories,
                "columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "schema") -> "TabularSchema":
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise DataError(f"{source}: not a vaekit tabular schema of version {VERSION}")
        try:
            schema = cls([Column(**c) for c in doc["columns"]], int(doc.get("max_categories", 200)))
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise DataError(f"{source}: malformed schema ({e})") from None
        for c in schema.columns:
            _check_loaded_column(c, source)
        return schema

    def save(self, path: str | os.PathLike[str]) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TabularSchema":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: schema file not found")
        try:
            doc = read_json(path, "schema")  # size-bounded; bad UTF-8/JSON, deep nesting, a non-object: one line
        except CheckpointError as e:
            raise DataError(str(e)) from None
        return cls.from_dict(doc, str(path))

    @classmethod
    def load_part(cls, path: str | os.PathLike[str]) -> "TabularSchema":
        """:meth:`load` of the schema inside a saved estimator folder: a missing or bad schema is a damaged folder
        (CheckpointError) rather than bad user data."""
        try:
            return cls.load(path)
        except DataError as e:
            raise CheckpointError(str(e)) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TabularSchema) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TabularSchema({', '.join(f'{c.name}:{c.kind}' for c in self.columns)})"


