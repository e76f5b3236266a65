"""Load test of ``vaekit serve`` on loopback, next to a bare FastAPI app doing the same forward passes.

    python benchmarks/serve_load.py      # → benchmarks/results/deploy/serve_load.json (≈ 1–2 min on 2 cores)

Three uvicorn servers (subprocesses, one worker, one PyTorch thread each) serve the same VAE (the binarized-MNIST
model of runs/bench/cli_recipe when it is there, else an untrained one of the same shape, 784-300-300-40, Bernoulli):
``vaekit serve`` with micro-batching (the default), ``vaekit serve --no-batching``, and a bare FastAPI app
(``--bare-server``: json → tensor → the same model call → json; no validation, no batching, no limits, no logs).
The client (this process, asyncio + httpx, 16 connections) sends each server the same 2,000 requests, a fixed mix of
encode / decode / sample / reconstruct with 1–4 rows each, in rounds that alternate between the servers (the machine
is shared; alternating spreads the drift), after 64 warm-up requests. Per server: p50/p99 latency, throughput,
errors (non-200), RSS after warm-up and at the end. The batched and unbatched vaekit answers must agree to 1e-6
relative (a row's position in its fixed block can move the last float bit; often they are byte-identical);
the bare app's differ in the last float bits (another row count per matrix product), the max difference is recorded.
Last, graceful shutdown: 16 requests in flight, then SIGTERM; every one must still be answered.

``--scenario detector`` (→ serve_load_detector.json) serves a default ``VAEAnomalyDetector`` fitted here on a synthetic
table (5,000 rows: 16 numeric columns, 2 categorical) and sends 1–4-row ``/score`` requests: the forward-heavy case
(k importance samples × ensemble members per row) where sharing a pass should pay. The bare app answers with the public
API, ``det.decision_function(frame)``, one call per request (no fixed blocks, no top columns: vaekit is asked for
``top: 0``, and computes its column shares anyway).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
RUN_MODEL = ROOT / "runs" / "bench" / "cli_recipe"
KINDS = ("encode", "decode", "sample", "reconstruct")
NAME = {"vae": "mnist", "detector": "fraud"}  # the served artifact's name per scenario


# --- the bare comparison server ---------------------------------------------------------------------------------
def bare_app(model_dir: str) -> Any:
    """FastAPI, the same model calls as vaekit serve's endpoints, nothing else."""
    import torch
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from vaekit.core.workflows import load

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    if (Path(model_dir) / "detector.json").is_file():
        import pandas as pd

        from vaekit.jobs.anomaly.detector import VAEAnomalyDetector

        det = VAEAnomalyDetector.load(model_dir)

        async def score(name: str, op: str, request: Request) -> Any:
            body = await request.json()
            scores = det.decision_function(pd.DataFrame(body["rows"], columns=det.columns_))
            return JSONResponse({"scores": scores.tolist(), "labels": (scores > det.threshold_).astype(int).tolist(),
                                 "threshold": float(det.threshold_)})

        score.__annotations__["request"] = Request
        app.post("/models/{name}/{op}")(score)
        return app
    model, _ = load(model_dir)
    model.eval()
    lik = model.likelihood

    async def run(name: str, op: str, request: Request) -> Any:
        body = await request.json()
        with torch.inference_mode():
            if op == "encode":
                mu, logvar = model.encode(torch.tensor(body["x"], dtype=torch.float32))
                return JSONResponse({"mu": mu.tolist(), "logvar": logvar.tolist()})
            if op == "decode":
                mean = lik.mean(model.decode(torch.tensor(body["z"], dtype=torch.float32)))
            elif op == "sample":
                z = model.prior.sample(body["n"], torch.Generator().manual_seed(body["seed"]), body["temperature"])
                mean = lik.mean(model.decode(z))
            else:
                mean = model.reconstruct(torch.tensor(body["x"], dtype=torch.float32))
        return JSONResponse({"x": lik.to_output(mean).tolist()})

    run.__annotations__["request"] = Request  # a class, not the string "Request" (this module's future annotations)
    app.post("/models/{name}/{op}")(run)
    return app


