"""Out-of-core data (vaekit.data.stream): rows read per batch from .npy, CSV, Parquet and image folders; streamed
training equals in-memory training; peak memory does not grow with the file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import load_benchmark, run_cli
from vaekit.data.stream import ImageFolderRows, NpyRows, open_rows, spill_table
from vaekit.errors import DataError

VAEKIT = Path(sys.executable).parent / "vaekit"


def test_npy_rows_take_any_order(tmp_path: Path) -> None:
    a = np.random.default_rng(0).random((50, 3, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    r = NpyRows(tmp_path / "a.npy")
    idx = np.array([7, 3, 4, 5, 49, 0, 3])
    assert len(r) == 50 and r.shape == (3, 4) and np.array_equal(r.take(idx), a[idx])
    assert np.array_equal(np.concatenate(list(r.chunks(16))), a)
    with pytest.raises(DataError, match="out of range"):
        r.take(np.array([50]))


def test_npy_rows_refuses_truncated_and_fortran(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((10, 8), np.float32))
    blob = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(blob[:-5])
    with pytest.raises(DataError, match="truncated"):
        NpyRows(tmp_path / "t.npy")
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((10, 8), np.float32)))
    with pytest.raises(DataError, match="Fortran"):
        NpyRows(tmp_path / "f.npy")
    (tmp_path / "x.npz").write_bytes(b"PK")
    with pytest.raises(DataError, match="streaming reads"):
        open_rows(tmp_path / "x.npz", tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_spill_in_chunks(tmp_path: Path, suffix: str) -> None:
    df = pd.DataFrame(np.random.default_rng(1).normal(size=(1000, 5)), columns=list("abcde"))
    path = tmp_path / f"t{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, row_group_size=128)
    r = spill_table(path, tmp_path / "cache" / "t.npy", rows=100)
    assert np.allclose(r.take(np.arange(1000)), df.to_numpy(np.float32))
    assert sorted(os.listdir(tmp_path / "cache")) == ["t.npy"]  # the raw spill is gone
    df.assign(e="x").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="non-numeric"):
        spill_table(tmp_path / "bad.csv", tmp_path / "cache" / "bad.npy")
    assert not (tmp_path / "cache" / "bad.npy").exists()


def test_image_folder_rows_decode_per_batch(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    for i, im in enumerate(imgs):
        (tmp_path / "imgs" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(tmp_path / "imgs" / f"c{i % 2}" / f"{i}.png")
    r = ImageFolderRows(tmp_path / "imgs")
    assert len(r) == 6 and r.shape == (1, 5, 4) and r.labels is not None and set(r.labels) == {0, 1}
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    got = r.take(np.array([3, 0]))
    assert np.array_equal(got[0, 0], np.asarray(Image.open(files[3])))
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(files[0])
    with pytest.raises(DataError, match="differs from"):
        r.take(np.array([0]))


def test_streamed_training_equals_in_memory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x = (np.random.default_rng(3).random((300, 36)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["--data", tmp_path / "x.npy", "--epochs", "2", "--hidden", "16", "--latent-dim", "2", "--no-progress",
            "--seed", "5", "--batch-size", "32", "--threads", "1"]
    for name, extra in (("mem", []), ("stream", ["--stream"])):
        code, _, err = run_cli(capsys, "train", "--out", tmp_path / name, *args, *extra)
        assert code == 0, err
    w = [(tmp_path / n / "model" / "model.safetensors").read_bytes() for n in ("mem", "stream")]
    assert w[0] == w[1]
    # a streamed run resumes streamed (from run.json), to the same bytes
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "stream", *args, "--epochs", "2", "--resume")
    assert code == 0 and (tmp_path / "stream" / "model" / "model.safetensors").read_bytes() == w[0]
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "s2", *args, "--stream", "--binarize", "static")
    assert code == 2 and "cannot stream" in err
    from vaekit.core import workflows

    res = [workflows.evaluate_file(tmp_path / "mem", tmp_path / "x.npy", k=20, threads=1, stream=s)
           for s in (False, True)]
    assert res[0]["nll"] == res[1]["nll"] and res[0]["n"] == res[1]["n"] == 300
    code, _, err = run_cli(capsys, "eval", tmp_path / "mem", "--data", tmp_path / "x.npy", "--stream", "--k", "5",
                           "--limit", "50", "--json")
    assert code == 0 and '"n": 50' in _




@pytest.mark.skipif(not VAEKIT.exists() or sys.platform != "linux", reason="needs the vaekit script and Linux rusage")
@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """A 200 MB file and one 8× smaller train with --stream: peak RSS differs by far less than the data (in memory
    the big run would hold ≥ 200 MB more)."""
    rng = np.random.default_rng(4)
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(64_000, 784))
    for i in range(0, len(big), 8000):
        big[i:i + 8000] = rng.random((8000, 784), dtype=np.float32)
    big.flush()
    np.save(tmp_path / "small.npy", np.asarray(big[:8000]))
    size_mb = (tmp_path / "big.npy").stat().st_size / 2**20
    del big
    peak_rss_mb = load_benchmark("stream_memory").peak  # the benchmark's own measurement (GNU time, rusage)
    peaks = {}
    for name in ("small", "big"):
        peaks[name] = peak_rss_mb([str(VAEKIT), "train", "--data", str(tmp_path / f"{name}.npy"), "--out",
                                   str(tmp_path / f"run_{name}"), "--stream", "--epochs", "1", "--hidden", "32",
                                   "--latent-dim", "2", "--likelihood", "gaussian", "--no-progress", "--k", "1",
                                   "--objective", "elbo", "--threads", "1"])
    assert peaks["big"] - peaks["small"] < 0.25 * size_mb, (peaks, size_mb)
