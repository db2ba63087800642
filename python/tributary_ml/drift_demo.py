"""The drift check on the real pipeline: `generate --amount-shift F --shift-after N` through `txn-features`,
against the same data unshifted.

    python -m tributary_ml.drift_demo [--count 40000] [--amount-shift 3] [--chart python/docs/drift-real-shift.png]

For each of two runs (shift factor 1 and F, same seed) a broker and a Redis of its own (realdata.Stack),
`generate --streams txn,devices --count N --rate 0 --cards C`, `txn-features --bounded` into an offline log;
then drift.check with reference = the rows with event time before record N/2's (the shift point) and recent
= the rows after it. The generators' event time runs at 5 000 records/s, so N records span N/5000 s: the
windows are split by the shift point, not by hours. Monitored: `amount_minor`, `avg_24h`, `avg_5m` (these
keep their distribution over time when nothing shifts); `sum_5m` and `count_5m` are reported but not
alerted on, because on a span of seconds every card's 5-minute window only grows (they drift without a
shift). Exit 0 when the shifted run alerts and the unshifted one does not; 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from . import drift, realdata
from .contract import resolve

MONITORED = ("txn_profile:amount_minor", "txn_profile:avg_24h", "txn_stats_5m:avg_5m")
REPORTED = ("txn_stats_5m:sum_5m", "txn_stats_5m:count_5m")
START_MS = 1_767_225_600_000  # generate's default --start (2026-01-01T00:00:00Z)
EVENTS_PER_SECOND = 5_000     # generate's event-time rate with --rate 0


def one_run(work: Path, count: int, cards: int, factor: float, shift_after: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    with realdata.Stack(work) as st:
        st.generate("txn,devices", "--count", str(count), "--cards", str(cards),
                    "--amount-shift", str(factor), "--shift-after", str(shift_after))
        st.job("txn-features")
    df = drift.load(st.offline, MONITORED + REPORTED)
    cut = pd.Timestamp(START_MS + shift_after * 1000 // EVENTS_PER_SECOND, unit="ms", tz="UTC")
    end = pd.Timestamp(START_MS + count * 1000 // EVENTS_PER_SECOND, unit="ms", tz="UTC")
    ts = df["event_timestamp"]
    start = pd.Timestamp(START_MS, unit="ms", tz="UTC")
    return df[(ts >= start) & (ts < cut)], df[(ts >= cut) & (ts <= end)]  # too-late records (a day early) left out


def run(count: int = 40_000, cards: int = 2_000, factor: float = 3.0, work: Path | None = None,
        chart: Path | None = None, unshifted_chart: Path | None = None) -> dict:
    work = Path(work or tempfile.mkdtemp(prefix="tributary-drift-"))
    shift_after = count // 2
    out = {}
    for name, f, png in (("unshifted", 1.0, unshifted_chart), ("shifted", factor, chart)):
        ref, recent = one_run(work / name, count, cards, f, shift_after)
        res = drift.check(ref, recent, MONITORED + REPORTED)
        monitored = [r for r in res if r.feature in MONITORED]
        out[name] = {"alert": any(r.alert for r in monitored), "reference_rows": len(ref), "recent_rows": len(recent),
                     "features": {r.feature: {"psi": r.psi, "js": r.js, "alert": r.alert, "monitored": r.feature in MONITORED}
                                  for r in res}}
        if png:
            png.parent.mkdir(parents=True, exist_ok=True)
            drift.chart(ref, recent, monitored, png, title=f"txn-features on generate --amount-shift {f:g} --shift-after "
                        f"{shift_after}: before (reference) vs after (recent)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=40_000)
    ap.add_argument("--cards", type=int, default=2_000)
    ap.add_argument("--amount-shift", type=float, default=3.0)
    ap.add_argument("--work", default=None, help="work directory (default: a new temporary one)")
    ap.add_argument("--chart", default="python/docs/drift-real-shift.png")
    ap.add_argument("--unshifted-chart", default=None)
    a = ap.parse_args(argv)
    if not realdata.available("generate", "txn-features"):
        print(f"drift_demo: needs release builds of generate and txn-features in {realdata.RELEASE}", file=sys.stderr)
        return 2
    res = run(a.count, a.cards, a.amount_shift, Path(a.work) if a.work else None, resolve(a.chart) if a.chart else None,
              resolve(a.unshifted_chart) if a.unshifted_chart else None)
    for name, r in res.items():
        print(f"{name}: reference {r['reference_rows']} rows, recent {r['recent_rows']} rows — {'ALERT' if r['alert'] else 'no alert'}")
        for f, m in r["features"].items():
            tag = ("ALERT" if m["alert"] else "ok") if m["monitored"] else "(reported only)"
            print(f"  {f:32s} PSI {m['psi']:7.4f}  JS {m['js']:7.4f}  {tag}")
    return 0 if res["shifted"]["alert"] and not res["unshifted"]["alert"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
