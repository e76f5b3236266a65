"""Train-on-synthetic / test-on-real over several seeds: the per-seed results of ``generation_tabular.py --seed S``
summarised as mean ± s.d. over seeds, with a paired comparison against CTGAN's TVAE and a tie margin.

    python benchmarks/generation_tabular_seeds.py RUN_DIR [RUN_DIR …]   # each holds one seed's tabular.json
    → benchmarks/results/generation/tabular_seeds.{json,md} (+ the per-seed files copied to seeds/)

Per table, generator g against TVAE: d_s = score_g − score_TVAE on seed s (same split, same classifier); mean d̄ and
its standard error se = sd(d)/√n. Verdict: "better" if d̄ > m, "worse" if d̄ < −m, else "tie", with the margin
m = max(0.005, 2·se): differences inside two standard errors of the seed-to-seed spread are not called.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provenance import provenance  # noqa: E402


def verdict(diffs: list[float]) -> tuple[float, float, float, str]:
    """(mean difference, its standard error, the margin, better | tie | worse)."""
    d = np.asarray(diffs, dtype=float)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    m = max(0.005, 2 * se) if len(d) > 1 else 0.005
    mean = float(d.mean())
    return mean, se, m, "better" if mean > m else "worse" if mean < -m else "tie"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seeds = [r["config"]["seed"] for r in runs]
    gens = ["real", *runs[0]["config"]["generators"]]
    tables: dict[str, Any] = {}
    for name in runs[0]["results"]:
        per = [r["results"][name] for r in runs if name in r["results"]]
        if len(per) != len(runs):
            continue
        row: dict[str, Any] = {"metric": per[0]["metric"], "seeds": seeds}
        for g in gens:
            s = [p[g]["efficacy"]["score"] for p in per]
            w = [p[g]["distance"]["wasserstein_mean"] for p in per]
            tv = [p[g]["distance"].get("tv_target") for p in per]
            row[g] = {"score_mean": float(np.mean(s)), "score_sd": float(np.std(s, ddof=1)), "scores": s,
                      "w1_mean": float(np.mean(w)),
                      "tv_target_mean": None if tv[0] is None else float(np.mean(tv))}
        for g in gens:
            if g in ("real", "tvae") or "tvae" not in gens:
                continue
            mean, se, m, v = verdict([p[g]["efficacy"]["score"] - p["tvae"]["efficacy"]["score"] for p in per])
            row[g]["vs_tvae"] = {"mean_diff": mean, "se": se, "margin": m, "verdict": v}
        tables[name] = row
    tally = {g: {v: sum(t[g]["vs_tvae"]["verdict"] == v for t in tables.values()) for v in ("better", "tie", "worse")}
             for g in gens if g not in ("real", "tvae") and "tvae" in gens}
    return {"seeds": seeds, "generators": gens, "tables": tables, "vs_tvae": tally,
            "rule": "paired per seed; verdict better/worse only beyond max(0.005, 2·standard error)"}


def markdown(doc: dict[str, Any]) -> str:
    gens = doc["generators"]
    lines = ["# Tabular generation over seeds: vaekit vs CTGAN's TVAE", "",
             f"Train on synthetic, test on real (generation_tabular.py protocol), seeds {doc['seeds']}: mean ± s.d. "
             "over seeds of the efficacy score (macro-F1; R² for concrete). Against TVAE: the paired difference "
             "per seed, mean ± standard error, and the verdict with the margin max(0.005, 2·s.e.).", "",
             "| table | metric | " + " | ".join(gens) + " |", "|---|---|" + "---|" * len(gens)]
    for name, t in doc["tables"].items():
        lines.append(f"| {name} | {t['metric']} | " + " | ".join(
            f"{t[g]['score_mean']:.3f} ± {t[g]['score_sd']:.3f}" for g in gens) + " |")
    others = [g for g in gens if g not in ("real", "tvae")]
    if "tvae" in gens:
        lines += ["", "| table | " + " | ".join(f"{g} − TVAE (verdict)" for g in others) + " | TV of the target: "
                  + " / ".join(others + ["tvae"]) + " |", "|---|" + "---|" * (len(others) + 1)]
        for name, t in doc["tables"].items():
            cells = [f"{t[g]['vs_tvae']['mean_diff']:+.3f} ± {t[g]['vs_tvae']['se']:.3f} ({t[g]['vs_tvae']['verdict']})"
                     for g in others]
            tvs = " / ".join("–" if t[g]["tv_target_mean"] is None else f"{t[g]['tv_target_mean']:.3f}"
                             for g in others + ["tvae"])
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {tvs} |")
        lines.append("")
        for g, v in doc["vs_tvae"].items():
            lines.append(f"- {g}: better on {v['better']}, tie on {v['tie']}, worse on {v['worse']} of "
                         f"{len(doc['tables'])} tables (≥ TVAE on {v['better'] + v['tie']}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="folders, each with one seed's tabular.json")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "generation")
    args = ap.parse_args(argv)
    runs = [json.loads((d / "tabular.json").read_text()) for d in args.runs]
    doc = summarise(runs)
    doc.update(provenance(sys.argv, 1))
    (args.out / "seeds").mkdir(parents=True, exist_ok=True)
    for d, r in zip(args.runs, runs):
        target = args.out / "seeds" / f"tabular_seed{r['config']['seed']}.json"
        if (d / "tabular.json").resolve() != target.resolve():
            shutil.copyfile(d / "tabular.json", target)
    (args.out / "tabular_seeds.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "tabular_seeds.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
