"""The service as a process (`python -m tributary_ml.serve`), the latency driver and the end-to-end probe."""
import asyncio
import os
import subprocess
import sys

import pytest

from tributary_ml import e2e, latency

from .conftest import free_port


@pytest.fixture(scope="module")
def served(trained, redis_server):
    port = free_port()
    env = {**os.environ, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "SCORING_PORT": str(port),
           "TRIBUTARY_MODEL_DIR": str(trained["dir"]), "MODEL_VERSION": "v2", "SCORING_CANDIDATE_VERSION": "v1",
           "FEAST_PROJECT": "tributary", "MLFLOW_TRACKING_URI": trained["uri"]}
    p = subprocess.Popen([sys.executable, "-m", "tributary_ml.serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        latency.wait_http(url, timeout=60)
        yield url
    finally:
        os.kill(p.pid, 15)
        p.wait(10)


def test_latency_driver(served, redis_server):
    ids = latency.seed_redis(redis_server.port, 200, "tributary")
    res = asyncio.run(latency.drive(served, ids, rate=200, duration=2, conns=16, warmup=0.5))
    assert res["ok"] == res["requests"] == 400 and not res["errors"]
    assert 0 < res["p50_ms"] <= res["p95_ms"] <= res["p99_ms"]
    assert set(res["versions"]) == {"v1", "v2"}


def test_e2e_probe_simulated(served, redis_server):
    r = redis_server.client()
    res = e2e.run(e2e.SimulatedProducer(r, "tributary", delay_ms=2), r, served, probes=20, rate=100, project="tributary")
    assert res["lost"] == 0
    assert 2 <= res["visible_p50_ms"] <= res["e2e_p50_ms"] < 1000


@pytest.mark.skipif(os.environ.get("TRIBUTARY_E2E") != "1" or not os.path.exists(e2e.REPO_ROOT / ".build/release/txn-features"),
                    reason="TRIBUTARY_E2E=1 and a release build of txn-features needed")
def test_e2e_through_the_real_job():
    """Broker, txn-features, Redis and the service on loopback; 30 events through Kafka and the job to a score."""
    assert e2e.main(["--mode", "kafka", "--local", "--probes", "30", "--rate", "20"]) == 0
