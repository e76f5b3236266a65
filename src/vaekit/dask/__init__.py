"""Batch jobs on Dask: score, impute, encode and generate tables that do not fit one process.

    import dask.dataframe as dd, vaekit, vaekit.dask
    from distributed import Client
    client = Client("tcp://scheduler:8786")              # or LocalCluster(); without one, Dask's local scheduler
    ddf = dd.read_parquet("transactions/")
    det = vaekit.VAEAnomalyDetector.load("detector/")
    scores = vaekit.dask.score(ddf, det, top=3)          # lazy: columns score, label, top_columns; ddf's index
    scores.to_parquet("scores/")                         # or vaekit.dask.write_table(scores, "scores.parquet")

Every function returns a lazy Dask DataFrame with a correct ``meta``, built on ``map_partitions``. The fitted
estimator is shipped ONCE per worker, not once per partition: with a ``distributed`` Client active it is
broadcast with ``client.scatter(broadcast=True)`` inside a :class:`~vaekit.dask.client.Parcel` (each worker
rebuilds it once and every task on that worker uses the same copy, even when the scheduler's memory manager has
dropped a spare replica and the worker fetches it again); without one it enters the graph once as a
``dask.delayed`` value. Inside the workers each task computes with ``threads`` PyTorch/BLAS threads (default 1: a
worker runs one task per thread, so more would oversubscribe the cores); the shipped copy has ``n_threads`` set to
that, the caller's estimator is untouched.

Results equal the in-process ones: a row's score or imputation does not depend on the batch it is computed in
(see :mod:`vaekit.jobs.anomaly.detector`, :mod:`vaekit.jobs.impute.imputer`), so ``score(ddf, det)`` gives exactly
``det.decision_function(df)`` (tests/dask/test_dask.py). :func:`generate` seeds partition i with the i-th child of
``numpy.random.SeedSequence(seed)`` (:func:`partition_seeds`): the rows depend on ``(seed, npartitions)`` only, not
on the scheduler, the number of workers or the order in which partitions run.

Dask is an optional dependency (``pip install vaekit[dask]``), imported here only, lazily; without it every
function raises a one-line :class:`~vaekit.errors.VaekitError` saying so. With GPU workers use one thread per
worker (the estimators move their models to the device and back per call).
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from vaekit.dask.client import client_or_none, connect, opened, require_dask, ship
from vaekit.dask.files import read_table, write_table
from vaekit.errors import DataError, VaekitError
from vaekit.runtime import threads as thread_limit

__all__ = ["connect", "encode", "generate", "impute", "partition_seeds", "read_table", "score", "write_table"]


# --- helpers -----------------------------------------------------------------------------------------------------
def _check_ddf(ddf: Any, what: str) -> None:
    dd = require_dask()[1]
    if not isinstance(ddf, dd.DataFrame):
        raise VaekitError(f"{what}: expected a dask.dataframe.DataFrame, got {type(ddf).__name__}")


def _check_threads(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise VaekitError(f"threads must be a whole number >= 1, got {n!r}")
    return int(n)


def _for_workers(est: Any, n_threads: int) -> Any:
    """A shallow copy with ``n_threads`` set (the models are shared, not copied); the caller's object is unchanged."""
    get = getattr(est, "get_params", None)
    if get is not None and "n_threads" in get(deep=False):
        est = copy.copy(est)
        est.n_threads = n_threads
    return est


def _fitted(est: Any, attr: str, what: str) -> None:
    if getattr(est, attr, None) is None:
        raise VaekitError(f"{what} is not fitted: call fit (or load a fitted one) before shipping it to Dask")


@contextlib.contextmanager
def _where(info: Mapping[str, Any] | None) -> Iterator[None]:
    """A DataError inside a partition names the partition (the error travels back to the client as it is)."""
    try:
        yield
    except DataError as e:
        n = info.get("number") if info else None
        raise DataError(f"partition {n}: {e}" if n is not None else str(e)) from None


def top_names(shares: np.ndarray, names: Sequence[str], n: int) -> list[list[str]]:
    """Names of the n largest positive shares per row, largest first (the rule of ``vaekit anomaly score``)."""
    if n <= 0 or shares.size == 0:
        return [[] for _ in range(len(shares))]
    idx = np.argsort(-shares, axis=1, kind="stable")[:, :n]
    return [[names[j] for j in row if shares[i, j] > 0] for i, row in enumerate(idx)]


# --- score -------------------------------------------------------------------------------------------------------
def _score_frame(index: Any, kept: Any, s: np.ndarray, threshold: float, tops: list[str] | None) -> Any:
    import pandas as pd

    out = pd.DataFrame({"score": np.asarray(s, dtype=np.float64),
                        "label": (np.asarray(s) > threshold).astype(np.int64)}, index=index)
    if tops is not None:
        out["top_columns"] = pd.Series(tops, index=index, dtype=object)
    return out if kept is None else pd.concat([kept, out], axis=1)


