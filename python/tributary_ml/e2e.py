"""End-to-end latency: event produced → its features visible online → a score that reflects it.

    python -m tributary_ml.e2e --mode kafka --url http://127.0.0.1:8000 [--probes 200 --rate 20]
    python -m tributary_ml.e2e --mode simulated            # exercises the measure without the jobs

For each probe: a fresh card id, a `transactions.v1` event (Confluent wire format, schema id from
schemas/registry.json) produced to txn.events with event time = now; then Redis is polled for that card's
`_ts:txn_profile` (Feast layout) until it is at least the event time (the txn-features job has written it);
then POST /score with the card, which must come back with the card's features found. Reported: p50/p95/p99 of
produce → visible (feature freshness) and produce → score returned (end to end), probes lost.

Modes: `kafka` needs the broker (KAFKA_BOOTSTRAP), the txn-features job consuming txn.events and writing
Redis, and the scoring service (`make serve`); `simulated` stands in for the job: it writes the probe's
rows itself after the produce (no Kafka) — a check of this script, not a measure of the system.
`--local` (with kafka) starts everything itself on loopback and stops it (by PID) at the end: a broker of its
own (scripts/local-broker.sh with a temporary KAFKA_LOCAL_DIR, the design's topics), a redis-server, the
txn-features job (--job-bin, default .build/release/txn-features: build it first) and the service.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import contract, layout
from .contract import REPO_ROOT, env
from .procs import stop_processes


class KafkaProducer:
    def __init__(self, bootstrap: str, topic: str = "txn.events"):
        import fastavro
        from confluent_kafka import Producer
        reg = json.loads((REPO_ROOT / "schemas" / "registry.json").read_text())
        entry = [e for e in reg["subjects"][f"{topic}-value"] if e["schema"] == "transactions.v1.avsc"][0]
        self.schema_id = entry["id"]
        self.schema = fastavro.parse_schema(json.loads((REPO_ROOT / "schemas" / entry["schema"]).read_text()))
        self.topic = topic
        self.p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
                           "log.connection.close": False})

    def produce(self, card: str, event_ms: int) -> None:
        import fastavro
        rec = {"txn_id": f"e2e-{card}", "card_id": card, "user_id": "e2e-user", "amount_minor": 1234,
               "currency": "GBP", "mcc": 5411, "device_id": f"e2e-dev-{card}", "ip": "127.0.0.1",
               "geo": {"lat": 51.5, "lon": -0.12, "country": "GB"}, "timestamp": event_ms}
        buf = io.BytesIO()
        buf.write(b"\x00" + self.schema_id.to_bytes(4, "big"))
        fastavro.schemaless_writer(buf, self.schema, rec)
        self.p.produce(self.topic, key=card.encode(), value=buf.getvalue())
        self.p.flush(5)


class SimulatedProducer:
    """Writes the probe's feature rows itself after `delay_ms`, like a job would."""

    def __init__(self, redis_client, project: str, delay_ms: float = 5):
        self.r, self.project, self.delay = redis_client, project, delay_ms / 1000

    def produce(self, card: str, event_ms: int) -> None:
        time.sleep(self.delay)
        vals = {"count_5m": 1, "sum_5m": 1234, "avg_5m": 1234.0, "geo_mismatch_ratio_5m": 0.0, "count_30m": 1,
                "count_24h": 1, "sum_24h": 1234, "avg_24h": 1234.0, "geo_mismatch_ratio_last_n": 0.0,
                "device_mismatch_ratio_last_n": 0.0, "seconds_since_last_txn": None, "amount_minor": 1234,
                "device_os": "ios", "device_age_days": 0.0, "device_country_mismatch": 0}
        for name in contract.FRAUD_VIEWS:
            v = contract.VIEWS[name]
            layout.write_rows(self.r, self.project, "card_id", v.name, v.features, [(card, event_ms, vals)])


def run(producer, redis_client, url: str, probes: int, rate: float, project: str, wait_s: float = 10) -> dict:
    import httpx
    v = contract.VIEWS["txn_profile"]
    run_id = f"{int(time.time())}-{random.randint(0, 9999)}"
    fresh, e2e, lost = [], [], 0
    with httpx.Client(timeout=5) as http:
        for i in range(probes):
            card = f"e2e-{run_id}-{i}"
            key = layout.redis_key({"card_id": card}, project)
            t0 = time.perf_counter()
            event_ms = int(time.time() * 1000)
            producer.produce(card, event_ms)
            seen = None
            while time.perf_counter() - t0 < wait_s:
                ts = redis_client.hget(key, layout.ts_field(v.name))
                if ts and layout.decode_timestamp(ts) * 1000 >= event_ms - 0.5:
                    seen = time.perf_counter()
                    break
                time.sleep(0.0005)
            if seen is None:
                lost += 1
                continue
            body = http.post(url + "/score", json={"card_id": card}).json()
            done = time.perf_counter()
            if not body.get("entity_found"):
                lost += 1
                continue
            fresh.append((seen - t0) * 1000)
            e2e.append((done - t0) * 1000)
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))
    pct = lambda a, q: float(np.percentile(a, q)) if a else float("nan")  # noqa: E731
    return {"probes": probes, "lost": lost,
            "visible_p50_ms": pct(fresh, 50), "visible_p95_ms": pct(fresh, 95), "visible_p99_ms": pct(fresh, 99),
            "e2e_p50_ms": pct(e2e, 50), "e2e_p95_ms": pct(e2e, 95), "e2e_p99_ms": pct(e2e, 99)}


