import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_cli as cli

FAST = ["--max-steps", "300", "--n-models", "1", "--k", "4", "--hidden", "16", "--latent-dim", "2"]




@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    a = rng.normal(size=n)
    train = pd.DataFrame({"id": np.arange(n), "a": a, "b": a * 2 + 0.1 * rng.normal(size=n),
                          "shop": rng.choice(["north", "south"], n)})
    train.to_csv(tmp_path / "train.csv", index=False)
    new = train.iloc[:40].copy()
    new.loc[:9, "b"] = -new.loc[:9, "b"] + 5  # 10 broken rows
    new.to_csv(tmp_path / "new.csv", index=False)
    return tmp_path


def test_fit_then_score_writes_scores_labels_top_columns_and_histogram(capsys, tables):
    t = tables
    code, out, err = cli(capsys, "anomaly", "fit", t / "train.csv", "--out", t / "det", "--ignore", "id", *FAST)
    assert code == 0, err
    assert "a:continuous, b:continuous, shop:categorical" in out and (t / "det" / "train_scores.png").exists()
    code, out, err = cli(capsys, "anomaly", "score", t / "det", t / "new.csv", "--out", t / "scores.csv",
                         "--id-column", "id", "--chunksize", "15")
    assert code == 0, err
    assert "scored 40 rows" in out
    res = pd.read_csv(t / "scores.csv")
    assert list(res.columns) == ["id", "score", "label", "top_columns"] and len(res) == 40
    assert res["score"][:10].min() > res["score"][10:].median()
    assert res["label"][:10].mean() > res["label"][10:].mean()
    assert (t / "scores.png").stat().st_size > 1000
    # a second fit into the same folder is refused unless --overwrite
    code, _, err = cli(capsys, "anomaly", "fit", t / "train.csv", "--out", t / "det", *FAST)
    assert code == 2 and "already holds a detector" in err


@pytest.mark.parametrize("change, message", [
    (lambda d: d.assign(shop=["east"] + ["north"] * (len(d) - 1)), r"column 'shop' has 1 value\(s\) of unseen"),
    (lambda d: d.drop(columns="b"), r"missing column\(s\) \['b'\]"),
    (lambda d: d.assign(a=[None] + [1.0] * (len(d) - 1)), r"column 'a' has 1 missing value"),
])
def test_bad_tables_exit_2_with_one_line(capsys, tables, change, message):
    import re

    t = tables
    assert cli(capsys, "anomaly", "fit", t / "train.csv", "--out", t / "det", "--ignore", "id", "--unknown", "error",
               *FAST)[0] == 0
    change(pd.read_csv(t / "new.csv")).to_csv(t / "bad.csv", index=False)
    code, _, err = cli(capsys, "anomaly", "score", t / "det", t / "bad.csv", "--out", t / "s.csv")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and re.search(message, lines[0]), err
    assert not (t / "s.csv").exists()


@pytest.mark.slow
def test_entry_point_help_and_missing_file():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for sub in ("fit", "score"):
        p = subprocess.run([sys.executable, "-m", "vaekit.cli", "anomaly", sub, "--help"], capture_output=True,
                           text=True, env=env, timeout=120)
        assert p.returncode == 0 and "Usage" in p.stdout
    p = subprocess.run([sys.executable, "-m", "vaekit.cli", "anomaly", "fit", "nope.csv", "--out", "x"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stderr.strip() == "error: nope.csv: file not found"


def test_device_and_threads_options_fit_and_score(capsys, tables):
    import json

    t = tables
    code, _, err = cli(capsys, "anomaly", "fit", t / "train.csv", "--out", t / "det", "--ignore", "id", *FAST,
                       "--device", "cpu", "--threads", "1")
    assert code == 0, err
    params = json.loads((t / "det" / "detector.json").read_text())["params"]
    assert "device" not in params and "n_threads" not in params  # the machine's business, not the model's
    code, out, err = cli(capsys, "anomaly", "score", t / "det", t / "new.csv", "--out", t / "s.csv",
                         "--device", "auto", "--threads", "2")
    assert code == 0 and "scored 40 rows" in out, err
    code, _, err = cli(capsys, "anomaly", "score", t / "det", t / "new.csv", "--out", t / "s2.csv", "--device", "tpu")
    assert code == 2 and "device 'tpu'" in err and err.count("\n") == 1 and not (t / "s2.csv").exists()


def test_cli_settings_file_is_sealed(tmp_path, capsys):
    """cli.json (columns to ignore) is covered by detector.json's checksum: editing it is refused."""
    import json as _json

    import numpy as _np
    import pandas as _pd

    from tests.helpers import run_cli

    rng = _np.random.default_rng(0)
    _pd.DataFrame({"id": range(60), "a": rng.normal(size=60), "b": rng.normal(size=60)}).to_csv(tmp_path / "t.csv",
                                                                                              index=False)
    code, _, err = run_cli(capsys, "anomaly", "fit", tmp_path / "t.csv", "--out", tmp_path / "det", "--ignore", "id",
                           "--n-models", "1", "--max-steps", "20")
    assert code == 0, err
    (tmp_path / "det" / "cli.json").write_text(_json.dumps({"ignore": []}))
    code, _, err = run_cli(capsys, "anomaly", "score", tmp_path / "det", tmp_path / "t.csv", "--out",
                           tmp_path / "s.csv", "--no-plot")
    assert code == 2 and "cli.json" in err and len(err.strip().splitlines()) == 1, err
