"""scripts/render_dashboard.py against a real Prometheus: series named as in the dashboard, written as
OpenMetrics, turned into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`, served by
Debian's prometheus on a free loopback port; the PNGs are checked for size and for drawn data."""
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import render_dashboard as rd
from conftest import ROOT

SCRIPT = ROOT / "scripts" / "render_dashboard.py"
STEP = 5          # seconds between samples, the stack's scrape interval
MINUTES = 30
MISSING = "Watermark lag"   # its series (tributary_watermark_lag_seconds) is left out on purpose
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def labels(**kv) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}"


def openmetrics(start: int, end: int) -> str:
    """The dashboard's series over [start, end], one sample per STEP; values move so lines are not flat."""
    times = list(range(start, end + 1, STEP))
    wave = [1 + 0.3 * math.sin(i / 25) for i in range(len(times))]
    out = []

    def counter(name, series):          # series: {labels: per-second rate factor}
        out.append(f"# TYPE {name} counter")
        for lab, rate in series.items():
            total = 0.0
            for t, w in zip(times, wave):
                total += rate * w * STEP
                out.append(f"{name}_total{lab} {total:.3f} {t}")

    def gauge(name, series):            # series: {labels: f(i) -> value}
        out.append(f"# TYPE {name} gauge")
        for lab, f in series.items():
            out.extend(f"{name}{lab} {f(i):.12g} {t}" for i, t in enumerate(times))

    def histogram(name, series):        # series: [(label dict, observations/s, typical seconds)]
        out.append(f"# TYPE {name} histogram")
        les = [*map(str, BUCKETS), "+Inf"]
        for lab, per_s, typical in series:
            counts, total, total_sum = [0.0] * len(BUCKETS), 0.0, 0.0
            rows = {key: [] for key in (*les, "sum", "count")}
            for i, t in enumerate(times):
                n, centre = per_s * STEP, typical * wave[i]
                for j, b in enumerate(BUCKETS):   # the share of observations at or below b: 1/2 at the centre
                    counts[j] += n * ((b / centre) ** 2 / 2 if b < centre else 1 - (centre / b) ** 2 / 2)
                total += n
                total_sum += n * centre
                for le, c in zip(les, [*counts, total]):
                    rows[le].append(f"{name}_bucket{labels(**lab, le=le)} {c:.3f} {t}")
                rows["sum"].append(f"{name}_sum{labels(**lab)} {total_sum:.6f} {t}")
                rows["count"].append(f"{name}_count{labels(**lab)} {total:.3f} {t}")
            for lines in rows.values():
                out.extend(lines)

    counter("tributary_source_records", {labels(job="txn-features", topic="txn.events"): 5000,
                                         labels(job="click-features", topic="click.events"): 3000})
    counter("tributary_records_out", {labels(job="txn-features", operator="redis-sink"): 4800,
                                      labels(job="click-features", operator="redis-sink"): 2900})
    counter("tributary_dlq_records", {labels(job="txn-features", topic="txn.events.dlq", reason="TOO_LATE"): 5,
                                      labels(job="txn-features", topic="txn.events.dlq", reason="BAD_MAGIC"): 2})
    counter("scoring_requests", {labels(job="scoring", status="200", model_version="v2"): 450,
                                 labels(job="scoring", status="200", model_version="v1"): 50})
    gauge("tributary_kafka_consumer_lag_records", {
        labels(job="txn-features", topic="txn.events", partition=str(p)): (lambda i, p=p: 300 + 250 * math.sin(i / 9 + p))
        for p in range(3)})
    gauge("tributary_last_checkpoint_timestamp_seconds",
          {labels(job="txn-features"): lambda i: times[i] - (i * STEP) % 30})
    gauge("drift_psi", {labels(job="drift", feature="amount_minor"): lambda i: 0.02 if i < len(times) * 2 // 3 else 0.45,
                        labels(job="drift", feature="avg_24h"): lambda i: 0.03 + 0.01 * math.sin(i / 7)})
    gauge("drift_alert", {labels(job="drift"): lambda i: 0 if i < len(times) * 2 // 3 else 1})
    histogram("tributary_checkpoint_duration_seconds", [({"job": "txn-features"}, 0.5, 0.3),
                                                        ({"job": "click-features"}, 0.5, 0.08)])
    histogram("tributary_event_to_feature_latency_seconds", [({"job": "txn-features"}, 500, 0.009),
                                                             ({"job": "click-features"}, 300, 0.006)])
    histogram("scoring_request_duration_seconds", [({"job": "scoring"}, 500, 0.002)])
    return "\n".join(out)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, promtool):
    """(url, start, end) of a Prometheus serving the test series from TSDB blocks, stopped by PID."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus not installed: run ops/setup.sh (installs Debian's prometheus package)")
    tmp = tmp_path_factory.mktemp("prom")
    end = int(time.time()) // 60 * 60 - 120
    start = end - MINUTES * 60
    (tmp / "series.om").write_text(openmetrics(start - 300, end) + "\n# EOF\n")
    run = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp / "series.om"), str(tmp / "data")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    (tmp / "prometheus.yml").write_text("global:\n  scrape_interval: 5s\n")
    port = free_port()
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
                            stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "Prometheus did not become ready"
                time.sleep(0.2)
        yield url, start, end
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def render(capsys, *args) -> subprocess.CompletedProcess:
    """The renderer in this process (matplotlib imported once for the module: the test stays quick on 2 cores)."""
    capsys.readouterr()
    code = rd.main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def colored_share(pixels) -> float:
    """Share of strongly coloured pixels (series lines, threshold lines): the theme's greys and the
    panel background do not count, so a panel that drew no data has none."""
    import numpy as np

    rgb = pixels[..., :3].astype(float)
    hi, lo = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0)
    return float(((saturation > 0.35) & (hi > 0.35)).mean())


def test_key_panels_from_a_real_prometheus(prometheus, tmp_path, capsys):
    import matplotlib.image as mpimg

    url, start, end = prometheus
    run = render(capsys, "--prometheus", url, "--start", str(start), "--end", str(end), "--per-panel", "--out-dir", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {re.split(r"\s{2,}", line.strip())[0]: line for line in run.stdout.splitlines() if line.startswith("  ")}
    assert set(lines) == set(rd.KEY_PANELS), run.stdout
    for title in rd.KEY_PANELS:
        if title == MISSING:
            assert "no data" in lines[title], lines[title]
        else:
            assert "series" in lines[title], lines[title]
    assert "recording rule inlined" in lines["DLQ share of input"]   # job:tributary_dlq_ratio:rate5m from its expression

    grid = mpimg.imread(tmp_path / "dashboard.png")
    assert grid.shape[:2] == (1260, 1600)   # header 60 + four rows of 300; two 800-px columns
    for i, title in enumerate(rd.KEY_PANELS):
        slug = rd.Panel(0, title, "timeseries", {}, [], None, [], False).slug
        single = mpimg.imread(tmp_path / f"dashboard-{slug}.png")
        assert single.shape[:2] == (300, 800), title
        x, y = (i % 2) * 800, 60 + (i // 2) * 300
        in_grid = grid[y + 34 : y + 300 - 10, x + 10 : x + 790]   # below the title
        if title == MISSING:
            assert colored_share(single) == 0 and colored_share(in_grid) == 0, title
        else:
            assert colored_share(single) > 0.002, (title, colored_share(single))
            assert colored_share(in_grid) > 0.002, (title, colored_share(in_grid))
            assert single[40:250, 70:780, :3].std() > 0.02, title   # not a blank plot area


def test_every_panel_in_the_dashboards_layout(prometheus, tmp_path, capsys):
    import matplotlib.image as mpimg

    url, start, end = prometheus
    run = render(capsys, "--prometheus", url, "--start", str(start), "--end", str(end), "--panels", "all",
                 "--out-dir", str(tmp_path), "--name", "all")
    assert run.returncode == 0, run.stdout + run.stderr
    dashboard = json.loads(rd.DASHBOARD.read_text())
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    image = mpimg.imread(tmp_path / "all.png")
    assert image.shape[:2] == (math.ceil(60 + bottom * rd.UNIT_H), 1600)
    assert "Last checkpoint age" in run.stdout and "Drift alert" in run.stdout


def test_a_query_prometheus_rejects_is_shown_and_exits_1(prometheus, tmp_path, capsys):
    url, start, end = prometheus
    board = {"title": "t", "panels": [
        {"id": 1, "type": "timeseries", "title": "Broken", "targets": [{"refId": "A", "expr": "sum(rate(x[1m]"}]},
        {"id": 2, "type": "timeseries", "title": "Fine", "targets": [{"refId": "A", "expr": "drift_psi"}]}]}
    (tmp_path / "board.json").write_text(json.dumps(board))
    run = render(capsys, "--prometheus", url, "--start", str(start), "--end", str(end), "--dashboard",
                 str(tmp_path / "board.json"), "--panels", "Broken,Fine", "--out-dir", str(tmp_path))
    assert run.returncode == 1
    assert "query error A:" in run.stdout and "Fine" in run.stdout and "2 series" in run.stdout
    assert (tmp_path / "dashboard.png").exists()


def test_an_unreachable_prometheus_fails_fast_saying_make_up(tmp_path):
    """As a process, the way make runs it."""
    began = time.monotonic()
    run = subprocess.run([sys.executable, str(SCRIPT), "--prometheus", f"http://127.0.0.1:{free_port()}",
                          "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "make up" in run.stderr and "cannot reach Prometheus" in run.stderr
    assert time.monotonic() - began < 10
    assert not (tmp_path / "dashboard.png").exists()


def test_grafana_variables_become_promql():
    dashboard = json.loads(rd.DASHBOARD.read_text())
    values = rd.variables(dashboard, {})
    assert values["job"] == ".*"
    expr = 'sum by (job) (rate(tributary_source_records_total{job=~"$job"}[$__rate_interval]))'
    # Grafana's rule: max(step + scrape interval, 4 x scrape interval)
    assert rd.substitute(expr, values, step=6, range_s=1800, scrape=5) == \
        'sum by (job) (rate(tributary_source_records_total{job=~".*"}[20s]))'
    assert rd.substitute("x[$__rate_interval] ${job}", {"job": "a"}, step=60, range_s=3600, scrape=5) == "x[65s] a"


def test_recording_rules_are_inlined_only_where_they_select_everything():
    rules = rd.load_rules(rd.RULES)
    inlined = rd.inline_rules('job:tributary_dlq_ratio:rate5m{job=~".*"}', rules)
    assert ":" not in inlined.replace("[5m]", "")
    assert "tributary_dlq_records_total" in inlined and "tributary_source_records_total" in inlined
    narrowed = 'job:tributary_dlq_ratio:rate5m{job=~"txn-features"}'
    assert rd.inline_rules(narrowed, rules) == narrowed


@pytest.mark.parametrize("value,unit,text", [
    (0.0123, "s", "12.3 ms"), (1.5, "s", "1.5 s"), (90, "s", "1.5 min"), (0.00042, "s", "420 µs"),
    (0.0017, "percentunit", "0.17%"), (12000, "short", "12 K"), (35500, "rps", "35.5 K/s"), (35500, "cps", "35.5 K c/s"), (120, "reqps", "120 req/s"), (0.2, "short", "0.2"),
])
def test_units_as_grafana_formats_them(value, unit, text):
    assert rd.format_value(value, unit) == text
