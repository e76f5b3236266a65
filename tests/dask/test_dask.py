"""vaekit.dask on a LocalCluster of 2 worker processes against the in-process results; the CLI's --dask path.

One cluster and one set of tiny fitted estimators per module (total ~30 s on 2 cores). The estimator is counted as
it is deserialized on each worker: once per worker, not once per partition (and a naive map_partitions, which
ships it with every task, is seen to do worse: the counter can fail).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import vaekit
import vaekit.dask as vdask
from tests.helpers import run_cli
from vaekit.errors import DataError, VaekitError
from tests.conftest import ROOT

LOADS = 0  # deserializations of a CountingDetector in this process (read on the workers by client.run)


class CountingDetector(vaekit.VAEAnomalyDetector):
    """A detector that counts how often it is unpickled in the process that unpickles it."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        global LOADS
        LOADS += 1
        super().__setstate__(state)


def _loads() -> int:
    return LOADS


def _reset() -> None:
    global LOADS
    LOADS = 0


def _plain_score(part: Any, det: Any) -> Any:
    return pd.DataFrame({"score": det.decision_function(part)}, index=part.index)


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    df = pd.DataFrame(z @ rng.normal(size=(2, 4)) + 0.3 * rng.normal(size=(n, 4)), columns=list("abcd"))
    df["kind"] = np.where(z[:, 0] > 0, "up", "=down")  # a formula-looking category: CSV output must stay safe
    return df


@pytest.fixture(scope="module")
def client() -> Any:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as c:
        c.run(_path_to, str(ROOT))  # workers can import tests.dask.test_dask (counter)
        yield c


def _path_to(root: str) -> None:
    if root not in sys.path:
        sys.path.insert(0, root)


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    df = _table(700, 0)
    det = CountingDetector(n_models=2, k=4, max_steps=25, hidden=(32, 32), random_state=0, n_threads=1).fit(df)
    miss = df.copy()
    rng = np.random.default_rng(1)
    for j, c in enumerate(miss.columns):
        miss.loc[rng.random(len(miss)) < 0.15, c] = np.nan if j < 4 else None
    imp = vaekit.VAEImputer(max_steps=40, n_samples=40, hidden=(32, 32), precision="fp32", random_state=0,
                            n_threads=1).fit(miss)
    gen = vaekit.TabularGenerator(max_steps=40, hidden=(32, 32), random_state=0, n_threads=1).fit(df)
    return {"df": df, "det": det, "miss": miss, "imp": imp, "gen": gen}


def test_score_equals_in_process_exactly(client: Any, fitted: dict[str, Any]) -> None:
    df, det = fitted["df"], fitted["det"]
    ddf = dd.from_pandas(df, npartitions=7)  # uneven partitions of ~100 rows
    lazy = vdask.score(ddf, det, top=2)
    got = lazy.compute()
    scores, _ = det.score_details(df)
    assert np.array_equal(got["score"].to_numpy(), scores)  # exact, not approximately
    assert np.array_equal(got["score"].to_numpy(), det.decision_function(df))
    assert got["label"].tolist() == (scores > det.threshold_).astype(int).tolist()
    assert got["top_columns"].tolist() == [";".join(t) for t in det.top_columns(df, 2)]
    assert got.index.equals(df.index)
    assert dict(lazy.dtypes) == dict(got.dtypes)  # the meta is right
    assert list(vdask.score(ddf, det).columns) == ["score", "label"]


def test_shipped_once_per_worker(client: Any, fitted: dict[str, Any]) -> None:
    ddf = dd.from_pandas(fitted["df"], npartitions=8)
    client.run(_reset)
    before = set(client.who_has())
    lazy = vdask.score(ddf, fitted["det"])
    (key,) = set(client.who_has()) - before  # the broadcast detector
    # While no task waits for it, the scheduler's memory manager (ReduceReplicas, every 2 s) drops the spare replica
    # of a broadcast key, and a worker then fetches it again at compute: it must reuse its first copy, not rebuild it.
    deadline = time.monotonic() + 10
    while len(client.who_has()[key]) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    dropped = len(client.who_has()[key]) == 1
    lazy.compute()
    loads = client.run(_loads)
    assert len(loads) == 2 and all(v == 1 for v in loads.values()), (loads, dropped)
    client.run(_reset)  # the naive way ships the detector with every task: the counter sees it
    ddf.map_partitions(_plain_score, fitted["det"], meta={"score": "f8"}).compute()
    assert sum(client.run(_loads).values()) >= 8


