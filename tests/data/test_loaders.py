import gzip

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vaekit.core.likelihoods import Bernoulli, Gaussian
from vaekit.core.preprocess import prepare
from vaekit.data import infer_image_shape, load_array, load_splits
from vaekit.errors import DataError

from tests.conftest import SHARED


def _idx_bytes(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def test_idx_gz_round_trip_and_damage(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    p = tmp_path / "t-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx_bytes(arr)))
    assert np.array_equal(load_array(p).x, arr)
    p.write_bytes(gzip.compress(_idx_bytes(arr)[:-7]))
    with pytest.raises(DataError, match="truncated"):
        load_array(p)
    bad = bytearray(_idx_bytes(arr))
    bad[2] = 0x42
    p.write_bytes(gzip.compress(bytes(bad)))
    with pytest.raises(DataError, match="bad magic"):
        load_array(p)
    huge = bytes([0, 0, 0x08, 3]) + b"\xff\xff\xff\xff" * 3  # declares ~2^96 bytes: refused before allocation
    p.write_bytes(gzip.compress(huge))
    with pytest.raises(DataError, match="more than"):
        load_array(p)


def test_npz_split_keys(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((20, 3)), y_train=np.arange(20), x_test=np.ones((4, 3)), y_test=np.arange(4))
    sp = load_splits(p)
    assert len(sp["train"].x) == 18 and len(sp["valid"].x) == 2 and len(sp["test"].x) == 4
    assert sp["train"].y is not None and len(sp["train"].y) == 18
    with pytest.raises(DataError, match="no array for split 'valid'"):
        load_array(p, "valid")


def test_image_folder_with_labels_and_mixed_sizes(tmp_path):
    for lab in ("a", "b"):
        (tmp_path / "imgs" / lab).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((5, 7), 40 * i, np.uint8)).save(tmp_path / "imgs" / lab / f"{i}.png")
    ds = load_array(tmp_path / "imgs")
    assert ds.x.shape == (4, 5, 7) and ds.y.tolist() == [0, 0, 1, 1]
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "imgs" / "a" / "odd.png")
    with pytest.raises(DataError, match="odd.png: image shape"):
        load_array(tmp_path / "imgs")


def test_tables_and_bad_files(tmp_path):
    pd.DataFrame({"a": [0.1, 0.2], "b": [1.0, 0.0]}).to_csv(tmp_path / "t.csv", index=False)
    assert load_array(tmp_path / "t.csv").x.shape == (2, 2)
    pd.DataFrame({"a": [0.1, 0.2], "b": [1.0, 0.0]}).to_parquet(tmp_path / "t.parquet")
    assert load_array(tmp_path / "t.parquet").x.shape == (2, 2)
    pd.DataFrame({"a": ["x", "y"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match="non-numeric column"):
        load_array(tmp_path / "s.csv")
    with pytest.raises(DataError, match="file not found"):
        load_array(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz: not a readable .npz"):
        load_array(tmp_path / "bad.npz")
    (tmp_path / "x.weird").write_text("1")
    with pytest.raises(DataError, match="unknown data format"):
        load_array(tmp_path / "x.weird")


def test_nan_in_file_is_named(tmp_path):
    p = tmp_path / "n.npz"
    np.savez(p, train=np.array([[0.1, np.nan]] * 3, dtype=np.float32))
    ds = load_array(p, "train")
    with pytest.raises(DataError, match=r"n\.npz\[train\]: 3 value"):
        prepare(ds.x, Gaussian(), ds.source)


def test_binarization_and_dequantization():
    x = np.full((200, 10), 0.3, np.float32)
    static, tf = prepare(x, Bernoulli(), "x", "static", seed=1)
    again, _ = prepare(x, Bernoulli(), "x", "static", seed=1)
    assert set(static.unique().tolist()) == {0.0, 1.0} and static.mean().item() == pytest.approx(0.3, abs=0.03)
    assert tf.kind == "none" and static.equal(again)
    _, tf_dyn = prepare(x, Bernoulli(), "x", "dynamic")
    assert tf_dyn.kind == "dynamic"
    px = np.array([[0, 255]], np.uint8)
    centres, tf_g = prepare(px, Gaussian(), "px")
    assert tf_g.kind == "dequantize" and centres.tolist() == [[0.5 / 256, 255.5 / 256]]
    with pytest.raises(DataError, match="only to the Bernoulli"):
        prepare(px, Gaussian(), "px", "static")


def test_image_shapes():
    assert infer_image_shape(np.zeros((2, 784))) == (1, 28, 28)
    assert infer_image_shape(np.zeros((2, 28, 28))) == (1, 28, 28)
    assert infer_image_shape(np.zeros((2, 32, 32, 3))) == (3, 32, 32)
    assert infer_image_shape(np.zeros((2, 11))) == (11,)


@pytest.mark.skipif(not (SHARED / "binarized_mnist.npz").exists(), reason="../shared/data not present")
def test_shared_benchmark_sets_load_by_path():
    sp = load_splits(SHARED / "binarized_mnist.npz")
    assert {k: len(v.x) for k, v in sp.items()} == {"train": 50000, "valid": 10000, "test": 10000}
    mn = load_splits(SHARED / "mnist.npz")
    assert mn["train"].x.shape[1:] == (28, 28) and mn["test"].y is not None
