"""Test-data writer standing in for the Swift feature jobs until they exist.

Writes, from one seed, exactly what the contract says the jobs write:
- the offline log: `<offline-dir>/<view>/date=YYYY-MM-DD/hour=HH/<name>.avro` (Avro object container files),
- the online rows: Redis hashes in Feast's layout (newest event time wins),
- a labels CSV `txn_id,card_id,event_time,pattern` for the injected fraud, and one of purchases
  `event_id,user_id,event_time,action` (`--click-labels`) for the personalisation model.
Features are computed "as of" each transaction (the transaction itself included). Nothing downstream
knows this module: the jobs' real output replaces it with no code change.

    python -m tributary_ml.synthetic --offline-dir data/offline --labels data/labels.csv --redis
"""
from __future__ import annotations

import argparse
import bisect
import csv
import os
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fastavro
import numpy as np

from . import contract
from .contract import VIEWS, avro_schema, env, resolve
from .layout import write_rows

COUNTRIES = ["GB", "FR", "DE", "ES", "IT", "NL", "US", "BR", "JP", "AU", "ZA", "IN"]
OSES = ["ios", "android", "windows", "macos", "linux"]
PATTERNS = ["burst", "geo_hopping", "new_device", "unusual_amount"]
LAST_N = 10


@dataclass
class Dataset:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    labels: list[tuple[str, str, int, str]] = field(default_factory=list)
    click_labels: list[tuple[str, str, int, str]] = field(default_factory=list)  # purchases
    start_ms: int = 0
    end_ms: int = 0


def _card_state():
    return {"times": [], "amounts": [], "geo": deque(maxlen=LAST_N), "dev": deque(maxlen=LAST_N), "devices": set()}


