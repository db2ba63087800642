"""Child processes the drivers start (redis-server, the service, txn-features): stopped newest first."""
from __future__ import annotations

import os
import signal
import subprocess


def stop_processes(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each process still running (newest first), SIGKILL it after `grace_s` seconds."""
    for p in reversed(procs):
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