def _score_part(part: Any, det: Any, top: int, keep: list[str], n_threads: int,
                partition_info: Mapping[str, Any] | None = None) -> Any:
    det = opened(det)
    X = part.drop(columns=keep) if keep else part
    if getattr(det, "feature_names_in_", None) is None:  # fitted on an array: columns by position
        X = X.to_numpy(dtype=np.float64)
    with _where(partition_info), thread_limit(n_threads):
        if top > 0:
            s, cols = det.score_details(X)
            tops: list[str] | None = [";".join(t) for t in top_names(det.shares(cols), det.columns_, top)]
        else:
            s, tops = det.decision_function(X), None
    return _score_frame(part.index, part[keep] if keep else None, s, float(det.threshold_), tops)


def score(ddf: Any, detector: Any, top: int = 0, keep: Sequence[str] = (), threads: int = 1) -> Any:
    """Anomaly scores of every row: a Dask DataFrame with ddf's index and columns ``score`` (float64, higher = more
    abnormal), ``label`` (int64, 1 = above ``threshold_``) and, with ``top`` > 0, ``top_columns`` (the ``top``
    largest contributing columns, ';'-joined). ``keep`` columns (IDs) are copied in front, not scored.

    ``detector``: a fitted :class:`~vaekit.VAEAnomalyDetector`; ddf holds its training columns (any order).
    """
    _check_ddf(ddf, "score")
    _fitted(detector, "models_", "the detector")
    n_threads = _check_threads(threads)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 0:
        raise VaekitError(f"top must be a whole number >= 0, got {top!r}")
    keep = [str(c) for c in keep]
    absent = [c for c in keep if c not in ddf.columns]
    if absent:
        raise DataError(f"keep names column(s) {absent} that the table does not have")
    meta = _score_frame(ddf._meta.index, ddf._meta[keep] if keep else None, np.zeros(0), 0.0,
                        [] if top else None)
    est = ship(_for_workers(detector, n_threads), "detector")
    return ddf.map_partitions(_score_part, est, int(top), keep, n_threads, meta=meta)


# --- impute ------------------------------------------------------------------------------------------------------
def _impute_part(part: Any, imp: Any, cols: list[str] | None, n_threads: int,
                 partition_info: Mapping[str, Any] | None = None) -> Any:
    import pandas as pd

    imp = opened(imp)
    with _where(partition_info), thread_limit(n_threads):
        if cols is None:  # fitted on an array: every column, by position, float64 out
            done = imp.transform(part.to_numpy(dtype=np.float64))
            return pd.DataFrame(done, index=part.index, columns=part.columns)
        done = imp.transform(part[cols])
    out = part.copy()
    for c in cols:
        out[c] = done[c]
    return out


def impute(ddf: Any, imputer: Any, threads: int = 1) -> Any:
    """ddf with its missing values filled by a fitted :class:`~vaekit.VAEImputer` (``transform``: conditional means
    / most probable values): same columns, index and dtypes. Columns the imputer was not fitted on pass through
    untouched; an imputer fitted on an array imputes every column (float64)."""
    _check_ddf(ddf, "impute")
    _fitted(imputer, "model_", "the imputer")
    n_threads = _check_threads(threads)
    names = getattr(imputer, "feature_names_in_", None)
    cols = None if names is None else [str(c) for c in names]
    if cols is not None:
        absent = [c for c in cols if c not in ddf.columns]
        if absent:
            raise DataError(f"impute: the table lacks column(s) {absent} that the imputer was fitted on")
        meta = ddf._meta
    else:
        if len(ddf.columns) != imputer.n_features_in_:
            raise DataError(f"impute: {len(ddf.columns)} columns, the imputer was fitted on {imputer.n_features_in_}")
        meta = ddf._meta.astype(np.float64)
    est = ship(_for_workers(imputer, n_threads), "imputer")
    return ddf.map_partitions(_impute_part, est, cols, n_threads, meta=meta)


# --- encode ------------------------------------------------------------------------------------------------------
def _encode_frame(index: Any, mu: np.ndarray, logvar: np.ndarray | None) -> Any:
    import pandas as pd

    out = {f"z{j}": mu[:, j] for j in range(mu.shape[1])}
    if logvar is not None:
        out.update({f"logvar{j}": logvar[:, j] for j in range(logvar.shape[1])})
    return pd.DataFrame(out, index=index)


def _encode_part(part: Any, model: Any, columns: list[Any], logvar: bool, n_threads: int) -> Any:
    import torch

    model = opened(model)
    dtype = next(model.parameters()).dtype
    x = torch.from_numpy(part[columns].to_numpy(dtype=np.float64)).to(dtype)
    model.eval()
    with torch.no_grad(), thread_limit(n_threads):
        mu, lv = model.encode(x)
    return _encode_frame(part.index, mu.cpu().numpy(), lv.cpu().numpy() if logvar else None)


