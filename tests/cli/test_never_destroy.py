"""Nothing the user has is overwritten or lost without --overwrite (issue 11.3): fitting or training into a folder
that holds another vaekit artifact or the user's own files, and side outputs (OUT.gif, OUT.png) that already exist,
are refused with one line (exit 2) and leave every file byte-identical; outputs follow the umask; a killed write's
stale temp file is removed by the next write of the same target."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_cli
from vaekit.files import atomic_write_text, check_output_folder, is_temp_name

TRAIN = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--no-progress", "--batch-size", "20"]
ANOMALY = ["--max-steps", "20", "--n-models", "1", "--k", "2", "--hidden", "8", "--latent-dim", "2"]
GENERATE = ["--max-steps", "20", "--epochs", "1", "--hidden", "8", "--latent-dim", "2"]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _refused(res: tuple[int, str, str], *words: str) -> str:
    code, _, err = res
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), err
    return lines[0]


def _ok(res: tuple[int, str, str]) -> str:
    code, out, err = res
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """t.csv (40 rows), x.npz (40 binary 4×4 'images'), and one of each artifact: a train run, a detector, a
    generator (copied by each test before it is touched)."""
    t = tmp_path_factory.mktemp("made")
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.normal(size=40), "c": rng.choice(["x", "y"], 40)}).to_csv(
        t / "t.csv", index=False)
    x = (rng.random((40, 16)) < 0.3).astype(np.float32)
    np.savez(t / "x.npz", train=x, test=x[:10])
    return t


@pytest.fixture(scope="module")
def artifacts(made: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vaekit.cli.main import main

    t = tmp_path_factory.mktemp("artifacts")
    for args in (["train", "--data", made / "x.npz", "--out", t / "run", *TRAIN],
                 ["anomaly", "fit", made / "t.csv", "--out", t / "det", *ANOMALY],
                 ["generate", "fit", made / "t.csv", "--out", t / "gen", *GENERATE]):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            assert not e.code, args
    return {"run": t / "run", "det": t / "det", "gen": t / "gen"}


@pytest.fixture
def work(artifacts: dict[str, Path], made: Path, tmp_path: Path) -> Path:
    for name, src in artifacts.items():
        shutil.copytree(src, tmp_path / name)
    for f in ("t.csv", "x.npz"):
        shutil.copy(made / f, tmp_path / f)
    return tmp_path


def test_generate_fit_into_a_train_run_is_refused(work: Path, capsys) -> None:
    before = _snapshot(work / "run")
    _refused(run_cli(capsys, "generate", "fit", work / "t.csv", "--out", work / "run", *GENERATE),
             "already holds a training run", "--overwrite")
    assert _snapshot(work / "run") == before
    _ok(run_cli(capsys, "generate", "fit", work / "t.csv", "--out", work / "run", *GENERATE, "--overwrite"))
    assert (work / "run" / "generator.json").is_file()
    assert not (work / "run" / "run.json").exists()  # the replaced run's markers are gone: no tool reads a mix
    _refused(run_cli(capsys, "train", "--data", work / "x.npz", "--out", work / "run", *TRAIN, "--resume"),
             "a generator")


def test_anomaly_and_generate_do_not_share_a_folder(work: Path, capsys) -> None:
    for kind, folder, other in (("anomaly", "gen", "a generator"), ("generate", "det", "a detector")):
        before = _snapshot(work / folder)
        extra = ANOMALY if kind == "anomaly" else GENERATE
        _refused(run_cli(capsys, kind, "fit", work / "t.csv", "--out", work / folder, *extra), other)
        assert _snapshot(work / folder) == before, kind
    # the same kind again also needs --overwrite (messages unchanged for scripts)
    _refused(run_cli(capsys, "anomaly", "fit", work / "t.csv", "--out", work / "det", *ANOMALY),
             "already holds a detector")
    _refused(run_cli(capsys, "generate", "fit", work / "t.csv", "--out", work / "gen", *GENERATE),
             "already holds a generator")
    _refused(run_cli(capsys, "codec", "train", work / "x.npz", "--out", work / "det", "--no-progress"),
             "a detector", "--overwrite")
    _ok(run_cli(capsys, "anomaly", "fit", work / "t.csv", "--out", work / "gen", *ANOMALY, "--overwrite"))
    assert not (work / "gen" / "generator.json").exists()
    _refused(run_cli(capsys, "generate", "sample", work / "gen", "--out", work / "s.csv"), "no tabular generator")


def test_train_keeps_the_users_own_files(work: Path, capsys) -> None:
    d = work / "mine"
    d.mkdir()
    (d / "metrics.csv").write_text("my,own\n1,2\n")
    (d / "run.json").write_text('{"my": "notes"}')
    before = _snapshot(d)
    line = _refused(run_cli(capsys, "train", "--data", work / "x.npz", "--out", d, *TRAIN),
                    "files vaekit did not write", "metrics.csv", "run.json")
    _refused(run_cli(capsys, "train", "--data", work / "x.npz", "--out", d, *TRAIN, "--resume"),
             "not a valid vaekit run file")  # --resume reads run.json (and refuses it) before anything is written
    assert _snapshot(d) == before and "--resume" not in line
    # a training run: refused again (message keeps its words), --resume continues it, --overwrite starts anew
    _refused(run_cli(capsys, "train", "--data", work / "x.npz", "--out", work / "run", *TRAIN),
             "already holds a training run", "--resume")
    _ok(run_cli(capsys, "train", "--data", work / "x.npz", "--out", work / "run", *TRAIN, "--resume"))
    _ok(run_cli(capsys, "train", "--data", work / "x.npz", "--out", d, *TRAIN, "--overwrite"))
    assert (d / "checkpoint.safetensors").is_file() and (d / "model" / "config.json").is_file()
    # a missing or empty folder needs nothing; a file is not a folder
    (work / "empty").mkdir()
    assert check_output_folder(work / "empty", "train") == [] and check_output_folder(work / "nope", "codec") == []
    _refused(run_cli(capsys, "generate", "fit", work / "t.csv", "--out", work / "t.csv", *GENERATE), "is a file")


def test_side_outputs_are_not_replaced_without_overwrite(work: Path, capsys) -> None:
    (work / "p.gif").write_bytes(b"my animation")
    args = ["latent", "interpolate", work / "run", "--data", work / "x.npz", "--steps", 3, "-o", work / "p.png"]
    _refused(run_cli(capsys, *args), "p.gif", "--overwrite")
    assert (work / "p.gif").read_bytes() == b"my animation" and not (work / "p.png").exists()
    _ok(run_cli(capsys, *args, "--overwrite"))
    assert (work / "p.gif").read_bytes()[:3] == b"GIF"
    (work / "s.png").write_bytes(b"my picture")
    score = ["anomaly", "score", work / "det", work / "t.csv", "--out", work / "s.csv"]
    _refused(run_cli(capsys, *score), "s.png", "--no-plot")
    assert (work / "s.png").read_bytes() == b"my picture" and not (work / "s.csv").exists()
    _ok(run_cli(capsys, *score, "--no-plot"))
    assert (work / "s.png").read_bytes() == b"my picture"
    _ok(run_cli(capsys, *score, "--plot", work / "h.png"))  # an explicit --plot is an output like --out
    _ok(run_cli(capsys, *score, "--overwrite"))
    assert (work / "s.png").read_bytes()[:4] == b"\x89PNG"
    for cmd in (["latent", "interpolate"], ["anomaly", "score"]):
        help_text = " ".join(run_cli(capsys, *cmd, "--help")[1].split())
        assert ("OUT.gif" if cmd[0] == "latent" else "OUT.png") in help_text


def test_outputs_follow_the_umask_and_stale_temps_are_removed(work: Path, capsys) -> None:
    old = os.umask(0o022)
    try:
        stale, fresh = work / ".s.csv.abcd1234.tmp", work / ".s.csv.efgh5678.tmp"
        stale_png = work / ".s.png.ijkl9012.tmp.png"
        for p in (stale, fresh, stale_png):
            p.write_bytes(b"half")
        hours_ago = time.time() - 7200
        os.utime(stale, (hours_ago, hours_ago))
        os.utime(stale_png, (hours_ago, hours_ago))
        _ok(run_cli(capsys, "anomaly", "score", work / "det", work / "t.csv", "--out", work / "s.csv"))
        _ok(run_cli(capsys, "train", "--data", work / "x.npz", "--out", work / "r2", *TRAIN))
        _ok(run_cli(capsys, "generate", "sample", work / "gen", "-n", 5, "--out", work / "g.parquet"))
        assert not stale.exists() and not stale_png.exists() and fresh.exists()
        assert is_temp_name(fresh.name) and not is_temp_name("s.csv") and not is_temp_name(".s.csv")
        files = [work / "s.csv", work / "s.png", work / "g.parquet", *(p for p in (work / "r2").rglob("*")
                                                                        if p.is_file())]
        assert len(files) > 5
        for p in files:
            assert p.stat().st_mode & 0o777 == 0o644, p
        os.umask(0o077)
        atomic_write_text(work / "private.txt", "x")
        assert (work / "private.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    assert not [p for p in work.rglob(".*.tmp*") if p != fresh]
