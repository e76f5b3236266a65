import json

from vaekit.demo import run_demo


def test_demo_writes_a_complete_report(tmp_path):
    index = run_demo(tmp_path / "rep", epochs=3, progress=False)
    html = index.read_text()
    for f in ("samples.png", "reconstructions.png", "loss_curve.png", "metrics.json", "interpolation.gif",
              "latent_map.png", "traversals.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0
        assert f in html
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    m = metrics["model"]
    assert m["nll"] > 0 and m["nll"] <= -m["elbo"] + 1e-3
    for f in ("anomaly_scores.png", "anomaly_top.png"):  # the anomaly section
        assert (tmp_path / "rep" / f).stat().st_size > 0 and f in html
    assert 0.5 < metrics["anomaly"]["roc_auc"] <= 1.0