class LocalStack:
    """Broker + topics, redis-server, txn-features and the scoring service on loopback, all stopped by PID."""

    def __init__(self, job_bin: str):
        import shutil
        import tempfile
        self.dir = Path(tempfile.mkdtemp(prefix="tributary-e2e-"))
        self.job_bin = job_bin
        self.procs: list = []
        self.broker_env = {**os.environ, "KAFKA_LOCAL_DIR": str(self.dir / "broker")}
        self.redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"

    def start(self) -> tuple[str, int, str]:
        from .latency import free_port, wait_http
        script = str(REPO_ROOT / "scripts" / "local-broker.sh")
        out = subprocess.run(["bash", script, "start"], env=self.broker_env, check=True, capture_output=True, text=True)
        bootstrap = out.stdout.strip().splitlines()[-1]
        subprocess.run(["bash", script, "topics"], env=self.broker_env, check=True, capture_output=True)
        rport, sport = free_port(), free_port()
        self.procs.append(subprocess.Popen([self.redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                            "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL))
        time.sleep(0.3)
        job_env = {**os.environ, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rport)}
        self.procs.append(subprocess.Popen(
            [self.job_bin, "--bootstrap", bootstrap, "--redis", f"127.0.0.1:{rport}", "--offline-dir",
             str(self.dir / "offline"), "--features-topic", "none", "--progress-seconds", "0",
             "--registry", str(REPO_ROOT / "schemas" / "registry.json")],
            env=job_env, cwd=str(REPO_ROOT), stdout=subprocess.DEVNULL, stderr=open(self.dir / "job.log", "w")))
        svc_env = {**os.environ, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rport), "SCORING_PORT": str(sport),
                   "SCORING_HOST": "127.0.0.1"}
        self.procs.append(subprocess.Popen([sys.executable, "-m", "tributary_ml.serve"], env=svc_env))
        url = f"http://127.0.0.1:{sport}"
        wait_http(url)
        time.sleep(3)  # the job joins its consumer group and gets its partitions
        return bootstrap, rport, url

    def stop(self, show_log: bool = False) -> None:
        import shutil
        stop_processes(self.procs, 15)
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "local-broker.sh"), "stop"], env=self.broker_env,
                       capture_output=True)
        log = self.dir / "job.log"
        if show_log and log.exists() and log.stat().st_size:
            print("e2e: the job's log (last lines):\n" + "\n".join(log.read_text().splitlines()[-5:]), file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv=None) -> int:
    import redis
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["kafka", "simulated"], default="kafka")
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20, help="probes per second (at most)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--local", action="store_true", help="start broker, Redis, txn-features and the service itself")
    ap.add_argument("--job-bin", default=str(REPO_ROOT / ".build" / "release" / "txn-features"))
    a = ap.parse_args(argv)
    project = env("FEAST_PROJECT")
    stack = None
    res = None
    try:
        if a.local:
            if a.mode != "kafka":
                ap.error("--local goes with --mode kafka")
            if not Path(a.job_bin).exists():
                print(f"e2e: no {a.job_bin}: build the jobs first (swift build -c release)", file=sys.stderr)
                return 2
            stack = LocalStack(a.job_bin)
            bootstrap, rport, url = stack.start()
            r = redis.Redis(host="127.0.0.1", port=rport)
        else:
            bootstrap, url = env("KAFKA_BOOTSTRAP") or "127.0.0.1:9092", a.url
            r = redis.Redis(host=env("REDIS_HOST"), port=int(env("REDIS_PORT")))
        prod = KafkaProducer(bootstrap) if a.mode == "kafka" else SimulatedProducer(r, project)
        res = run(prod, r, url.rstrip("/"), a.probes, a.rate, project)
        prod = None  # the producer goes before the broker does
    finally:
        if stack:
            stack.stop(show_log=res is None or bool(res["lost"]))
    print(f"e2e ({a.mode}): {res['probes']} probes, {res['lost']} lost; produce→visible p50 {res['visible_p50_ms']:.1f} "
          f"p95 {res['visible_p95_ms']:.1f} p99 {res['visible_p99_ms']:.1f} ms; produce→score p50 {res['e2e_p50_ms']:.1f} "
          f"p95 {res['e2e_p95_ms']:.1f} p99 {res['e2e_p99_ms']:.1f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 1 if res["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
