"""Renders the Grafana dashboard's panels from Prometheus to PNG files (no Grafana runs here).

    .venv-ops/bin/python scripts/render_dashboard.py [--prometheus URL] [--minutes N | --start T --end T]
        [--step DURATION] [--panels key|all|TITLE,ID,...] [--per-panel] [--out-dir docs/img]

`make dashboard-png` runs it against the local stack's Prometheus (`make up`, 127.0.0.1:9090).

It reads the dashboard JSON itself (ops/grafana/dashboards/tributary-overview.json): panel titles,
PromQL targets, legend formats, units, thresholds. Grafana's variables are replaced as Grafana would:
a template variable by `--var NAME=VALUE`, else its "All" value (`$job` -> `.*`); `$__interval` by the
step; `$__rate_interval` by max(step + scrape interval, 4 x scrape interval), the scrape interval being
the datasource's `timeInterval` (5s). Each target goes to `/api/v1/query_range` over the time range.
A target reading a recording rule of ops/prometheus/alerts.yml that returns nothing (a Prometheus that
has not evaluated the rule over that range: started later, or holding backfilled data) is asked again
with the rule's expression in its place.

Output (sizes fixed, so the images are comparable between runs):
  <out-dir>/dashboard.png            --panels key (default): the eight key panels, two per row,
                                     1600 x 1260 px; --panels all: every panel at its gridPos, as laid
                                     out in Grafana (1600 px wide)
  <out-dir>/dashboard-<panel>.png    with --per-panel: each panel alone, 800 x 300 px
A panel whose queries return no series says "No data"; a query Prometheus rejects shows its error in
the panel. One line per panel on stdout (series count or "no data").

Exit 0 when every query ran (panels may have no data), 1 when a query failed (the PNGs are written
anyway), 2 when Prometheus is not reachable (start it with `make up`) or the arguments are wrong.
Needs matplotlib and PyYAML (ops/setup.sh puts both in .venv-ops).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "tributary-overview.json"
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
OUT_DIR = ROOT / "docs" / "img"
SCRAPE_INTERVAL = 5.0   # ops/grafana/provisioning/datasources/prometheus.yml timeInterval, the stack's scrape interval

# The key panels, in reading order (titles as in the dashboard JSON).
KEY_PANELS = (
    "Consumer lag (records)", "Records/s",
    "Checkpoint duration", "Watermark lag",
    "DLQ share of input", "Event → feature latency",
    "API latency p50 / p95", "PSI by feature",
)

# Layout, in pixels: Grafana's 24-column grid; one grid unit of height is 37.5 px, so a 12 x 8 panel
# is 800 x 300 at the default width (the per-panel PNG's size). Panels are inset by half a gutter.
WIDTH = 1600
UNIT_H = 37.5
HEADER_H = 60
GUTTER = 8
DPI = 100

# Grafana's dark theme and its classic palette.
PAGE_BG = "#111217"
PANEL_BG = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
TEXT_DIM = "#8e8e9e"
GRID = "#2a2d33"
PALETTE = ("#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
           "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477")
NAMED_COLORS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A",
                "blue": "#5794F2", "purple": "#B877D9", "dark-red": "#C4162A", "dark-green": "#37872D"}


class Unreachable(Exception):
    pass


class QueryError(Exception):
    pass


# ---- time and durations -------------------------------------------------------------------------

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    m = DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 15s, 1m, 2h)")
    return float(m.group(1)) * UNIT_SECONDS[m.group(2)]


def prom_duration(seconds: float) -> str:
    """A duration as PromQL writes it: whole seconds (Prometheus rounds nothing for us)."""
    return f"{max(1, math.ceil(seconds))}s"


def parse_time(text: str, now: float) -> float:
    """Unix seconds, RFC 3339 / ISO 8601 (no zone = UTC), `now` or `now-30m`."""
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - parse_duration(text[4:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (unix seconds, 2026-12-07T03:00:00Z, now-30m)")
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


# ---- the dashboard ------------------------------------------------------------------------------

@dataclass
class Panel:
    id: int
    title: str
    type: str
    grid: dict
    targets: list[dict]
    unit: str | None
    thresholds: list[tuple[float | None, str]]
    threshold_lines: bool
    in_collapsed_row: bool = False   # hidden in Grafana until the row opens: left out of --panels all

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def load_panels(dashboard: dict) -> list[Panel]:
    """Every panel in dashboard order; a collapsed row's panels follow their row."""
    out = []

    def walk(panels, collapsed=False):
        for p in panels or []:
            defaults = (p.get("fieldConfig") or {}).get("defaults") or {}
            steps = ((defaults.get("thresholds") or {}).get("steps")) or []
            style = ((defaults.get("custom") or {}).get("thresholdsStyle") or {}).get("mode", "off")
            out.append(Panel(
                id=p.get("id", 0), title=p.get("title", ""), type=p.get("type", "timeseries"),
                grid=p.get("gridPos") or {"x": 0, "y": 0, "w": 12, "h": 8},
                targets=[t for t in p.get("targets") or [] if t.get("expr") and not t.get("hide")],
                unit=defaults.get("unit"),
                thresholds=[(s.get("value"), NAMED_COLORS.get(s.get("color"), s.get("color") or TEXT)) for s in steps],
                threshold_lines=style not in ("off", None), in_collapsed_row=collapsed))
            walk(p.get("panels"), collapsed=bool(p.get("collapsed")))
    walk(dashboard.get("panels"))
    return out


