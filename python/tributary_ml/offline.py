"""The jobs' offline feature log: reading the Avro files and converting them to Parquet for Feast.

Feast's FileSource reads Parquet only. `convert` turns each committed Avro file
(`<offline>/<view>/date=…/hour=…/<name>.avro`; names starting with "." are uncommitted and skipped, files
and directories alike) into one Parquet file `<parquet>/<view>/date=…_hour=…_<name>.parquet`, and
remembers in `<parquet>/.converted.json` what it converted (path, size, mtime), so a second run converts
only new or changed files.

    python -m tributary_ml.offline [--offline-dir D] [--parquet-dir P]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Iterator

import fastavro
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .contract import VIEWS, View, env, resolve

MANIFEST = ".converted.json"


def committed_files(offline_dir: str | os.PathLike, view: str) -> Iterator[Path]:
    """Committed Avro files of a view, sorted; anything with a '.'-prefixed path component is skipped."""
    root = Path(offline_dir) / view
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.endswith(".avro"):
                yield Path(dirpath) / f


def arrow_schema(view: View) -> pa.Schema:
    types = {"Int64": pa.int64(), "Float64": pa.float64(), "String": pa.string(),
             "TimestampMillis": pa.timestamp("ms", tz="UTC")}
    fields = [pa.field(view.entity, pa.string(), nullable=False),
              pa.field("event_timestamp", pa.timestamp("ms", tz="UTC"), nullable=False)]
    fields += [pa.field(f, types[t], nullable=True) for f, t in view.features]
    return pa.schema(fields)


def read_avro_file(path: Path, view: View) -> pa.Table:
    with open(path, "rb") as f:
        records = list(fastavro.reader(f))
    schema = arrow_schema(view)
    cols = {}
    for fld in schema:
        vals = [r.get(fld.name) for r in records]
        cols[fld.name] = pa.array(vals, type=fld.type)  # timestamp-millis arrives as aware datetimes
    return pa.table(cols, schema=schema)


def read_view(offline_dir: str | os.PathLike, view: str) -> pd.DataFrame:
    """All committed rows of a view as a DataFrame (event_timestamp tz-aware UTC), sorted by time."""
    v = VIEWS[view]
    tables = [read_avro_file(p, v) for p in committed_files(offline_dir, view)]
    t = pa.concat_tables(tables) if tables else arrow_schema(v).empty_table()
    return t.to_pandas().sort_values(["event_timestamp", v.entity], kind="stable").reset_index(drop=True)


def parquet_name(offline_root: Path, avro: Path) -> str:
    rel = avro.relative_to(offline_root)  # <view>/date=…/hour=…/<name>.avro
    return "_".join(rel.parts[1:])[: -len(".avro")] + ".parquet"


def convert(offline_dir: str | os.PathLike, parquet_dir: str | os.PathLike, views=None) -> dict[str, int]:
    """Convert the committed Avro files not converted before. Returns {view: files converted}."""
    offline_dir, parquet_dir = Path(offline_dir), Path(parquet_dir)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    mpath = parquet_dir / MANIFEST
    manifest: dict[str, list] = json.loads(mpath.read_text()) if mpath.exists() else {}
    done: dict[str, int] = {}
    for name in views or VIEWS:
        v = VIEWS[name]
        out_dir = parquet_dir / name
        out_dir.mkdir(exist_ok=True)
        n = 0
        for avro in committed_files(offline_dir, name):
            st = avro.stat()
            key = str(avro.relative_to(offline_dir))
            stamp = [st.st_size, st.st_mtime_ns]
            if manifest.get(key) == stamp:
                continue
            target = out_dir / parquet_name(offline_dir, avro)
            tmp = out_dir / f".{target.name}.tmp"
            pq.write_table(read_avro_file(avro, v), tmp)
            tmp.replace(target)
            manifest[key] = stamp
            n += 1
            # the manifest after each file: an interrupted run resumes where it stopped
            mtmp = parquet_dir / f"{MANIFEST}.tmp"
            mtmp.write_text(json.dumps(manifest, indent=0, sort_keys=True))
            mtmp.replace(mpath)
        if not any(p.suffix == ".parquet" for p in out_dir.iterdir()):
            # Feast (dask) cannot read an empty directory: a schema-only file stands in until data arrives
            pq.write_table(arrow_schema(v).empty_table(), out_dir / "empty.parquet")
        done[name] = n
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offline-dir", default=env("TRIBUTARY_OFFLINE_DIR"))
    ap.add_argument("--parquet-dir", default=env("TRIBUTARY_PARQUET_DIR"))
    a = ap.parse_args(argv)
    done = convert(resolve(a.offline_dir), resolve(a.parquet_dir))
    print("offline → parquet: " + ", ".join(f"{k} {n}" for k, n in done.items()) + " new files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
