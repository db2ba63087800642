"""Fixtures: real redis-server processes on free loopback ports (stopped by PID), a small generated data
set in the contract's layout, and models trained on it once per session."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tributary_ml import synthetic

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.2).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            self.proc.wait(10)
        self.proc = None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.stop()


@pytest.fixture()
def own_redis(tmp_path):
    """A redis-server of the test's own (it may be stopped and restarted)."""
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """6 000 transactions on 150 cards and 6 000 clicks of 300 users over 4 h, offline log + fraud and
    purchase labels in the contract's layout."""
    root = tmp_path_factory.mktemp("data")
    ds = synthetic.generate(n_txn=6000, n_cards=150, n_users=300, n_clicks=6000, hours=4, seed=11, fraud_share=0.02)
    synthetic.write_offline(ds, root / "offline")
    synthetic.write_labels(ds, root / "labels.csv")
    synthetic.write_click_labels(ds, root / "click-labels.csv")
    return {"ds": ds, "root": root, "offline": root / "offline", "parquet": root / "parquet",
            "labels": root / "labels.csv", "click_labels": root / "click-labels.csv"}


@pytest.fixture(scope="session")
def trained(dataset, redis_server, tmp_path_factory):
    from tributary_ml import train
    out = tmp_path_factory.mktemp("models")
    uri = f"sqlite:///{out / 'mlruns.db'}"
    summary = train.run(dataset["labels"], dataset["offline"], dataset["parquet"], out, uri,
                        feast_dir=dataset["root"] / "feast-train", redis_port=redis_server.port)
    from tributary_ml import train_perso  # the personalisation models go to the same directory and registry
    perso = train_perso.run(dataset["click_labels"], dataset["offline"], dataset["parquet"], out, uri,
                            feast_dir=dataset["root"] / "feast-train", redis_port=redis_server.port)
    return {"summary": summary, "perso": perso, "dir": out, "uri": uri}