def select_panels(panels: list[Panel], spec: str) -> list[Panel]:
    if spec == "all":
        return [p for p in panels if not p.in_collapsed_row]
    wanted = KEY_PANELS if spec == "key" else [s.strip() for s in spec.split(",") if s.strip()]
    by_title = {p.title.lower(): p for p in panels}
    by_id = {str(p.id): p for p in panels}
    chosen, unknown = [], []
    for w in wanted:
        p = by_id.get(w) or by_title.get(w.lower())
        (chosen.append(p) if p else unknown.append(w))
    if unknown:
        titles = ", ".join(f"{p.id} {p.title!r}" for p in panels if p.type != "row")
        raise SystemExit(f"render_dashboard: no panel {', '.join(map(repr, unknown))} in the dashboard; it has: {titles}")
    return chosen


def variables(dashboard: dict, overrides: dict[str, str]) -> dict[str, str]:
    """Template variables as Grafana resolves them with "All" selected (or as given by --var)."""
    values = {}
    for v in (dashboard.get("templating") or {}).get("list") or []:
        name = v.get("name")
        current = (v.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else "|".join(current)
        if current in (None, "$__all") and v.get("includeAll"):
            current = v.get("allValue") or ".*"
        values[name] = str(current if current is not None else ".*")
    values.update(overrides)
    return values


def substitute(expr: str, values: dict[str, str], step: float, range_s: float, scrape: float) -> str:
    builtins = {
        "__rate_interval": prom_duration(max(step + scrape, 4 * scrape)),
        "__interval": prom_duration(step),
        "__interval_ms": str(int(step * 1000)),
        "__range": prom_duration(range_s),
        "__range_s": str(int(range_s)),
    }
    allv = {**values, **builtins}

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return allv.get(name, m.group(0))
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)


# ---- recording rules ----------------------------------------------------------------------------

RECORDED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]+)(\{[^}]*\})?")
MATCH_ALL = re.compile(r'^\{\s*(?:[A-Za-z_]\w*\s*=~\s*"\.\*"\s*,?\s*)*\}$')


def load_rules(path: Path | None) -> dict[str, str]:
    if not path or not path.exists():
        return {}
    import yaml
    doc = yaml.safe_load(path.read_text()) or {}
    return {r["record"]: r["expr"] for g in doc.get("groups") or [] for r in g.get("rules") or [] if "record" in r}


def inline_rules(expr: str, rules: dict[str, str]) -> str:
    """Recording-rule names replaced by their expressions (only where their matchers select everything)."""
    for _ in range(5):
        def repl(m):
            name, matchers = m.group(1), m.group(2)
            if name not in rules or (matchers and not MATCH_ALL.match(matchers)):
                return m.group(0)
            return f"({rules[name]})"
        new = RECORDED.sub(repl, expr)
        if new == expr:
            break
        expr = new
    return expr


# ---- Prometheus ---------------------------------------------------------------------------------

@dataclass
class Series:
    legend: str
    times: list[float]
    values: list[float]


