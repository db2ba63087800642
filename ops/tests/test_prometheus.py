"""promtool on the scrape configs and the rules: check config, check rules, test rules."""
import subprocess
from pathlib import Path

import yaml

from conftest import ROOT

PROM = ROOT / "ops" / "prometheus"


def promtool_run(promtool, *args, cwd=PROM):
    run = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def test_native_config_is_valid(promtool):
    code, out = promtool_run(promtool, "check", "config", "prometheus.yml")
    assert code == 0, out
    assert "SUCCESS" in out


def test_compose_config_is_valid(promtool):
    code, out = promtool_run(promtool, "check", "config", "prometheus-compose.yml")
    assert code == 0, out


def test_rules_are_valid(promtool):
    code, out = promtool_run(promtool, "check", "rules", "alerts.yml")
    assert code == 0, out
    assert "rules found" in out


def test_rules_unit_tests_pass(promtool):
    code, out = promtool_run(promtool, "test", "rules", "alerts_test.yml")
    assert code == 0, out
    assert "SUCCESS" in out


def test_every_alert_of_the_brief_is_there():
    import yaml

    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for name in ("TributaryConsumerLagHigh", "TributaryDLQRateHigh", "TributaryCheckpointFailing",
                 "TributaryCheckpointStale", "TributaryWatermarkLagHigh", "FeatureDriftAlert",
                 "ScoringLatencyP95OverBudget"):
        assert name in alerts, name
        assert alerts[name]["labels"]["severity"] in {"page", "warn", "info"}


def test_unit_tests_cover_dlq_and_checkpoint_age_firing_and_not():
    """The two alerts the issue names: each has an eval where it fires and one where it must not."""
    import yaml

    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    for alert in ("TributaryDLQRateHigh", "TributaryCheckpointStale"):
        cases = [c for t in tests for c in t.get("alert_rule_test", []) if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in cases), f"{alert}: no case where it fires"
        assert any(not c["exp_alerts"] for c in cases), f"{alert}: no case where it stays quiet"


def test_a_wrong_expectation_fails(promtool, tmp_path):
    """promtool test rules really evaluates: a DLQ alert expected where the ratio is 0.05 % fails."""
    (tmp_path / "alerts.yml").write_text((PROM / "alerts.yml").read_text())
    (tmp_path / "t.yml").write_text("""
rule_files: [alerts.yml]
evaluation_interval: 15s
tests:
  - interval: 1m
    input_series:
      - series: 'tributary_source_records_total{job="txn-features",topic="txn.events"}'
        values: '0+2000x30'
      - series: 'tributary_dlq_records_total{job="txn-features",topic="txn.events.dlq",reason="decode"}'
        values: '0+1x30'
    alert_rule_test:
      - alertname: TributaryDLQRateHigh
        eval_time: 20m
        exp_alerts:
          - exp_labels: {job: txn-features, severity: page}
""")
    code, out = promtool_run(promtool, "test", "rules", "t.yml", cwd=tmp_path)
    assert code != 0
    assert "FAILED" in out


def test_alerts_read_recording_rules_of_their_own_group_recorded_before_them():
    """Across groups promtool (and Prometheus) fix no order: an alert reading a recording rule from
    another group may see the previous evaluation's value (this made the unit tests flaky)."""
    import re

    import yaml

    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    for group in rules["groups"]:
        recorded_so_far = set()
        for rule in group["rules"]:
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]+", rule["expr"]):
                assert name in recorded_so_far, f"{rule.get('alert') or rule.get('record')} reads {name}"
            if "record" in rule:
                recorded_so_far.add(rule["record"])


def test_prometheus_starts_with_the_native_config(tmp_path):
    """The config as the native stack would run it: Prometheus (Debian's, from ops/setup.sh) starts on
    a free port, loads every rule and has the four scrape pools."""
    import json
    import shutil
    import socket
    import time
    import urllib.request

    import pytest

    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.skip("prometheus not installed (ops/setup.sh installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, f"--config.file={PROM / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log", "w"))
    try:
        def get(path):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                return json.load(r) if path.startswith("/api") else r.read()
        deadline = time.monotonic() + 20
        while True:
            try:
                get("/-/ready")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "log").read_text()[-2000:]
                assert time.monotonic() < deadline, "Prometheus did not become ready"
                time.sleep(0.2)
        groups = get("/api/v1/rules")["data"]["groups"]
        rules = yaml.safe_load((PROM / "alerts.yml").read_text())
        assert sum(len(g["rules"]) for g in groups) == sum(len(g["rules"]) for g in rules["groups"])
        assert all(r["health"] != "err" for g in groups for r in g["rules"])
        want = {"prometheus", "txn-features", "click-features", "scoring"}
        while True:  # the scrape manager starts a moment after /-/ready
            pools = {t["scrapePool"] for t in get("/api/v1/targets")["data"]["activeTargets"]}
            if pools == want or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert pools == want
    finally:
        proc.terminate()
        proc.wait(timeout=10)
