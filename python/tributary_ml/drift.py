"""Drift check: PSI and Jensen–Shannon divergence per key feature, reference window vs recent window,
both read from the offline log (the jobs' Avro files).

    python -m tributary_ml.drift [--recent-hours 1] [--reference-hours 24] [--chart drift.png]
                                 [--metrics-file drift.prom] [--psi-threshold 0.2] [--js-threshold 0.1]

Windows: recent = the last --recent-hours before the log's newest event (or --now); reference = the
--reference-hours before that. Bins: reference deciles (distinct values for features with few of them), plus
a bin for nulls. PSI = Σ (r − e)·ln(r / e); JS = Jensen–Shannon divergence, base 2 (0…1).
Alert when any feature's PSI or JS crosses its threshold: exit status 1, `drift_alert 1`. Metrics
(`drift_psi{feature}`, `drift_js{feature}`, `drift_alert`) go to a Prometheus textfile (node-exporter
textfile collector format) when --metrics-file is given, and are printed.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import offline
from .contract import env, resolve

KEY_FEATURES = (
    "txn_profile:amount_minor", "txn_profile:avg_24h", "txn_profile:geo_mismatch_ratio_last_n",
    "txn_profile:device_mismatch_ratio_last_n", "txn_profile:seconds_since_last_txn",
    "txn_stats_5m:count_5m", "txn_stats_5m:geo_mismatch_ratio_5m", "txn_device:device_age_days",
)
EPS = 1e-4


@dataclass
class FeatureDrift:
    feature: str
    psi: float
    js: float
    n_ref: int
    n_recent: int
    alert: bool


def _bins(ref: np.ndarray, n_bins: int = 10) -> np.ndarray:
    vals = np.unique(ref)
    if len(vals) <= n_bins:  # discrete: one bin per value (edges between them)
        mids = (vals[:-1] + vals[1:]) / 2 if len(vals) > 1 else np.array([])
        return np.concatenate([[-np.inf], mids, [np.inf]])
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.concatenate([[-np.inf], edges, [np.inf]])


def distributions(ref: pd.Series, recent: pd.Series, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    r = ref.to_numpy(dtype=float, na_value=np.nan)
    c = recent.to_numpy(dtype=float, na_value=np.nan)
    r_ok, c_ok = r[~np.isnan(r)], c[~np.isnan(c)]
    edges = _bins(r_ok, n_bins) if len(r_ok) else np.array([-np.inf, np.inf])
    hr = np.append(np.histogram(r_ok, edges)[0], np.isnan(r).sum()).astype(float)
    hc = np.append(np.histogram(c_ok, edges)[0], np.isnan(c).sum()).astype(float)
    return hr / max(hr.sum(), 1), hc / max(hc.sum(), 1)


def psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.clip(p, EPS, None), np.clip(q, EPS, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))
    return max(0.0, (kl(p, m) + kl(q, m)) / 2)


def load(offline_dir, features=KEY_FEATURES) -> pd.DataFrame:
    """One row per transaction: the key features ("view:feature" columns) and event_timestamp."""
    out = None
    for view in sorted({f.split(":")[0] for f in features}):
        d = offline.read_view(offline_dir, view)
        cols = [f.split(":")[1] for f in features if f.startswith(view + ":")]
        d = d[["card_id", "event_timestamp", *cols]].rename(columns={c: f"{view}:{c}" for c in cols})
        out = d if out is None else out.merge(d, on=["card_id", "event_timestamp"], how="outer")
    return out.sort_values("event_timestamp").reset_index(drop=True)


def windows(df: pd.DataFrame, recent_hours: float, reference_hours: float, now=None):
    end = pd.Timestamp(now) if now is not None else df["event_timestamp"].max()
    cut = end - pd.Timedelta(hours=recent_hours)
    start = cut - pd.Timedelta(hours=reference_hours)
    ts = df["event_timestamp"]
    return df[(ts > start) & (ts <= cut)], df[(ts > cut) & (ts <= end)]


def check(ref: pd.DataFrame, recent: pd.DataFrame, features=KEY_FEATURES, psi_threshold: float = 0.2,
          js_threshold: float = 0.1) -> list[FeatureDrift]:
    out = []
    for f in features:
        p, q = distributions(ref[f], recent[f])
        a, b = psi(p, q), js(p, q)
        out.append(FeatureDrift(f, a, b, len(ref), len(recent), a > psi_threshold or b > js_threshold))
    return out


def metrics_text(results: list[FeatureDrift]) -> str:
    lines = ["# HELP drift_psi Population stability index, reference vs recent window",
             "# TYPE drift_psi gauge"]
    lines += [f'drift_psi{{feature="{r.feature}"}} {r.psi:.6f}' for r in results]
    lines += ["# HELP drift_js Jensen-Shannon divergence (base 2), reference vs recent window", "# TYPE drift_js gauge"]
    lines += [f'drift_js{{feature="{r.feature}"}} {r.js:.6f}' for r in results]
    lines += ["# HELP drift_alert 1 when a feature crossed a drift threshold", "# TYPE drift_alert gauge",
              f"drift_alert {int(any(r.alert for r in results))}"]
    return "\n".join(lines) + "\n"


def chart(ref: pd.DataFrame, recent: pd.DataFrame, results: list[FeatureDrift], path: str | Path,
          title: str = "reference (before) vs recent (after)") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(results)
    cols = 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=90)
    for ax, r in zip(np.ravel(axes), results):
        a = ref[r.feature].dropna().to_numpy(float)
        b = recent[r.feature].dropna().to_numpy(float)
        both = np.concatenate([a, b]) if len(a) + len(b) else np.array([0.0])
        hi = np.quantile(both, 0.99) if len(both) else 1
        lo = both.min() if len(both) else 0
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
        ax.hist(a, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(b, bins=bins, density=True, alpha=0.5, label="recent")
        ax.set_title(f"{r.feature.split(':')[1]}\nPSI {r.psi:.3f}  JS {r.js:.3f}" + ("  ALERT" if r.alert else ""),
                     fontsize=8, color="red" if r.alert else "black")
        ax.tick_params(labelsize=6)
    for ax in np.ravel(axes)[n:]:
        ax.axis("off")
    np.ravel(axes)[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offline-dir", default=env("TRIBUTARY_OFFLINE_DIR"))
    ap.add_argument("--recent-hours", type=float, default=1.0)
    ap.add_argument("--reference-hours", type=float, default=24.0)
    ap.add_argument("--now", default=None, help="end of the recent window (default: the newest event)")
    ap.add_argument("--psi-threshold", type=float, default=0.2)
    ap.add_argument("--js-threshold", type=float, default=0.1)
    ap.add_argument("--chart", default=None, help="PNG: reference vs recent histograms")
    ap.add_argument("--metrics-file", default=None, help="Prometheus textfile to write")
    a = ap.parse_args(argv)
    df = load(resolve(a.offline_dir))
    if df.empty:
        print("drift: no rows in the offline log", file=sys.stderr)
        return 2
    ref, recent = windows(df, a.recent_hours, a.reference_hours, a.now)
    if len(ref) < 50 or len(recent) < 50:
        print(f"drift: too few rows (reference {len(ref)}, recent {len(recent)})", file=sys.stderr)
        return 2
    results = check(ref, recent, psi_threshold=a.psi_threshold, js_threshold=a.js_threshold)
    print(f"drift: reference {len(ref)} rows, recent {len(recent)} rows "
          f"(thresholds PSI {a.psi_threshold}, JS {a.js_threshold})")
    for r in results:
        print(f"  {r.feature:45s} PSI {r.psi:7.4f}  JS {r.js:7.4f}  {'ALERT' if r.alert else 'ok'}")
    text = metrics_text(results)
    if a.metrics_file:
        p = resolve(a.metrics_file)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(p)
    if a.chart:
        chart(ref, recent, results, resolve(a.chart))
    alert = any(r.alert for r in results)
    print("drift: ALERT" if alert else "drift: no drift above the thresholds")
    return 1 if alert else 0


if __name__ == "__main__":
    raise SystemExit(main())