@dataclass
class PanelData:
    series: list[Series] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    inlined: bool = False


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict, timeout: float | None = None) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=timeout or self.timeout) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except (ValueError, OSError):
                raise QueryError(f"HTTP {e.code} {e.reason}") from None
            raise QueryError(body.get("error") or f"HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable(f"cannot reach Prometheus at {self.url} ({reason}): start the local stack with "
                              "`make up` (or pass --prometheus URL)") from None
        if body.get("status") != "success":
            raise QueryError(body.get("error") or "query failed")
        return body["data"]

    def check(self) -> None:
        """Fails fast (3 s) when nothing answers at the URL."""
        self._get("/api/v1/query", {"query": "1"}, timeout=3)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}"})
        return data.get("result") or []


def legend_for(fmt: str | None, metric: dict, expr: str) -> str:
    if fmt:
        text = re.sub(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)
        text = " ".join(text.split())
        if text:
            return text
    name = metric.get("__name__", "")
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels else (name or expr)


def fetch_panel(prom: Prometheus, panel: Panel, values: dict[str, str], rules: dict[str, str],
                start: float, end: float, step: float, scrape: float) -> PanelData:
    data = PanelData()
    for target in panel.targets:
        expr = substitute(target["expr"], values, step, end - start, scrape)
        try:
            result = prom.query_range(expr, start, end, step)
            if not result and rules:
                inlined = inline_rules(expr, rules)
                if inlined != expr:
                    result = prom.query_range(inlined, start, end, step)
                    data.inlined = data.inlined or bool(result)
        except QueryError as e:
            data.errors.append(f"{target.get('refId', '?')}: {e}")
            continue
        for s in sorted(result, key=lambda r: legend_for(target.get("legendFormat"), r["metric"], expr)):
            points = [(float(t), float(v)) for t, v in s.get("values") or []]
            if not any(math.isfinite(v) for _, v in points):
                continue   # e.g. histogram_quantile over no traffic: NaN everywhere
            data.series.append(Series(legend_for(target.get("legendFormat"), s["metric"], expr),
                                      [t for t, _ in points], [v for _, v in points]))
    return data


# ---- units --------------------------------------------------------------------------------------

