"""Online/offline parity: Feast's point-in-time `get_historical_features` against the online values.

Two modes:
- `replay` (default): for sampled (entity, time t) pairs, the entity's offline rows up to t are written to a
  scratch Redis database in shuffled arrival order by the jobs' write rule (newest event time wins), read
  back the way the scoring service reads (Feast layout, a view older than its ttl at t is missing), and
  compared with Feast's historical value at t. Proves: online serving = point-in-time offline semantics.
- `snapshot`: the live online store (REDIS_HOST:REDIS_PORT) for sampled entities, compared with Feast's
  historical value at each view's stored `_ts`. Proves: what the jobs wrote online = their offline log.
Integers must be equal, floats within 1e-9 relative, strings equal, nulls on both sides.
Feast 0.67 drops entity rows that have no source row inside the ttl: results are left-joined back.

    python -m tributary_ml.parity [--mode replay|snapshot] [--samples 300]
"""
from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field

import pandas as pd

from . import contract, feast_repo, layout, offline
from .contract import env, resolve

FLOAT_REL_TOL = 1e-9


@dataclass
class Report:
    samples: int = 0
    values: int = 0
    missing_both: int = 0
    mismatches: list = field(default_factory=list)
    ties_skipped: int = 0

    @property
    def ok(self) -> bool:
        return self.samples > 0 and not self.mismatches

    def __str__(self) -> str:
        s = (f"parity: {self.samples} samples, {self.values} values compared ({self.missing_both} missing on both "
             f"sides), {len(self.mismatches)} mismatches, {self.ties_skipped} tied timestamps skipped")
        return s + "".join(f"\n  {m}" for m in self.mismatches[:20])


def same(a, b, feast_type: str) -> bool:
    na = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA
    nb = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    if na or nb:
        return na and nb
    if feast_type == "Int64":
        return int(a) == int(b) and float(a) == float(b)
    if feast_type == "Float64":
        a, b = float(a), float(b)
        return a == b or abs(a - b) <= FLOAT_REL_TOL * max(abs(a), abs(b))
    return str(a) == str(b)


def historical(store, entity: str, views, points: pd.DataFrame) -> pd.DataFrame:
    """Feast's values at (entity, event_timestamp) rows, one output row per input row.

    One query per view, each left-joined back: Feast 0.67 drops the whole entity row (every view's
    features) when any one view has no source row inside its ttl."""
    ent = points[[entity, "event_timestamp"]].drop_duplicates().reset_index(drop=True)
    ent["event_timestamp"] = pd.to_datetime(ent["event_timestamp"], utc=True).astype("datetime64[ms, UTC]")
    out = ent
    for v in views:
        h = store.get_historical_features(entity_df=ent, features=feast_repo.feature_refs([v.name]),
                                          full_feature_names=True).to_df()
        h["event_timestamp"] = pd.to_datetime(h["event_timestamp"], utc=True).astype("datetime64[ms, UTC]")
        h = h.rename(columns={c: c.replace("__", ":", 1) for c in h.columns if "__" in c})
        out = out.merge(h, on=[entity, "event_timestamp"], how="left")
    return out


def _compare(rep: Report, views, ent_val, t, online: dict, hist_row) -> None:
    for v in views:
        for f, typ in v.features:
            ref = f"{v.name}:{f}"
            a, b = online.get(ref), hist_row.get(ref)
            rep.values += 1
            if not same(a, b, typ):
                rep.mismatches.append(f"{ref} {ent_val} @ {t}: online {a!r} vs historical {b!r}")
            elif a is None or (isinstance(a, float) and math.isnan(a)):
                rep.missing_both += 1


