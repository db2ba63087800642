"""The real pipeline's output on loopback, for the gated tests and the drift demo: a broker and a Redis of
our own (scripts/local-broker.sh with KAFKA_LOCAL_DIR, scripts/redis-test-server.sh with REDIS_TEST_DIR, both
under a work directory, stopped by their pid files), `generate` into it and a feature job `--bounded` out of
it into `<work>/offline`. Uses the release binaries (.build/release/…); builds nothing.

The generators' event time advances at --rate records per second (5 000 when --rate is 0: unthrottled
production, the default event-time rate): 100 000 clicks span 20 s of event time. A 30-minute label
horizon would then mean "any later purchase"; CLICK_HORIZON_MINUTES (1 s) keeps the label about a user's
next few clicks, which is what 30 minutes means on real browsing time.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .contract import REPO_ROOT

RELEASE = REPO_ROOT / ".build" / "release"
CLICK_HORIZON_MINUTES = 1 / 60


def available(*binaries: str) -> bool:
    return all((RELEASE / b).exists() for b in binaries)


class Stack:
    def __init__(self, work: str | os.PathLike):
        self.work = Path(work)
        self.env = {**os.environ, "KAFKA_LOCAL_DIR": str(self.work / "broker"),
                    "REDIS_TEST_DIR": str(self.work / "redis")}
        self.env.pop("REDIS_PORT", None)
        self.offline = self.work / "offline"
        self.bootstrap = ""
        self.redis_port = 0

    def _script(self, name: str, *args: str) -> str:
        out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / name), *args], env=self.env, check=True,
                             capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""

    def __enter__(self) -> "Stack":
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            self.bootstrap = self._script("local-broker.sh", "start")
            self._script("local-broker.sh", "topics")
            self.redis_port = int(self._script("redis-test-server.sh", "start"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for name in ("redis-test-server.sh", "local-broker.sh"):
            subprocess.run(["bash", str(REPO_ROOT / "scripts" / name), "stop"], env=self.env, capture_output=True)

    def generate(self, streams: str, *args: str) -> str:
        """`generate --streams S --rate 0 …` into the broker; its summary."""
        out = subprocess.run([str(RELEASE / "generate"), "--bootstrap", self.bootstrap, "--streams", streams,
                              "--rate", "0", *args], env=self.env, cwd=str(REPO_ROOT), check=True,
                             capture_output=True, text=True, timeout=600)
        return out.stderr

    def job(self, name: str, *args: str) -> str:
        """A feature job `--bounded` from the beginning of the topics into <work>/offline and this Redis."""
        out = subprocess.run([str(RELEASE / name), "--bootstrap", self.bootstrap, "--redis",
                              f"127.0.0.1:{self.redis_port}", "--offline-dir", str(self.offline), "--bounded",
                              "--features-topic", "none", "--progress-seconds", "0",
                              "--checkpoint-dir", str(self.work / f"chk-{name}"),
                              "--registry", str(REPO_ROOT / "schemas" / "registry.json"), *args],
                             env=self.env, cwd=str(REPO_ROOT), check=True, capture_output=True, text=True, timeout=900)
        return out.stderr