def _num(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    decimals = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(v: float, steps: tuple[str, ...], suffix: str = "") -> str:
    i = 0
    while abs(v) >= 1000 and i < len(steps) - 1:
        v /= 1000
        i += 1
    return f"{_num(v)}{steps[i]}{suffix}"


def format_value(v: float, unit: str | None) -> str:
    """Grafana's formatting of the units the dashboard uses (others: the number and the unit's name):
    records/s are `cps` (counts/sec, "c/s"), requests/s `reqps`; `rps` (Grafana's reads/sec) is
    shown as "/s"."""
    if not math.isfinite(v):
        return str(v)
    if unit in ("s", "ms"):
        s = v / 1000 if unit == "ms" else v
        a = abs(s)
        if a == 0:
            return "0 s"
        if a < 1e-3:
            return f"{_num(s * 1e6)} µs"
        if a < 1:
            return f"{_num(s * 1e3)} ms"
        if a < 60:
            return f"{_num(s)} s"
        if a < 3600:
            return f"{_num(s / 60)} min"
        if a < 86400:
            return f"{_num(s / 3600)} hour"
        return f"{_num(s / 86400)} day"
    if unit == "percentunit":
        return f"{_num(v * 100)}%"
    if unit == "percent":
        return f"{_num(v)}%"
    if unit in ("rps", "reqps", "ops", "cps"):
        return _scaled(v, ("", " K", " M", " B"), {"rps": "/s", "reqps": " req/s", "ops": " ops/s", "cps": " c/s"}[unit])
    if unit == "bytes":
        i = 0
        while abs(v) >= 1024 and i < 5:
            v /= 1024
            i += 1
        return f"{_num(v)} {('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB')[i]}"
    if unit in (None, "", "short", "none"):
        return _scaled(v, ("", " K", " Mil", " Bil", " Tri"))
    return f"{_num(v)} {unit}"


def threshold_color(v: float, steps: list[tuple[float | None, str]]) -> str:
    color = steps[0][1] if steps else PALETTE[0]
    for value, c in steps:
        if value is None or v >= value:
            color = c
    return color


# ---- drawing ------------------------------------------------------------------------------------

@dataclass
class Slot:
    """A panel's place in the image, in pixels from the top left."""
    x: float
    y: float
    w: float
    h: float


def grid_layout(panels: list[Panel], columns: int, width: float) -> tuple[list[Slot], float]:
    col_w, h = width / columns, 8 * UNIT_H
    slots = [Slot((i % columns) * col_w, HEADER_H + (i // columns) * h, col_w, h) for i in range(len(panels))]
    rows = math.ceil(len(panels) / columns)
    return slots, math.ceil(HEADER_H + rows * h)


def dashboard_layout(panels: list[Panel], width: float) -> tuple[list[Slot], float]:
    unit_w = width / 24
    slots = [Slot(p.grid.get("x", 0) * unit_w, HEADER_H + p.grid.get("y", 0) * UNIT_H,
                  p.grid.get("w", 12) * unit_w, p.grid.get("h", 8) * UNIT_H) for p in panels]
    bottom = max((s.y + s.h for s in slots), default=HEADER_H)
    return slots, math.ceil(bottom)


def to_fig(fig, height: float, x: float, y: float, w: float, h: float) -> list[float]:
    """Pixel rectangle (top-left origin) → figure fraction [left, bottom, width, height]."""
    W = fig.get_figwidth() * DPI
    return [x / W, 1 - (y + h) / height, w / W, h / height]


def draw_panel(fig, height: float, slot: Slot, panel: Panel, data: PanelData | None, start: float, end: float):
    from matplotlib.patches import FancyBboxPatch

    x, y = slot.x + GUTTER / 2, slot.y + GUTTER / 2
    w, h = slot.w - GUTTER, slot.h - GUTTER
    W = fig.get_figwidth() * DPI

    def fx(px):
        return px / W

    def fy(py):
        return 1 - py / height

    if panel.type == "row":
        fig.text(fx(x + 4), fy(y + h / 2), panel.title, color=TEXT, fontsize=12, fontweight="bold", va="center")
        return

    stat_color = None
    if panel.type == "stat" and data and data.series:
        last = [next((v for v in reversed(s.values) if math.isfinite(v)), None) for s in data.series]
        last = [v for v in last if v is not None]
        stat_color = threshold_color(max(last), panel.thresholds) if last else None
    fig.patches.append(FancyBboxPatch((fx(x), fy(y + h)), fx(w), h / height, boxstyle="round,pad=0,rounding_size=0.002",
                                      transform=fig.transFigure, facecolor=stat_color or PANEL_BG,
                                      edgecolor=BORDER, linewidth=1, zorder=-1))
    title_color = PAGE_BG if stat_color else TEXT
    fig.text(fx(x + 10), fy(y + 16), panel.title, color=title_color, fontsize=10.5, fontweight="bold", va="center")

    if data is None or (not data.series and not data.errors):
        fig.text(fx(x + w / 2), fy(y + h / 2 + 8), "No data", color=TEXT_DIM, fontsize=13, ha="center", va="center")
        return
    if data.errors and not data.series:
        fig.text(fx(x + w / 2), fy(y + h / 2 + 8), "Query error\n" + "\n".join(e[:90] for e in data.errors[:3]),
                 color=NAMED_COLORS["red"], fontsize=8.5, ha="center", va="center", wrap=True)
        return
    if panel.type == "stat":
        draw_stat(fig, height, x, y, w, h, panel, data)
        return
    draw_timeseries(fig, height, x, y, w, h, panel, data, start, end)


def draw_stat(fig, height, x, y, w, h, panel: Panel, data: PanelData):
    W = fig.get_figwidth() * DPI
    n = min(len(data.series), 4)
    for i, s in enumerate(data.series[:n]):
        v = next((v for v in reversed(s.values) if math.isfinite(v)), math.nan)
        cx = x + w * (i + 0.5) / n
        fig.text(cx / W, 1 - (y + h / 2 + 10) / height, format_value(v, panel.unit), color=PAGE_BG,
                 fontsize=26 if n == 1 else 18, fontweight="bold", ha="center", va="center")
        if n > 1 or s.legend:
            fig.text(cx / W, 1 - (y + h - 22) / height, s.legend, color=PAGE_BG, fontsize=8.5, ha="center", va="center")


def draw_timeseries(fig, height, x, y, w, h, panel: Panel, data: PanelData, start: float, end: float):
    import matplotlib.dates as mdates
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    series = data.series
    labels = [s.legend for s in series]
    longest = max((len(label) for label in labels), default=10)
    per_row = max(1, min(len(series), int((w - 20) // (longest * 6.2 + 34))))
    shown = series if len(series) <= 3 * per_row else series[: 3 * per_row - 1]
    legend_rows = math.ceil(len(shown) / per_row) + (1 if len(shown) < len(series) else 0)
    top, bottom, left, right = 30, 22 + 16 * legend_rows + 6, 62, 14
    ax = fig.add_axes(to_fig(fig, height, x + left, y + top, w - left - right, h - top - bottom))
    ax.set_facecolor(PANEL_BG)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(colors=TEXT_DIM, labelsize=8, length=0, pad=4)

    times = [datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc)]
    handles = []
    finite = []
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        ts = [datetime.fromtimestamp(t, timezone.utc) for t in s.times]
        (line,) = ax.plot(ts, s.values, color=color, linewidth=1.6, solid_joinstyle="round")
        handles.append(Line2D([], [], color=color, linewidth=3))
        finite += [v for v in s.values if math.isfinite(v)]
    ax.set_xlim(times[0], times[1])
    lo, hi = (min(finite), max(finite)) if finite else (0, 1)
    if lo >= 0:
        ax.set_ylim(bottom=0, top=hi * 1.08 if hi > 0 else 1)
    if panel.threshold_lines:
        ymin, ymax = ax.get_ylim()
        for value, color in panel.thresholds:
            if value is not None and ymin <= value <= ymax:
                ax.axhline(value, color=color, linewidth=1, linestyle=(0, (4, 3)), alpha=0.9)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, panel.unit)))
    span = end - start
    locator = mdates.AutoDateLocator(tz=timezone.utc, minticks=3, maxticks=max(3, int(w // 70)))
    lo_x, hi_x = mdates.date2num(times[0]), mdates.date2num(times[1])
    margin = (hi_x - lo_x) * 0.03   # a label centred on either edge would spill out of the panel
    ax.xaxis.set_major_locator(FixedLocator([t for t in locator.tick_values(times[0], times[1])
                                             if lo_x + margin <= t <= hi_x - margin]))
    fmt = "%H:%M:%S" if span <= 600 else "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=timezone.utc))

    labels = [s.legend for s in shown]
    hs = handles[: len(shown)]
    if len(shown) < len(series):
        labels.append(f"+{len(series) - len(shown)} more")
        hs.append(Line2D([], [], color=PANEL_BG))
    # matplotlib fills a legend column by column; Grafana's list legend reads row by row.
    rows = math.ceil(len(labels) / per_row)
    order = [r * per_row + c for c in range(per_row) for r in range(rows) if r * per_row + c < len(labels)]
    labels, hs = [labels[i] for i in order], [hs[i] for i in order]
    axes_h = h - top - bottom
    leg = ax.legend(hs, labels, loc="upper left", bbox_to_anchor=(-(left - 12) / (w - left - right), -22 / axes_h),
                    ncol=per_row, frameon=False, fontsize=8, labelcolor=TEXT, handlelength=1.0,
                    handletextpad=0.5, columnspacing=1.6, borderaxespad=0, borderpad=0)
    leg.set_in_layout(False)
    if data.errors:
        ax.text(1, 1.02, "⚠ " + data.errors[0][:80], transform=ax.transAxes, ha="right", va="bottom",
                color=NAMED_COLORS["red"], fontsize=7.5)


def render(panels: list[Panel], datas: list[PanelData | None], slots: list[Slot], height: float, width: float,
           header: str | None, start: float, end: float, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=PAGE_BG)
    FigureCanvasAgg(fig)
    if header:
        title, sub = header.split("\n", 1)
        fig.text(12 / width, 1 - 22 / height, title, color=TEXT, fontsize=14, fontweight="bold", va="center")
        fig.text(12 / width, 1 - 44 / height, sub, color=TEXT_DIM, fontsize=9, va="center")
    for panel, data, slot in zip(panels, datas, slots):
        draw_panel(fig, height, slot, panel, data, start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor=PAGE_BG)


# ---- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL (default: the local stack's)")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD, help="Grafana dashboard JSON")
    parser.add_argument("--rules", type=Path, default=RULES, help="recording rules to inline where their series are missing ('' for none)")
    parser.add_argument("--minutes", type=float, help="the last N minutes (default: the dashboard's own range, 30)")
    parser.add_argument("--start", help="range start: unix seconds, 2026-12-07T03:00:00Z or now-1h")
    parser.add_argument("--end", help="range end (default now)")
    parser.add_argument("--step", type=parse_duration, help="query resolution (default: range / 300, at least the scrape interval)")
    parser.add_argument("--scrape-interval", type=parse_duration, default=SCRAPE_INTERVAL,
                        help="for $__rate_interval (default 5s, the stack's)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a dashboard variable (default: All)")
    parser.add_argument("--panels", default="key", help="key (default), all, or titles/ids separated by commas")
    parser.add_argument("--columns", type=int, default=2, help="panels per row unless --panels all (default 2)")
    parser.add_argument("--per-panel", action="store_true", help="also one PNG per panel (800 x 300)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="default docs/img")
    parser.add_argument("--name", default="dashboard", help="file name stem (default dashboard)")
    args = parser.parse_args(argv)

    now = datetime.now(timezone.utc).timestamp()
    try:
        end = parse_time(args.end, now) if args.end else now
        if args.start:
            start = parse_time(args.start, now)
        else:
            minutes = args.minutes
            if minutes is None:
                frm = ((json.loads(args.dashboard.read_text()).get("time") or {}).get("from") or "now-30m")
                minutes = parse_duration(frm[4:]) / 60 if frm.startswith("now-") else 30
            start = end - minutes * 60
    except (argparse.ArgumentTypeError, OSError, ValueError) as e:
        parser.error(str(e))
    if end <= start:
        parser.error("the range is empty: --end must be after --start")
    step = args.step or max(args.scrape_interval, math.ceil((end - start) / 300))
    overrides = {}
    for v in args.var:
        name, sep, value = v.partition("=")
        if not sep:
            parser.error(f"--var takes NAME=VALUE, not {v!r}")
        overrides[name] = value

    dashboard = json.loads(args.dashboard.read_text())
    panels = select_panels(load_panels(dashboard), args.panels)
    values = variables(dashboard, overrides)
    rules = load_rules(args.rules) if str(args.rules) not in ("", ".") else {}
    prom = Prometheus(args.prometheus)
    try:
        prom.check()
        datas = [None if p.type == "row" else fetch_panel(prom, p, values, rules, start, end, step, args.scrape_interval)
                 for p in panels]
    except Unreachable as e:
        print(f"render_dashboard: {e}", file=sys.stderr)
        return 2

    if args.panels == "all":
        slots, height = dashboard_layout(panels, WIDTH)
    else:
        slots, height = grid_layout(panels, args.columns, WIDTH)
    fmt = "%Y-%m-%d %H:%M:%S"
    rng = (f"{datetime.fromtimestamp(start, timezone.utc).strftime(fmt)} to "
           f"{datetime.fromtimestamp(end, timezone.utc).strftime(fmt)} UTC")
    header = (f"{dashboard.get('title', 'dashboard')}\n{rng}  ·  step {step:g}s  ·  job={values.get('job', '.*')}  ·  "
              f"{args.prometheus}  ·  rendered by scripts/render_dashboard.py from {args.dashboard.name}")
    main_png = args.out_dir / f"{args.name}.png"
    render(panels, datas, slots, height, WIDTH, header, start, end, main_png)
    written = [main_png]
    if args.per_panel:
        for p, d in zip(panels, datas):
            if p.type == "row":
                continue
            path = args.out_dir / f"{args.name}-{p.slug}.png"
            render([p], [d], [Slot(0, 0, 800, 300)], 300, 800, None, start, end, path)
            written.append(path)

    failed = False
    for p, d in zip(panels, datas):
        if d is None:
            continue
        if d.errors:
            failed = True
        state = (f"{len(d.series)} series" if d.series else "no data") + (" (recording rule inlined)" if d.inlined else "")
        errors = "".join(f"; query error {e}" for e in d.errors)
        print(f"  {p.title:<36} {state}{errors}")
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