def test_workers_compute_with_one_thread(client: Any, fitted: dict[str, Any]) -> None:
    det = fitted["det"].set_params(n_threads=None)
    try:
        part = vdask.score(dd.from_pandas(fitted["df"], npartitions=2), det)
        assert fitted["det"].n_threads is None  # the caller's estimator is not changed
        assert len(part.compute()) == 700
    finally:
        fitted["det"].set_params(n_threads=1)
    import torch

    assert set(client.run(torch.get_num_threads).values()) == {1}


def test_impute_matches_in_process(client: Any, fitted: dict[str, Any]) -> None:
    miss, imp = fitted["miss"], fitted["imp"]
    ddf = dd.from_pandas(miss, npartitions=5)
    lazy = vdask.impute(ddf, imp)
    got, ref = lazy.compute(), imp.transform(miss)
    assert got.index.equals(miss.index) and list(got.columns) == list(miss.columns)
    assert dict(lazy.dtypes) == dict(got.dtypes) == dict(ddf.dtypes)  # Dask's dtypes (its strings: pyarrow)
    assert got.notna().all().all()
    observed = miss.notna()
    for c in miss.columns:  # observed entries untouched
        assert got.loc[observed[c], c].tolist() == miss.loc[observed[c], c].tolist()
    assert got["kind"].tolist() == ref["kind"].tolist()
    # continuous imputations: float32 importance weights; BLAS kernels depend on the block's shape (see README)
    np.testing.assert_allclose(got[list("abcd")].to_numpy(), ref[list("abcd")].to_numpy(), rtol=1e-6, atol=1e-7)
    one = vdask.impute(dd.from_pandas(miss, npartitions=1), imp).compute()
    pd.testing.assert_frame_equal(one, ref, check_exact=True, check_dtype=False)  # one block: bit-identical


def test_encode_matches_in_process(client: Any, fitted: dict[str, Any]) -> None:
    import torch

    model = fitted["det"].models_[0]
    x = torch.from_numpy(fitted["det"].schema_.encode_rows(fitted["df"], "X")[0]).double()
    frame = pd.DataFrame(x.numpy(), columns=[f"v{j}" for j in range(x.shape[1])])
    got = vdask.encode(dd.from_pandas(frame, npartitions=4), model, logvar=True).compute()
    with torch.no_grad():
        mu, lv = model.encode(x)
    d = model.config.latent_dim
    assert list(got.columns) == [f"z{j}" for j in range(d)] + [f"logvar{j}" for j in range(d)]
    np.testing.assert_allclose(got.to_numpy(), np.hstack([mu.numpy(), lv.numpy()]), rtol=1e-12, atol=1e-12)
    with pytest.raises(DataError, match="takes"):
        vdask.encode(dd.from_pandas(frame.iloc[:, :3], npartitions=1), model)


def test_generate_reproducible_and_scheduler_independent(client: Any, fitted: dict[str, Any]) -> None:
    gen = fitted["gen"]
    lazy = vdask.generate(1001, gen, npartitions=4, seed=5)
    on_cluster = lazy.compute()
    with dask.config.set(scheduler="synchronous"):  # no Client: the graph holds the generator once (delayed)
        local = vdask.generate(1001, gen, npartitions=4, seed=5).compute()
    pd.testing.assert_frame_equal(on_cluster, local, check_exact=True)
    sizes, seeds = vdask.partition_sizes(1001, 4), vdask.partition_seeds(5, 4)
    assert sizes == [251, 250, 250, 250]
    by_hand = pd.concat([gen.sample(n, random_state=s) for n, s in zip(sizes, seeds)], ignore_index=True)
    pd.testing.assert_frame_equal(on_cluster, by_hand, check_exact=True)
    assert on_cluster.index.tolist() == list(range(1001))
    assert dict(lazy.dtypes) == dict(on_cluster.dtypes)
    other = vdask.generate(1001, gen, npartitions=4, seed=6).compute()
    assert not other.equals(on_cluster)


