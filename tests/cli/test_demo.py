import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_cli
from vaekit.cli.demo import run_demo
from vaekit.errors import VaekitError
from vaekit.report import check_report_folder, is_report_folder

JOBS = ("generate", "compress", "detect", "impute", "explore")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_demo(tmp_path_factory.mktemp("demo") / "rep", epochs=3, progress=False)


def test_demo_writes_a_complete_report(report):
    rep = report.parent
    html = report.read_text()
    for f in ("samples.png", "reconstructions.png", "loss_curve.png", "metrics.json", "interpolation.gif",
              "latent_map.png", "traversals.png"):
        assert (rep / f).stat().st_size > 0
        assert f in html
    metrics = json.loads((rep / "metrics.json").read_text())
    m = metrics["model"]
    assert m["nll"] > 0 and m["nll"] <= -m["elbo"] + 1e-3
    for f in ("anomaly_scores.png", "anomaly_top.png"):  # the anomaly section
        assert (rep / f).stat().st_size > 0 and f in html
    assert 0.5 < metrics["anomaly"]["roc_auc"] <= 1.0
    assert (rep / "tabular_generation.png").stat().st_size > 0 and "tabular_generation.png" in html
    p = metrics["inpainting"]  # the imputation section: inpainting beats filling the hidden block with pixel means
    assert (rep / "inpainting.png").stat().st_size > 0 and "inpainting.png" in html
    assert p["mse_masked_vae"] < p["mse_masked_mean_fill"] and p["mean_effective_sample_size"] >= 1
    import pandas as pd

    rows = pd.read_csv(rep / "synthetic_wine.csv")
    assert len(rows) == 500 and set(rows["cultivar"]) <= {"class_0", "class_1", "class_2"}
    c = metrics["compression"]  # the compression section: exact, and near the model's −ELBO
    assert c["round_trip_exact"] is True and "compression_pair.png" in html
    assert 0.9 * c["neg_elbo_bits_per_dim"] < c["bits_per_dim_net"] < 1.2 * c["neg_elbo_bits_per_dim"]
    assert c["bits_per_dim_net"] < 8 * c["bz2_bytes"] / (64 * c["items"])


def test_summary_cards_show_this_runs_numbers_and_commands(report):
    import numpy as np

    rep, html = report.parent, report.read_text()
    metrics = json.loads((rep / "metrics.json").read_text())
    assert html.index("id='summary'") < html.index("<h2>Model</h2>")  # the cards come first
    for job in JOBS:
        assert f"id='card-{job}'" in html, job
    a, c, m = metrics["anomaly"], metrics["compression"], metrics["model"]
    assert f"anomalies found: AUC {a['roc_auc']:.3f} on noise-corrupted digits" in html
    assert f"compressed to {c['bits_per_dim_file']:.2f} bits/pixel" in html and "than bz2, exact" in html
    assert f"an unseen digit costs {m['nll']:.1f} nats" in html
    assert "What this means:" in html and html.count("class='meaning'") >= 6
    assert "roc_auc" not in html and "bits_per_dim_net" not in html  # plain words in the page
    # the commands name files the demo wrote beside the report
    for f in ("digits.npz", "digits_binary.npz", "digit.png", "mask.png", "run/model/config.json"):
        assert (rep / f).is_file(), f
    assert f"vaekit eval {rep / 'run'} --data {rep / 'digits.npz'}" in html
    with np.load(rep / "digits_binary.npz") as z:
        assert z["x_test"].shape == (c["items"], 64) and set(np.unique(z["x_test"])) <= {0, 1}
    # pictures are upscaled (8×8 digits at ≥ 5 screen pixels per pixel)
    from PIL import Image

    assert Image.open(rep / "samples.png").size[0] >= 8 * 9 * 5


def test_demo_never_writes_into_a_folder_it_did_not_make(tmp_path, capsys, report):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "demo", "--out", mine, "--epochs", "1", "--no-progress")
    assert code == 2 and "notes.txt" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    check_report_folder(mine, overwrite=True)  # --overwrite lets it through
    check_report_folder(tmp_path / "new")  # missing, empty, an earlier report: fine
    (tmp_path / "empty").mkdir()
    check_report_folder(tmp_path / "empty")
    assert is_report_folder(report.parent)
    check_report_folder(report.parent)
    (tmp_path / "file").write_text("x")
    with pytest.raises(VaekitError, match="is a file"):
        check_report_folder(tmp_path / "file")


def test_report_renders_in_chromium(report):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    artifacts = Path(os.environ.get("VAEKIT_TEST_ARTIFACTS") or report.parent.parent)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "demo-report.png"
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("requestfailed", lambda req: problems.append(f"failed: {req.url}"))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.complete, "
                                                   "e.naturalWidth])")
        cards = page.eval_on_selector_all(".card", "els => els.map(e => e.getBoundingClientRect().bottom)")
        page.screenshot(path=str(shot))
        browser.close()
    print(f"demo report screenshot: {shot}")
    assert problems == []
    assert len(images) >= 15 and all(ok and w > 0 for _, ok, w in images), [s for s, ok, w in images if not w]
    assert len(cards) == len(JOBS) and max(cards) <= 800  # the summary fits on one 1280×800 screen
    assert shot.stat().st_size > 10_000
