import json

from vaekit.cli.demo import run_demo


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
    assert (tmp_path / "rep" / "tabular_generation.png").stat().st_size > 0 and "tabular_generation.png" in html
    p = metrics["inpainting"]  # the imputation section: inpainting beats filling the hidden block with pixel means
    assert (tmp_path / "rep" / "inpainting.png").stat().st_size > 0 and "inpainting.png" in html
    assert p["mse_masked_vae"] < p["mse_masked_mean_fill"] and p["mean_effective_sample_size"] >= 1
    import pandas as pd

    rows = pd.read_csv(tmp_path / "rep" / "synthetic_wine.csv")
    assert len(rows) == 500 and set(rows["cultivar"]) <= {"class_0", "class_1", "class_2"}
    c = metrics["compression"]  # the compression section: exact, and near the model's −ELBO
    assert c["round_trip_exact"] is True and "compression_pair.png" in html
    assert 0.9 * c["neg_elbo_bits_per_dim"] < c["bits_per_dim_net"] < 1.2 * c["neg_elbo_bits_per_dim"]
    assert c["bits_per_dim_net"] < 8 * c["bz2_bytes"] / (64 * c["items"])