# --- servers ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(name: str, model_dir: Path, logs: Path, served: str) -> tuple[subprocess.Popen[bytes], int]:
    """A server subprocess on a free loopback port; its stderr (vaekit's JSON access log) goes to a file."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    py = sys.executable
    if name == "bare":
        cmd = [py, str(Path(__file__).resolve()), "--bare-server", str(model_dir), "--port", str(port)]
    else:
        cmd = [py, "-m", "vaekit", "serve", f"{served}={model_dir}", "--port", str(port), "--threads", "1"]
        cmd += ["--no-batching"] if name == "vaekit_no_batching" else []
    with open(logs / f"{name}.log", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    return proc, port


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    t0 = time.monotonic()
    async with httpx.AsyncClient() as c:
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode} (see its log)")
            try:
                if (await c.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not start")


# --- the load ---------------------------------------------------------------------------------------------------
def requests(n: int, d_in: int, d_lat: int, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """The fixed mix: kinds in turn, 1–4 rows each, random binary images / latent codes, seeded samples."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind, rows = KINDS[i % 4], 1 + int(rng.integers(0, 4))
        if kind in ("encode", "reconstruct"):
            body: dict[str, Any] = {"x": (rng.random((rows, d_in)) < 0.2).astype(int).tolist()}
        elif kind == "decode":
            body = {"z": np.round(rng.normal(size=(rows, d_lat)), 4).tolist()}
        else:
            body = {"n": rows, "seed": i, "temperature": 1.0}
        out.append((kind, body))
    return out


def table(n: int, seed: int) -> Any:
    """The detector scenario's synthetic table: 16 correlated numeric columns and 2 categorical ones."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    num = z @ rng.normal(size=(4, 16)) + 0.3 * rng.normal(size=(n, 16))
    df = pd.DataFrame(np.round(num, 4), columns=[f"x{j}" for j in range(16)])
    df["shop"] = np.where(z[:, 0] > 0, "web", "store")
    df["kind"] = rng.choice(["a", "b", "c"], n)
    return df


def score_requests(n: int, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """1–4 rows each, drawn from the detector's table distribution (a few rows shifted: anomalies)."""
    rng = np.random.default_rng(seed + 100)
    rows = table(4 * n, seed + 7)
    rows.iloc[::50, :16] += 6.0
    out, at = [], 0
    for _ in range(n):
        k = 1 + int(rng.integers(0, 4))
        out.append(("score", {"rows": json.loads(rows.iloc[at:at + k].to_json(orient="records")), "top": 0}))
        at += k
    return out


async def load(port: int, reqs: list[tuple[int, str, dict[str, Any]]], concurrency: int, served: str = "mnist"
               ) -> tuple[list[float], dict[int, bytes], int, float]:
    """Send ``reqs`` with ``concurrency`` connections → (latencies s, bodies by index, errors, wall seconds)."""
    import httpx

    lat: list[float] = []
    bodies: dict[int, bytes] = {}
    errors = 0
    it = iter(reqs)

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal errors
        for idx, kind, body in it:
            t = time.perf_counter()
            try:
                r = await c.post(f"/models/{served}/{kind}", content=json.dumps(body),
                                 headers={"content-type": "application/json"})
                ok = r.status_code == 200
                bodies[idx] = r.content
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return lat, bodies, errors, wall


async def drain_check(port: int, proc: subprocess.Popen[bytes], scenario: str) -> dict[str, Any]:
    """16 slow requests (256 rows each: reconstruct, or score) in flight, then SIGTERM once the server has started on
    them: are they all answered (uvicorn finishes the requests in flight, the batcher drains its lanes)?"""
    import httpx

    if scenario == "vae":
        path, body = "/models/mnist/reconstruct", {"x": (np.random.default_rng(5).random((256, 784)) < 0.2
                                                         ).astype(int).tolist()}
    else:
        path, body = "/models/fraud/score", {"rows": json.loads(table(256, 5).to_json(orient="records")), "top": 0}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
        tasks = [asyncio.ensure_future(c.post(path, json=body)) for _ in range(16)]
        c0 = cpu_seconds(proc.pid)
        while cpu_seconds(proc.pid) - c0 < 0.3:  # the server is busy with them
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        done = await asyncio.gather(*tasks, return_exceptions=True)
    code = proc.wait(timeout=120)
    ok = sum(1 for r in done if not isinstance(r, BaseException) and r.status_code == 200)
    return {"in_flight": len(tasks), "answered_200": ok, "exit_code": code,
            "note": "uvicorn re-raises SIGTERM after its graceful shutdown, hence exit code -15"}