def test_bad_input_one_line_errors(client: Any, fitted: dict[str, Any]) -> None:
    with pytest.raises(VaekitError, match="dask.dataframe.DataFrame"):
        vdask.score(fitted["df"], fitted["det"])
    with pytest.raises(VaekitError, match="not fitted"):
        vdask.score(dd.from_pandas(fitted["df"], npartitions=1), vaekit.VAEAnomalyDetector())
    with pytest.raises(VaekitError, match="npartitions"):
        vdask.generate(3, fitted["gen"], npartitions=5)
    with pytest.raises(DataError, match="keep"):
        vdask.score(dd.from_pandas(fitted["df"], npartitions=1), fitted["det"], keep=["id"])
    with pytest.raises(DataError, match="partition 0"):  # raised on a worker, named, back on the client
        vdask.score(dd.from_pandas(fitted["df"].drop(columns="a"), npartitions=1), fitted["det"]).compute()


def test_without_dask_a_one_line_error(monkeypatch: pytest.MonkeyPatch, fitted: dict[str, Any]) -> None:
    for name in ("dask", "dask.dataframe"):
        monkeypatch.setitem(sys.modules, name, None)  # import dask → ImportError, as when it is not installed
    with pytest.raises(VaekitError, match=r"pip install vaekit\[dask\]"):
        vdask.generate(10, fitted["gen"], npartitions=2)


def test_cli_score_dask_same_file(client: Any, fitted: dict[str, Any], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    df = fitted["df"].assign(id=np.arange(700))
    model = tmp_path / "det"
    fitted["det"].save(model)
    big = tmp_path / "big.csv"
    df.to_csv(big, index=False)
    outs = {}
    for how in ("plain", "dask"):
        out = tmp_path / f"{how}.csv"
        extra = ["--dask", client.scheduler.address] if how == "dask" else []
        code, text, err = run_cli(capsys, "anomaly", "score", model, big, "--out", out, "--id-column", "id",
                                  "--no-plot", "--threads", "1", *extra)
        assert code == 0, err
        outs[how] = out.read_text()
    assert outs["dask"] == outs["plain"]
    assert "'=down" not in outs["dask"] and "scored 700 rows" in text
    monkeypatch.setattr("vaekit.dask.client.CONNECT_TIMEOUT_S", 1)
    for bad in ("tcp://127.0.0.1:1", "local:0"):  # nothing listens there; not a worker count
        code, _, err = run_cli(capsys, "anomaly", "score", model, big, "--out", tmp_path / "x.csv", "--dask", bad)
        assert code == 2 and err.startswith("error: --dask") and len(err.strip().splitlines()) == 1, err


def test_cli_impute_dask_same_file(client: Any, fitted: dict[str, Any], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "m.parquet"
    fitted["miss"].iloc[:300].to_parquet(data, index=False)
    outs = {}
    for how in ("plain", "dask"):
        out = tmp_path / f"{how}.csv"
        extra = ["--dask", client.scheduler.address] if how == "dask" else []
        code, _, err = run_cli(capsys, "impute", data, "--out", out, "--n-samples", "30", "--max-steps", "30",
                               "--threads", "1", *extra)
        assert code == 0, err
        outs[how] = out.read_text()
    assert outs["dask"] == outs["plain"]
    code, _, err = run_cli(capsys, "impute", data, "--out", tmp_path / "y.csv", "--multiple", "2", "--dask", "local")
    assert code == 2 and "--multiple" in err and "Traceback" not in err


def test_write_table_parquet_streams_in_order(client: Any, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(50), "b": [f"s{i}" for i in range(50)]})
    out = tmp_path / "o.parquet"
    seen: list[int] = []
    n = vdask.write_table(dd.from_pandas(frame, npartitions=6), out, on_partition=lambda p: seen.append(len(p)),
                          in_flight=2)
    assert n == 50 and sum(seen) == 50 and len(seen) == 6
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame, check_dtype=False)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