def encode(ddf: Any, model: Any, columns: Sequence[str] | None = None, logvar: bool = False,
           threads: int = 1) -> Any:
    """Posterior means μ(x) of a trained :class:`~vaekit.VAE` (on the CPU): columns ``z0..z{d-1}`` (and with
    ``logvar`` also ``logvar0..``) in the model's dtype, ddf's index. ``columns`` (default: all, in order) are the
    model's inputs in model space (flattened), as many as the model's input size."""
    import torch

    _check_ddf(ddf, "encode")
    n_threads = _check_threads(threads)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "encode") or not hasattr(model, "config"):
        raise VaekitError(f"encode: expected a vaekit VAE, got {type(model).__name__}")
    if model.config.n_conditions:
        raise VaekitError("encode: the model is conditional; vaekit.dask.encode supports unconditional VAEs only")
    cols = list(ddf.columns if columns is None else columns)
    absent = [c for c in cols if c not in ddf.columns]
    if absent:
        raise DataError(f"encode: the table lacks column(s) {absent}")
    need = int(np.prod(model.config.input_shape))
    if len(cols) != need:
        raise DataError(f"encode: {len(cols)} input column(s), the model takes {need} values per row")
    dtype = next(model.parameters()).dtype
    d = int(model.config.latent_dim)
    empty = np.zeros((0, d), dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    meta = _encode_frame(ddf._meta.index, empty, empty if logvar else None)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    est = ship(model if on_cpu else copy.deepcopy(model).cpu(), "model")  # the caller's model stays where it is
    return ddf.map_partitions(_encode_part, est, cols, bool(logvar), n_threads, meta=meta)


# --- generate ----------------------------------------------------------------------------------------------------
def partition_seeds(seed: int, npartitions: int) -> list[int]:
    """The seed of each partition of :func:`generate`: the i-th child of ``SeedSequence(seed)``, as a 32-bit int."""
    return [int(s.generate_state(1, np.uint32)[0]) for s in np.random.SeedSequence(int(seed)).spawn(int(npartitions))]


def partition_sizes(n: int, npartitions: int) -> list[int]:
    """Rows per partition: n split as evenly as possible, the first ``n % npartitions`` one row longer."""
    return [n // npartitions + (i < n % npartitions) for i in range(npartitions)]


def _conditions_for(conditions: Mapping[str, Any] | None, a: int, b: int, n: int) -> dict[str, Any] | None:
    """Per-partition conditions: a value for all rows stays, a sequence of n values is sliced to rows a..b."""
    if conditions is None:
        return None
    out = {}
    for k, v in conditions.items():
        seq = not isinstance(v, (str, bytes)) and hasattr(v, "__len__") and len(v) == n
        out[k] = list(v)[a:b] if seq else v
    return out


def _generate_part(spec: Any, gen: Any, conditions: Mapping[str, Any] | None, n: int, temperature: float,
                   n_threads: int) -> Any:
    import pandas as pd

    gen = opened(gen)
    parts = []
    for start, rows, seed in spec[["start", "rows", "seed"]].itertuples(index=False):
        with thread_limit(n_threads):
            df = gen.sample(int(rows), _conditions_for(conditions, int(start), int(start + rows), n),
                            temperature, random_state=int(seed))
        parts.append(df.set_axis(pd.RangeIndex(int(start), int(start + rows)), axis=0))
    return pd.concat(parts) if len(parts) != 1 else parts[0]


def generate(n: int, generator: Any, npartitions: int, seed: int = 0, conditions: Mapping[str, Any] | None = None,
             temperature: float = 1.0, threads: int = 1) -> Any:
    """n synthetic rows from a fitted :class:`~vaekit.TabularGenerator` in ``npartitions`` partitions (index
    0..n−1; partition i holds :func:`partition_sizes` rows drawn with ``random_state`` = :func:`partition_seeds`
    [i]), reproducible and independent of the scheduler. ``conditions``: {column: value or n values}."""
    import pandas as pd

    dd = require_dask()[1]
    _fitted(generator, "model_", "the generator")
    n_threads = _check_threads(threads)
    for name, v in (("n", n), ("npartitions", npartitions)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise VaekitError(f"{name} must be a whole number >= 1, got {v!r}")
    n, p = int(n), int(npartitions)
    if p > n:
        raise VaekitError(f"npartitions ({p}) must be at most n ({n}): every partition holds at least one row")
    if conditions is not None and not isinstance(conditions, Mapping):
        raise VaekitError("conditions must be a mapping {column: value or n values}")
    sizes = partition_sizes(n, p)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    specs = pd.DataFrame({"start": starts, "rows": np.asarray(sizes, dtype=np.int64),
                          "seed": np.asarray(partition_seeds(seed, p), dtype=np.int64)})
    meta = generator.sample(1, _conditions_for(conditions, 0, 1, n), temperature, random_state=0).iloc[:0]
    meta.index = pd.RangeIndex(0)
    est = ship(_for_workers(generator, n_threads), "generator")
    spec_ddf = dd.from_pandas(specs, chunksize=1, sort=True)
    return spec_ddf.map_partitions(_generate_part, est, None if conditions is None else dict(conditions), n,
                                   float(temperature), n_threads, meta=meta, clear_divisions=True)


__all__ += ["client_or_none", "partition_sizes", "top_names"]