def replay(store, offline_dir, scratch, project: str, samples: int = 200, seed: int = 1,
           entity_types=("card_id", "user_id")) -> Report:
    """`scratch`: a redis client on a database this check may empty (its keys for sampled entities)."""
    rng = random.Random(seed)
    rep = Report()
    for entity in entity_types:
        views = [v for v in contract.ONLINE_VIEWS if v.entity == entity]
        logs = {v.name: offline.read_view(offline_dir, v.name) for v in views}
        allrows = pd.concat([d[[entity, "event_timestamp"]] for d in logs.values()])
        if allrows.empty:
            continue
        ents = sorted(allrows[entity].unique())
        lo, hi = allrows["event_timestamp"].min(), allrows["event_timestamp"].max()
        pts = []
        for _ in range(samples // len(entity_types)):
            e = rng.choice(ents)
            times = allrows.loc[allrows[entity] == e, "event_timestamp"]
            kind = rng.random()
            if kind < 0.4:  # exactly at one of the entity's event times
                t = rng.choice(list(times))
            elif kind < 0.8:  # anywhere in the span
                t = lo + (hi - lo) * rng.random()
            else:  # beyond the span: some views out of their ttl
                t = hi + pd.Timedelta(seconds=rng.uniform(0, 2 * 86400))
            pts.append((e, pd.Timestamp(t).floor("ms")))
        points = pd.DataFrame(pts, columns=[entity, "event_timestamp"]).drop_duplicates()
        hist = historical(store, entity, views, points).set_index([entity, "event_timestamp"])
        by_ent = {v.name: dict(tuple(logs[v.name].groupby(entity))) for v in views}
        for e, t in points.itertuples(index=False):
            key = layout.redis_key({entity: e}, project)
            scratch.delete(key)
            tied = False
            for v in views:
                d = by_ent[v.name].get(e)
                if d is None:
                    continue
                d = d[d["event_timestamp"] <= t]
                if d["event_timestamp"].duplicated().any():
                    tied = True
                recs = d.to_dict("records")
                rng.shuffle(recs)  # arrival order ≠ event order: newest event time must still win
                layout.write_rows(scratch, project, entity, v.name, v.features,
                                  ((e, int(r["event_timestamp"].value // 1_000_000),
                                    {k: (None if isinstance(x, float) and math.isnan(x) else x) for k, x in r.items()})
                                   for r in recs))
            if tied:
                rep.ties_skipped += 1
                continue
            online = read_online(scratch, entity, e, views, project, at=t.timestamp())
            _compare(rep, views, e, t, online, hist.loc[(e, t)].to_dict())
            rep.samples += 1
    return rep


def read_online(client, entity: str, value: str, views, project: str, at: float | None) -> dict:
    """{"view:feature": value} as the scoring service reads it; views older than their ttl at `at` are missing."""
    fields = [f for v in views for f in layout.ViewLayout(v.name, v.features).fields]
    raw = client.hmget(layout.redis_key({entity: value}, project), fields)
    out, i = {}, 0
    for v in views:
        n = len(v.features)
        row, ts = layout.decode_row(v.features, raw[i:i + n + 1])
        i += n + 1
        if ts is None or (at is not None and at - ts > v.ttl.total_seconds()):
            continue
        out.update({f"{v.name}:{f}": x for f, x in row.items()})
    return out


def snapshot(store, offline_dir, client, project: str, samples: int = 200, seed: int = 1) -> Report:
    rng = random.Random(seed)
    rep = Report()
    for v in contract.ONLINE_VIEWS:
        log = offline.read_view(offline_dir, v.name)
        if log.empty:
            continue
        ents = rng.sample(sorted(log[v.entity].unique()), min(samples // len(contract.ONLINE_VIEWS) + 1,
                                                               log[v.entity].nunique()))
        pts, onl = [], {}
        for e in ents:
            raw = client.hmget(layout.redis_key({v.entity: e}, project), layout.ViewLayout(v.name, v.features).fields)
            row, ts = layout.decode_row(v.features, raw)
            if ts is None:
                continue
            t = pd.Timestamp(round(ts * 1000), unit="ms", tz="UTC")
            pts.append((e, t)); onl[(e, t)] = {f"{v.name}:{f}": x for f, x in row.items()}
        if not pts:
            continue
        hist = historical(store, v.entity, [v], pd.DataFrame(pts, columns=[v.entity, "event_timestamp"]))
        hist = hist.set_index([v.entity, "event_timestamp"])
        for (e, t), online in onl.items():
            _compare(rep, [v], e, t, online, hist.loc[(e, t)].to_dict())
            rep.samples += 1
    return rep


def main(argv=None) -> int:
    import redis
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["replay", "snapshot"], default="replay")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--offline-dir", default=env("TRIBUTARY_OFFLINE_DIR"))
    ap.add_argument("--parquet-dir", default=env("TRIBUTARY_PARQUET_DIR"))
    ap.add_argument("--scratch-db", type=int, default=15, help="Redis database the replay mode may write to")
    a = ap.parse_args(argv)
    off, pq = resolve(a.offline_dir), resolve(a.parquet_dir)
    offline.convert(off, pq)
    store = feast_repo.store(pq.parent / "feast-parity", parquet_dir=pq)
    host, port, project = env("REDIS_HOST"), int(env("REDIS_PORT")), env("FEAST_PROJECT")
    if a.mode == "replay":
        rep = replay(store, off, redis.Redis(host=host, port=port, db=a.scratch_db), project, a.samples)
    else:
        rep = snapshot(store, off, redis.Redis(host=host, port=port), project, a.samples)
    print(rep)
    return 0 if rep.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