def summary(lat: list[float], errors: int, wall: float, rss: tuple[float, float]) -> dict[str, Any]:
    ms = sorted(1000 * v for v in lat)
    return {"requests": len(ms), "errors": errors, "throughput_rps": round(len(ms) / wall, 1),
            "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
            "mean_ms": round(statistics.fmean(ms), 2), "seconds": round(wall, 2),
            "rss_mb_after_warmup": round(rss[0], 1), "rss_mb_end": round(rss[1], 1),
            "rss_growth_mb": round(rss[1] - rss[0], 1)}


def model_dir(tmp: Path, scenario: str = "vae") -> tuple[Path, str]:
    if scenario == "detector":
        from vaekit.jobs.anomaly.detector import VAEAnomalyDetector

        t = time.perf_counter()
        VAEAnomalyDetector(random_state=0, n_threads=1).fit(table(5000, 0)).save(tmp / "detector")
        return tmp / "detector", (f"VAEAnomalyDetector() defaults, fitted here in {time.perf_counter() - t:.1f} s on "
                                  "a synthetic 5,000 × 18 table (16 numeric, 2 categorical columns)")
    if (RUN_MODEL / "model" / "config.json").is_file():
        return RUN_MODEL, "runs/bench/cli_recipe (binarized MNIST, 784-300-300-40, Bernoulli, trained)"
    import torch

    from vaekit.core.checkpoint import save_model
    from vaekit.core.config import ModelConfig
    from vaekit.core.model import VAE

    torch.manual_seed(0)
    save_model(VAE(ModelConfig(input_shape=(1, 28, 28), latent_dim=40, hidden=(300, 300))), tmp / "model")
    return tmp / "model", "untrained 784-300-300-40 Bernoulli VAE (runs/bench/cli_recipe not found)"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    names = ("bare", "vaekit", "vaekit_no_batching")
    served = NAME[args.scenario]
    make = (lambda n, seed=0: requests(n, 784, 40, seed)) if args.scenario == "vae" else score_requests
    with tempfile.TemporaryDirectory() as tmp:
        folder, what = model_dir(Path(tmp), args.scenario)
        reqs = [(i, k, b) for i, (k, b) in enumerate(make(args.requests))]
        warm = [(-1 - i, k, b) for i, (k, b) in enumerate(make(64, 1))]
        servers = {n: start(n, folder, Path(tmp), served) for n in names}
        try:
            for n, (proc, port) in servers.items():
                await wait_ready(port, proc)
            rss0 = {}
            for n, (proc, port) in servers.items():
                await load(port, warm, args.concurrency, served)
                rss0[n] = rss_mb(proc.pid)
            acc: dict[str, dict[str, Any]] = {n: {"lat": [], "bodies": {}, "errors": 0, "wall": 0.0,
                                            "rounds": []} for n in names}
            share = -(-len(reqs) // args.rounds)
            order = [names[i:] + names[:i] for i in range(len(names))]
            for r in range(args.rounds):
                part = reqs[r * share:(r + 1) * share]
                for n in order[r % len(order)]:  # each server in each position in turn
                    c0 = cpu_seconds(servers[n][0].pid)
                    lat, bodies, errors, wall = await load(servers[n][1], part, args.concurrency, served)
                    a = acc[n]
                    a["cpu"] = a.get("cpu", 0.0) + cpu_seconds(servers[n][0].pid) - c0
                    a["lat"] += lat
                    a["bodies"].update(bodies)
                    a["errors"] += errors
                    a["wall"] += wall
                    a["rounds"].append(len(part) / wall)
                    print(f"round {r + 1}/{args.rounds} {n:20s} {len(part) / wall:7.1f} req/s, errors {errors}",
                          flush=True)
            res = {n: summary(acc[n]["lat"], acc[n]["errors"], acc[n]["wall"],
                              (rss0[n], rss_mb(servers[n][0].pid))) for n in names}
            for n in names:
                res[n]["server_cpu_ms_per_request"] = round(1000 * acc[n]["cpu"] / len(acc[n]["lat"]), 3)
            same = all(acc["vaekit"]["bodies"][i] == acc["vaekit_no_batching"]["bodies"].get(i) for i, _, _ in reqs)
            rel = 0.0  # batched vs unbatched: equal up to the last-ulp effect of a row's position in its block (ops.py)
            for i, _, _ in reqs:
                a, b = json.loads(acc["vaekit"]["bodies"][i]), json.loads(acc["vaekit_no_batching"]["bodies"][i])
                for key in a.keys() & b.keys():
                    u, v = np.asarray(a[key], float), np.asarray(b[key], float)
                    if u.size:
                        rel = max(rel, float((np.abs(u - v) / np.maximum(np.abs(v), 1e-30)).max()))
            diff = 0.0
            for i, _, _ in reqs[:400]:
                a, b = json.loads(acc["vaekit"]["bodies"][i]), json.loads(acc["bare"]["bodies"][i])
                for key in a.keys() & b.keys():
                    diff = max(diff, float(np.abs(np.asarray(a[key], float) - np.asarray(b[key], float)).max()))
            import httpx

            async with httpx.AsyncClient() as c:
                batching = (await c.get(f"http://127.0.0.1:{servers['vaekit'][1]}/stats")).json()
            per_pass = {k: round(batching["requests"][k] / batching["passes"][k], 2) for k in batching["requests"]}
            proc, port = servers["vaekit"]
            drain = await drain_check(port, proc, args.scenario)
            log_lines = (Path(tmp) / "vaekit.log").read_text().splitlines()
            records = [json.loads(line) for line in log_lines if line.startswith("{")]
        finally:
            for proc, _ in servers.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    b = res["bare"]["throughput_rps"]
    mix = ("encode/decode/sample/reconstruct in turn, 1-4 rows each" if args.scenario == "vae" else
           "score, 1-4 rows each (top: 0)")
    return {"benchmark": "serve_load", "scenario": args.scenario, "model": what, "requests_per_server": len(reqs),
            "concurrency": args.concurrency, "rounds": args.rounds, "mix": mix, "servers": res,
            "throughput_vs_bare": {"vaekit": round(res["vaekit"]["throughput_rps"] / b, 3),
                                   "vaekit_no_batching": round(res["vaekit_no_batching"]["throughput_rps"] / b, 3)},
            "throughput_vs_bare_per_round": {n: [round(v / w, 3) for v, w in zip(acc[n]["rounds"],
                                                                                  acc["bare"]["rounds"])]
                                             for n in ("vaekit", "vaekit_no_batching")},
            "cpu_efficiency_vs_bare": {n: round(res["bare"]["server_cpu_ms_per_request"]
                                                / res[n]["server_cpu_ms_per_request"], 3)
                                       for n in ("vaekit", "vaekit_no_batching")},
            "requests_per_pass_vaekit": per_pass,
            "target": ">= 0.9x bare throughput, better with micro-batching; 0 errors",
            "batched_equals_unbatched_bytes": same, "batched_vs_unbatched_max_rel_diff": rel,
            "max_abs_diff_vs_bare": diff, "graceful_shutdown": drain,
            "access_log_records": len(records), "access_log_example": records[-1] if records else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--scenario", choices=("vae", "detector"), default="vae")
    ap.add_argument("--out", default=None, help="default: results/deploy/serve_load.json (vae), "
                    "serve_load_detector.json (detector)")
    ap.add_argument("--bare-server", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=8000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        import torch
        import uvicorn

        torch.set_num_threads(1)
        uvicorn.run(bare_app(args.bare_server), host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False)
        return 0
    from provenance import provenance

    t0 = time.perf_counter()
    doc = asyncio.run(main_async(args))
    doc["total_seconds"] = round(time.perf_counter() - t0, 1)
    doc.update(provenance(sys.argv, 1))
    out = Path(args.out or HERE / "results" / "deploy" / ("serve_load.json" if args.scenario == "vae" else
                                                           "serve_load_detector.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("throughput_vs_bare", "batched_equals_unbatched_bytes",
                                          "graceful_shutdown")}, indent=1))
    for n, s in doc["servers"].items():
        print(f"{n:20s} {s['throughput_rps']:7.1f} req/s  p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  "
              f"errors {s['errors']}  RSS +{s['rss_growth_mb']} MB")
    bad = any(s["errors"] for s in doc["servers"].values()) or doc["batched_vs_unbatched_max_rel_diff"] > 1e-6
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