def generate(n_txn: int = 20000, n_cards: int = 400, n_users: int = 200, n_clicks: int = 8000,
             hours: float = 6.0, start_ms: int = 1_767_225_600_000, seed: int = 42, fraud_share: float = 0.01,
             shift_after: float | None = None, shift_factor: float = 2.0) -> Dataset:
    """A deterministic data set. `shift_after` (0..1): transactions after that share of the time span get
    amounts × shift_factor and more foreign countries (a simulated distribution shift for drift tests)."""
    rng = np.random.default_rng(seed)
    ds = Dataset(start_ms=start_ms, end_ms=start_ms + int(hours * 3600_000))
    span = ds.end_ms - ds.start_ms
    # cards: home country, usual device, usual amount; skewed popularity (hot cards)
    home = rng.choice(COUNTRIES[:6], n_cards)
    usual_amount = np.exp(rng.normal(8.0, 0.7, n_cards))  # minor units, ~ 30 GBP median
    devices_of = [[f"d{c}-{k}" for k in range(int(rng.integers(1, 3)))] for c in range(n_cards)]
    dev_os: dict[str, str] = {}
    dev_born: dict[str, int] = {}
    def device(d: str) -> None:
        if d not in dev_os:
            dev_os[d] = OSES[int(rng.integers(len(OSES)))]
            dev_born[d] = start_ms - int(rng.uniform(0, 400) * 86400_000)
    for ds_ in devices_of:
        for d in ds_:
            device(d)
    pop = (np.arange(1, n_cards + 1) ** -0.8)
    pop /= pop.sum()

    txns = []  # (time, card, amount, country, device, fraud pattern or None)
    times = np.sort(rng.uniform(0, span, n_txn).astype(np.int64)) + start_ms
    cards = rng.choice(n_cards, n_txn, p=pop)
    for t, c in zip(times, cards):
        shifted = shift_after is not None and t >= start_ms + shift_after * span
        amt = usual_amount[c] * np.exp(rng.normal(0, 0.5)) * (shift_factor if shifted else 1.0)
        foreign_p = 0.35 if shifted else 0.05
        country = home[c] if rng.random() > foreign_p else COUNTRIES[int(rng.integers(len(COUNTRIES)))]
        dev = devices_of[c][int(rng.integers(len(devices_of[c])))] if rng.random() > 0.03 else f"d{c}-x{int(rng.integers(1000))}"
        txns.append([int(t), int(c), max(1, int(amt)), country, dev, None])
    # injected fraud: blocks of 8 transactions on one card, one of four patterns
    n_blocks = max(1, int(n_txn * fraud_share / 8))
    for b in range(n_blocks):
        c = int(rng.integers(n_cards))
        t0 = start_ms + int(rng.uniform(0.02, 0.98) * span)
        pat = PATTERNS[b % len(PATTERNS)]
        for k in range(8):
            if pat == "burst":
                t = t0 + int(k * rng.uniform(50, 200)); amt = usual_amount[c] * rng.uniform(0.5, 2)
                country, dev = home[c], devices_of[c][0]
            elif pat == "geo_hopping":
                t = t0 + int(k * rng.uniform(20_000, 90_000)); amt = usual_amount[c] * rng.uniform(0.5, 3)
                country, dev = COUNTRIES[(k * 5 + b) % len(COUNTRIES)], devices_of[c][0]
            elif pat == "new_device":
                t = t0 + int(k * rng.uniform(30_000, 120_000)); amt = usual_amount[c] * rng.uniform(1, 4)
                country, dev = home[c], f"fraud-dev-{b}-{k}"
            else:
                t = t0 + int(k * rng.uniform(60_000, 300_000)); amt = usual_amount[c] * rng.uniform(20, 60)
                country, dev = home[c], devices_of[c][0]
            txns.append([int(t), c, max(1, int(amt)), country, dev, pat])
    txns.sort(key=lambda x: (x[0], x[1]))
    # unique event times per card (the point-in-time join and newest-wins need a total order per entity)
    last_t: dict[int, int] = {}
    for x in txns:
        if x[1] in last_t and x[0] <= last_t[x[1]]:
            x[0] = last_t[x[1]] + 1
        last_t[x[1]] = x[0]
    txns.sort(key=lambda x: (x[0], x[1]))

    state: dict[int, dict] = defaultdict(_card_state)
    for i, (t, c, amt, country, dev, pat) in enumerate(txns):
        device(dev)
        card = f"card-{c:05d}"
        s = state[c]
        prev = s["times"][-1] if s["times"] else None
        s["times"].append(t); s["amounts"].append(amt)
        s["geo"].append(country != home[c]); s["dev"].append(dev not in s["devices"] and bool(s["devices"]))
        s["devices"].add(dev)
        tl = s["times"]
        def window(ms: int) -> tuple[int, int]:
            j = bisect.bisect_right(tl, t - ms)  # (t - ms, t]
            return len(tl) - j, int(sum(s["amounts"][j:]))
        c5, s5 = window(300_000)
        j5 = len(tl) - c5
        s.setdefault("geo_all", []).append(country != home[c])
        geo5 = float(np.mean(s["geo_all"][j5:]))
        c30, _ = window(1_800_000)
        c24, s24 = window(86_400_000)
        ds.rows["txn_stats_5m"].append({"card_id": card, "event_timestamp": t, "count_5m": c5, "sum_5m": s5,
                                        "avg_5m": s5 / c5, "geo_mismatch_ratio_5m": geo5})
        ds.rows["txn_profile"].append({
            "card_id": card, "event_timestamp": t, "count_30m": c30, "count_24h": c24, "sum_24h": s24,
            "avg_24h": s24 / c24, "geo_mismatch_ratio_last_n": float(np.mean(s["geo"])),
            "device_mismatch_ratio_last_n": float(np.mean(s["dev"])),
            "seconds_since_last_txn": None if prev is None else (t - prev) / 1000.0, "amount_minor": amt})
        ds.rows["txn_device"].append({"card_id": card, "event_timestamp": t, "device_os": dev_os[dev],
                                      "device_age_days": max(0.0, (t - dev_born[dev]) / 86400_000),
                                      "device_country_mismatch": int(country != home[c])})
        if pat:
            ds.labels.append((f"txn-{i:07d}", card, t, pat))
    _windows(ds, txns)
    _clicks(ds, rng, n_users, n_clicks, start_ms, span)
    return ds


