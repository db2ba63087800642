"""The Avro offline log: contract layout, hidden files skipped, incremental conversion to Parquet."""
import shutil

import fastavro
import pandas as pd

from tributary_ml import contract, offline


def test_files_follow_the_contract(dataset):
    files = list(offline.committed_files(dataset["offline"], "txn_profile"))
    assert files and all(p.parent.name.startswith("hour=") and p.parent.parent.name.startswith("date=") for p in files)
    with open(files[0], "rb") as f:
        rd = fastavro.reader(f)
        names = [fl["name"] for fl in rd.writer_schema["fields"]]
        rec = next(iter(rd))
    assert names == ["card_id", "event_timestamp", *contract.VIEWS["txn_profile"].feature_names]
    assert rec["event_timestamp"].tzinfo is not None


def test_convert_is_incremental_and_skips_uncommitted(dataset, tmp_path):
    off = tmp_path / "offline"
    shutil.copytree(dataset["offline"], off)
    pq = tmp_path / "parquet"
    first = offline.convert(off, pq)
    assert first["txn_profile"] > 0
    assert all(n == 0 for n in offline.convert(off, pq).values())
    # an uncommitted file and an uncommitted directory are not read
    hour = next(offline.committed_files(off, "txn_profile")).parent
    shutil.copy(next(offline.committed_files(off, "txn_profile")), hour / ".inflight.avro")
    (off / "txn_profile" / "date=2030-01-01" / ".hour=00").mkdir(parents=True)
    shutil.copy(next(offline.committed_files(off, "txn_profile")), off / "txn_profile" / "date=2030-01-01" / ".hour=00" / "x.avro")
    assert offline.convert(off, pq)["txn_profile"] == 0
    # a newly committed file is converted, alone
    shutil.copy(next(offline.committed_files(off, "txn_profile")), hour / "part-2.avro")
    assert offline.convert(off, pq)["txn_profile"] == 1
    n_avro = len(offline.read_view(off, "txn_profile"))
    assert len(pd.read_parquet(pq / "txn_profile")) == n_avro
