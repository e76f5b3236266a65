"""The GPU rows, in one prepared run on a machine with a CUDA GPU, within a fixed wall-clock budget.

In order (each part in its own process with its own time limit, results written as soon as they exist, so a cut-off
run still returns what it finished):
  1. the GPU tests (``-m gpu``: training, evaluation, estimators and every zoo model on CUDA; the golden bits-back
     files decoded on this machine's CPU and re-encoded on its GPU);
  2. cross-device bits-back: files written on another machine (``benchmarks/cross_device.py prepare``) decoded and
     re-encoded on this CPU and this GPU, byte for byte;
  3. training throughput on the GPU (``benchmarks/throughput.py --device cuda``);
  4. the model zoo on the GPU (``benchmarks/zoo.py --device cuda``), the time left split evenly over the models,
     each scored with k = 5000 on as many test images as ``--eval-seconds`` allow.

    python benchmarks/gpu_rows.py --out $OUT --data .devdata/binarized_mnist.npz --cross .devdata/cross --seconds 540

Preparing it here (the device machine gets the working tree only, not ../shared, and has no constriction):
    mkdir -p .git/info && printf '/.devdata/\n/.whl/\n' >> .git/info/exclude
    mkdir -p .devdata && cp ../shared/data/binarized_mnist.npz .devdata/
    python benchmarks/cross_device.py prepare --dir .devdata/cross --n 10000
    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d .whl constriction==0.5.0
and on the device (carry .devdata and .whl; 530 s of the 15-minute lease, one call):
    python3 -m pip install -q --no-index --no-deps .whl/*.whl; export VAEKIT_COMMIT=<commit>;
    python3 benchmarks/gpu_rows.py --out $OUT --seconds 530 --eval-seconds 12
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ZOO_ORDER = ["vae", "hvae_vampprior", "vampprior", "hvae", "mog", "iaf", "resnet", "resnet_hvae_vampprior"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(ROOT / ".devdata" / "binarized_mnist.npz"))
    ap.add_argument("--cross", default=str(ROOT / ".devdata" / "cross"))
    ap.add_argument("--seconds", type=float, default=540.0, help="wall-clock budget of the whole run")
    ap.add_argument("--eval-seconds", type=float, default=12.0)
    ap.add_argument("--models", nargs="*", default=ZOO_ORDER)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the plumbing on a machine without a GPU")
    ap.add_argument("--skip", nargs="*", default=[], choices=("tests", "cross", "throughput", "zoo"))
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.txt", "a", buffering=1)
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}

    def left() -> float:
        return args.seconds - (time.monotonic() - t0)

    def step(name: str, cmd: list[str], limit: float, to: Path | None = None) -> int:
        limit = max(5.0, min(limit, left() - 5))
        log.write(f"\n== {name} ({limit:.0f} s at most; {time.monotonic() - t0:.0f} s in): {' '.join(cmd)}\n")
        sink = open(to, "a", buffering=1) if to else log
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=limit)
            rc = r.returncode
        except subprocess.TimeoutExpired:
            rc = 124
        log.write(f"== {name}: rc {rc}, {time.monotonic() - t0:.0f} s in\n")
        return rc

    py = sys.executable
    step("environment", [py, "-c", "import torch, platform; print(platform.python_version(), torch.__version__, "
                         "torch.version.cuda, torch.cuda.get_device_name(0), torch.get_num_threads())"], 60)
    if "tests" not in args.skip:
        pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
        step("gpu tests", [*pytest, "-m", "gpu", "tests/base/test_runtime.py", "tests/core/test_zoo.py",
                           "tests/jobs/test_estimator_defaults.py", "tests/jobs/compress/test_golden.py"], 120,
             out / "pytest.txt")
        step("golden files on this CPU", [*pytest, "tests/jobs/compress/test_golden.py"], 90, out / "pytest.txt")
    if "cross" not in args.skip:
        step("cross-device bits-back", [py, str(HERE / "cross_device.py"), "check", "--dir", args.cross,
                                        "--devices", *dict.fromkeys(["cpu", args.device]), "--out", str(out / "cross_device.json")], 120)
    if "throughput" not in args.skip:
        step("training throughput", [py, str(HERE / "throughput.py"), "--device", args.device, "--rounds", "3",
                                     "--threads", "4", "--data", args.data, "--out", str(out / "throughput")], 150)
    if "zoo" not in args.skip:
        models = list(args.models)
        for i, name in enumerate(models):
            per_model = left() / (len(models) - i)
            minutes = max(0.1, (per_model - args.eval_seconds - 30) / 60)  # 30 s: start-up, data, the last chunk
            step(f"zoo {name}", [py, str(HERE / "zoo.py"), "--models", name, "--device", args.device, "--threads", "4",
                                 "--minutes", f"{minutes:.3f}", "--data", args.data, "--eval-seconds",
                                 str(args.eval_seconds), "--eval-compile", "off", "--out", "/tmp/zoo_gpu",
                                 "--runs", "/tmp/zoo_gpu/runs", "--table", str(out / "zoo.json")], per_model + 30)
    log.write(json.dumps({"total_s": time.monotonic() - t0}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
