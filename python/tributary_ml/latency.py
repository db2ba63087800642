"""Latency test: drives the scoring service at a fixed rate (open loop) and reports p50/p95/p99 and errors.

    python -m tributary_ml.latency [--rate 500] [--duration 20] [--url http://127.0.0.1:8000]

Without --url it runs its own set-up, all on loopback: a redis-server on a free port (stopped by PID at the
end), fresh online rows for --cards cards written in the Feast layout (event times = the last minutes, so no
view is stale), and the service (`python -m tributary_ml.serve`, one uvicorn process, models from
TRIBUTARY_MODEL_DIR: run `make train` first). Requests are sent at their scheduled times whatever the
replies do (no coordinated omission): a request's latency counts from its scheduled time. Card ids are drawn
with a hot-key skew, 10 % of them never seen (missing-feature path). Results: stdout and --json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import contract, layout
from .contract import env, resolve
from .procs import stop_processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy")


def seed_redis(port: int, cards: int, project: str) -> list[str]:
    import redis
    r = redis.Redis(host="127.0.0.1", port=port)
    rng = random.Random(1)
    now = int(time.time() * 1000)
    ids = [f"lat-card-{i:05d}" for i in range(cards)]
    for name in contract.FRAUD_VIEWS:
        v = contract.VIEWS[name]
        rows = []
        for c in ids:
            amt = int(rng.lognormvariate(8, 0.7))
            vals = {"count_5m": rng.randint(1, 5), "sum_5m": amt * 2, "avg_5m": amt / 1.0,
                    "geo_mismatch_ratio_5m": rng.choice([0.0, 0.0, 0.5]), "count_30m": rng.randint(1, 10),
                    "count_24h": rng.randint(1, 60), "sum_24h": amt * 20, "avg_24h": float(amt),
                    "geo_mismatch_ratio_last_n": rng.random() * 0.2, "device_mismatch_ratio_last_n": rng.random() * 0.1,
                    "seconds_since_last_txn": rng.random() * 3600, "amount_minor": amt, "device_os": "ios",
                    "device_age_days": rng.random() * 300, "device_country_mismatch": rng.randint(0, 1)}
            rows.append((c, now - rng.randint(0, 600_000), vals))
        layout.write_rows(r, project, "card_id", v.name, v.features, rows)
    return ids


async def drive(url: str, ids: list[str], rate: float, duration: float, conns: int, warmup: float) -> dict:
    import aiohttp
    rng = random.Random(2)
    n = int(rate * duration)
    lat: list[float] = []
    server_ms: list[float] = []
    errors: dict[str, int] = {}
    versions: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=conns, force_close=False)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(body: dict, scheduled: float, record: bool):
            try:
                async with session.post(url + "/score", json=body) as resp:
                    data = await resp.read()
                    done = time.perf_counter()
                    if not record:
                        return
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                        return
                    j = json.loads(data)
                    versions[j["model_version"]] = versions.get(j["model_version"], 0) + 1
                    server_ms.append(j["latency_ms"])
                    lat.append((done - scheduled) * 1000)
            except Exception as e:  # noqa: BLE001 - counted and reported
                if record:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1

        def body() -> dict:
            if rng.random() < 0.1:
                return {"card_id": f"unknown-{rng.randint(0, 10**6)}"}
            return {"card_id": ids[min(len(ids) - 1, int(len(ids) * rng.random() ** 3))]}

        # warm-up (not recorded): connections, caches
        wn = int(rate * warmup)
        t0 = time.perf_counter()
        tasks = []
        for i in range(wn):
            at = t0 + i / rate
            d = at - time.perf_counter()
            if d > 0:
                await asyncio.sleep(d)
            tasks.append(asyncio.create_task(one(body(), at, False)))
        await asyncio.gather(*tasks)
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            at = t0 + i / rate
            d = at - time.perf_counter()
            if d > 0:
                await asyncio.sleep(d)
            tasks.append(asyncio.create_task(one(body(), at, True)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    a = np.array(lat) if lat else np.array([np.nan])
    s = np.array(server_ms) if server_ms else np.array([np.nan])
    return {"rate_target": rate, "requests": n, "ok": len(lat), "errors": errors, "achieved_rps": n / wall,
            "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(np.max(a)),
            "server_p50_ms": float(np.percentile(s, 50)), "server_p95_ms": float(np.percentile(s, 95)),
            "server_p99_ms": float(np.percentile(s, 99)), "versions": versions}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--url", default=None, help="a running service (else: own Redis + service on loopback)")
    ap.add_argument("--cards", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--p95-budget-ms", type=float, default=None, help="exit 1 when p95 exceeds this")
    a = ap.parse_args(argv)
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="tributary-latency-")
    try:
        if a.url:
            url = a.url.rstrip("/")
            ids = [f"lat-card-{i:05d}" for i in range(a.cards)]
        else:
            model_dir = resolve(env("TRIBUTARY_MODEL_DIR"))
            if not (model_dir / f"fraud-{env('MODEL_VERSION')}.onnx").exists():
                print(f"latency: no model in {model_dir}: run `make train` first", file=sys.stderr)
                return 2
            rport, sport = free_port(), free_port()
            procs.append(subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(rport),
                                           "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
                                          stdout=subprocess.DEVNULL))
            time.sleep(0.3)
            ids = seed_redis(rport, a.cards, env("FEAST_PROJECT"))
            e = {**os.environ, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rport), "SCORING_PORT": str(sport),
                 "SCORING_HOST": "127.0.0.1", "TRIBUTARY_MODEL_DIR": str(model_dir),
                 "SCORING_CANDIDATE_VERSION": os.environ.get("SCORING_CANDIDATE_VERSION", "v1"),
                 "SCORING_MAX_QPS": os.environ.get("SCORING_MAX_QPS", str(max(2000, a.rate * 4)))}
            procs.append(subprocess.Popen([sys.executable, "-m", "tributary_ml.serve"], env=e))
            url = f"http://127.0.0.1:{sport}"
        wait_http(url)
        import uvloop
        res = uvloop.run(drive(url, ids, a.rate, a.duration, a.connections, a.warmup))
    finally:
        stop_processes(procs, 10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"latency: {res['requests']} requests at {res['rate_target']:g}/s target ({res['achieved_rps']:.0f}/s sent), "
          f"{res['ok']} ok, errors {res['errors'] or 0}")
    print(f"latency: client p50 {res['p50_ms']:.2f} ms  p95 {res['p95_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  "
          f"max {res['max_ms']:.1f} ms; in-service p50 {res['server_p50_ms']:.2f}  p95 {res['server_p95_ms']:.2f}  "
          f"p99 {res['server_p99_ms']:.2f} ms; models {res['versions']}")
    if a.json:
        Path(resolve(a.json)).parent.mkdir(parents=True, exist_ok=True)
        Path(resolve(a.json)).write_text(json.dumps(res, indent=1))
    if a.p95_budget_ms is not None and res["p95_ms"] > a.p95_budget_ms:
        print(f"latency: p95 {res['p95_ms']:.2f} ms over the budget of {a.p95_budget_ms} ms", file=sys.stderr)
        return 1
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