def _windows(ds: Dataset, txns) -> None:
    per: dict[tuple[int, int], list[int]] = defaultdict(list)
    for t, c, amt, *_ in txns:
        per[(c, t // 300_000)].append(amt)
    for (c, w), amts in sorted(per.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ws = w * 300_000
        ds.rows["txn_window_5m"].append({"card_id": f"card-{c:05d}", "event_timestamp": ws + 300_000 - 1,
                                         "window_start": ws, "count": len(amts), "sum": sum(amts),
                                         "avg": sum(amts) / len(amts)})
    # sliding 30 min every 5 min: the six 5-min buckets ending at each bucket end
    by_card: dict[int, dict[int, list[int]]] = defaultdict(dict)
    for (c, w), amts in per.items():
        by_card[c][w] = amts
    out = []
    for c, buckets in by_card.items():
        ends = sorted({w + k for w in buckets for k in range(6)})
        for e in ends:
            amts = [a for k in range(6) for a in buckets.get(e - k, [])]
            if amts:
                ws = (e - 5) * 300_000
                out.append({"card_id": f"card-{c:05d}", "event_timestamp": ws + 1_800_000 - 1, "window_start": ws,
                            "count": len(amts), "sum": sum(amts), "avg": sum(amts) / len(amts)})
    out.sort(key=lambda r: (r["event_timestamp"], r["card_id"]))
    ds.rows["txn_window_30m"] = out


def _clicks(ds: Dataset, rng, n_users: int, n_clicks: int, start_ms: int, span: int) -> None:
    """Clicks in sessions, like the click generator's users: activity skewed (low user numbers browse
    most), a session = a burst of clicks 10–90 s apart (12 on average for buyers, 6 for others); buyers (35 % of the most active users down to 5 % of
    the least, a fifth overall) purchase 12 % of their clicks, everyone else 1 % (`ds.click_labels`)."""
    act = (np.arange(1, n_users + 1) ** -0.3)
    act /= act.sum()
    rank = np.arange(n_users) / max(1, n_users)
    buyer = rng.random(n_users) < 0.35 - 0.3 * rank
    events: list[tuple[int, int]] = []
    while len(events) < n_clicks:
        u = int(rng.choice(n_users, p=act))
        t = start_ms + int(rng.uniform(0, span))
        for _ in range(int(rng.geometric(1 / (12 if buyer[u] else 6)))):  # buyers browse longer sessions
            events.append((t, u))
            t += int(rng.uniform(10_000, 90_000))
    events = sorted(e for e in events[:n_clicks] if e[0] < start_ms + span)
    sess: dict[int, dict] = {}
    hour: dict[int, deque] = defaultdict(deque)
    last_t: dict[int, int] = {}
    for k, (t, u) in enumerate(events):
        if u in last_t and t <= last_t[u]:
            t = last_t[u] + 1
        last_t[u] = t
        uid = f"user-{u:05d}"
        s = sess.get(u)
        if s is not None and t - s["last"] > 1_800_000:  # 30 min inactivity closes a session
            dwell = (s["last"] - s["start"]) / 1000.0
            ds.rows["user_last_session"].append({
                "user_id": uid, "event_timestamp": s["last"] + 1_800_000 - 1, "last_session_pages": s["clicks"],
                "last_session_dwell_seconds": dwell, "last_session_dwell_per_page_seconds": dwell / s["clicks"],
                "last_session_distinct_items": len(s["items"])})
            s = None
        if s is None:
            s = sess[u] = {"start": t, "last": t, "clicks": 0, "items": set()}
        s["clicks"] += 1; s["last"] = t; s["items"].add(int(rng.integers(0, 500)))
        h = hour[u]; h.append(t)
        while h[0] <= t - 3600_000:
            h.popleft()
        ds.rows["user_session_live"].append({
            "user_id": uid, "event_timestamp": t, "session_clicks": s["clicks"],
            "session_dwell_seconds": (t - s["start"]) / 1000.0, "session_distinct_items": len(s["items"]),
            "clicks_1h": len(h)})
        if rng.random() < (0.12 if buyer[u] else 0.01):
            ds.click_labels.append((f"c-{k:07d}", uid, t, "PURCHASE"))
    ds.rows["user_session_live"].sort(key=lambda r: (r["event_timestamp"], r["user_id"]))
    ds.rows["user_last_session"].sort(key=lambda r: (r["event_timestamp"], r["user_id"]))


# --- writers -------------------------------------------------------------------------------------

def write_offline(ds: Dataset, offline_dir: str | os.PathLike, name: str = "part-synthetic",
                  codec: str = "deflate") -> list[Path]:
    """Avro files in the contract's layout, one per view and UTC hour."""
    root = Path(offline_dir)
    written = []
    for view_name, rows in ds.rows.items():
        view = VIEWS[view_name]
        schema = fastavro.parse_schema(avro_schema(view))
        parts: dict[tuple[str, str], list] = defaultdict(list)
        for r in rows:
            d = datetime.fromtimestamp(r["event_timestamp"] / 1000, tz=timezone.utc)
            parts[(d.strftime("%Y-%m-%d"), d.strftime("%H"))].append(r)
        for (date, hour), rs in sorted(parts.items()):
            p = root / view_name / f"date={date}" / f"hour={hour}" / f"{name}.avro"
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.parent / f".{p.name}.tmp"  # uncommitted until renamed, as the jobs do
            with open(tmp, "wb") as f:
                fastavro.writer(f, schema, rs, codec=codec)
            tmp.rename(p)
            written.append(p)
    return written


def write_online(ds: Dataset, client, project: str | None = None, views=None) -> int:
    """All rows into Redis in event-time order (newest wins, like the jobs)."""
    project = project or env("FEAST_PROJECT")
    n = 0
    for v in contract.ONLINE_VIEWS:
        if views and v.name not in views:
            continue
        rows = ((r[v.entity], r["event_timestamp"], r) for r in ds.rows[v.name])
        n += write_rows(client, project, v.entity, v.name, v.features, rows)
    return n


def _write_csv(path: str | os.PathLike, header: list[str], rows) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_labels(ds: Dataset, path: str | os.PathLike) -> None:
    """CSV `txn_id,card_id,event_time,pattern` of the injected fraud (generate --labels's format)."""
    _write_csv(path, ["txn_id", "card_id", "event_time", "pattern"], ds.labels)


def write_click_labels(ds: Dataset, path: str | os.PathLike) -> None:
    """CSV `event_id,user_id,event_time,action` of the purchases (generate --click-labels's format)."""
    _write_csv(path, ["event_id", "user_id", "event_time", "action"], ds.click_labels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offline-dir", default=env("TRIBUTARY_OFFLINE_DIR"))
    ap.add_argument("--labels", default=None, help="labels CSV path")
    ap.add_argument("--click-labels", default=None, help="purchase labels CSV path (personalisation)")
    ap.add_argument("--redis", action="store_true", help="also write the online rows to REDIS_HOST:REDIS_PORT")
    ap.add_argument("--txns", type=int, default=20000)
    ap.add_argument("--cards", type=int, default=400)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--clicks", type=int, default=8000)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start-ms", type=int, default=1_767_225_600_000)
    ap.add_argument("--shift-after", type=float, default=None, help="simulate a distribution shift after this share of time")
    a = ap.parse_args(argv)
    ds = generate(n_txn=a.txns, n_cards=a.cards, n_users=a.users, n_clicks=a.clicks, hours=a.hours, seed=a.seed, start_ms=a.start_ms, shift_after=a.shift_after)
    files = write_offline(ds, resolve(a.offline_dir))
    print(f"synthetic: {sum(len(r) for r in ds.rows.values())} rows in {len(files)} files under {a.offline_dir}; "
          f"{len(ds.labels)} fraud labels")
    if a.labels:
        write_labels(ds, resolve(a.labels))
    if a.click_labels:
        write_click_labels(ds, resolve(a.click_labels))
        print(f"synthetic: {len(ds.click_labels)} purchase labels in {a.click_labels}")
    if a.redis:
        import redis
        r = redis.Redis(host=env("REDIS_HOST"), port=int(env("REDIS_PORT")))
        print(f"synthetic: {write_online(ds, r)} online rows written to Redis")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
