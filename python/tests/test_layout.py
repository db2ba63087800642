"""The jobs' Redis layout: the shared test vectors, and Feast 0.67 reading rows written that way."""
import time

import pandas as pd
import pytest

from tributary_ml import contract, feast_repo, layout, synthetic

KEY = bytes.fromhex("01000000" "02000000" "07000000" "636172645f6964" "02000000" "02000000" "6331" "6672617564")


def test_vectors():
    assert layout.redis_key({"card_id": "c1"}, "fraud") == KEY
    assert layout.feature_field("txn_stats_5m", "count_5m").hex() == "862bab97"
    assert layout.feature_field("txn_stats_5m", "sum_5m").hex() == "da985676"
    assert layout.feature_field("txn_stats_5m", "avg_5m").hex() == "7310c78a"
    assert layout.feature_field("txn_stats_5m", "geo_mismatch_ratio_5m").hex() == "5150c479"
    assert layout.encode_value(7, "Int64").hex() == "2007"
    assert layout.ts_field("txn_stats_5m") == bytes.fromhex("5f74733a74786e5f73746174735f356d")
    assert layout.encode_timestamp(1795564800_000).hex() == "0880ca98d806"
    assert layout.encode_timestamp(1795564800_500).hex() == "0880ca98d806" + "1080cab5ee01"
    assert layout.encode_value(123.45, "Float64").hex() == "29cdccccccccdc5e40"
    assert layout.encode_value(-3, "Int64").hex() == "20fdffffffffffffffff01"


@pytest.mark.parametrize("v,t", [(0, "Int64"), (-3, "Int64"), (2**62, "Int64"), (123.45, "Float64"), (-0.0, "Float64"),
                                 ("ios", "String"), ("", "String"), (None, "Float64")])
def test_value_round_trip(v, t):
    assert layout.decode_value(layout.encode_value(v, t)) == v


def test_timestamp_round_trip():
    assert layout.decode_timestamp(layout.encode_timestamp(1795564800_500)) == 1795564800.5


def test_feast_reads_the_test_vector_bytes(redis_server, tmp_path):
    r = redis_server.client()
    r.hset(KEY, mapping={bytes.fromhex("862bab97"): bytes.fromhex("2007"),
                         bytes.fromhex("5f74733a74786e5f73746174735f356d"): bytes.fromhex("0880ca98d806")})
    fs = feast_repo.store(tmp_path / "repo", parquet_dir=tmp_path / "pq", project="fraud", redis_port=redis_server.port)
    got = fs.get_online_features(features=["txn_stats_5m:count_5m", "txn_stats_5m:avg_5m"],
                                 entity_rows=[{"card_id": "c1"}, {"card_id": "nobody"}]).to_dict()
    assert got["count_5m"] == [7, None]
    assert got["avg_5m"] == [None, None]  # a field not written reads as None


def test_feast_reads_every_contract_view_as_written(redis_server, tmp_path):
    ds = synthetic.generate(n_txn=600, n_cards=20, n_users=10, n_clicks=400, hours=3, seed=3)
    r = redis_server.client()
    synthetic.write_online(ds, r, project="tributary")
    fs = feast_repo.store(tmp_path / "repo", parquet_dir=tmp_path / "pq", project="tributary",
                          redis_port=redis_server.port)
    for v in contract.ONLINE_VIEWS:
        assert ds.rows[v.name], v.name
        last = pd.DataFrame(ds.rows[v.name]).groupby(v.entity).last()
        ents = list(last.index[:10])
        got = fs.get_online_features(features=feast_repo.feature_refs([v.name]),
                                     entity_rows=[{v.entity: e} for e in ents]).to_dict()
        for i, e in enumerate(ents):
            for f in v.feature_names:
                want = last.loc[e, f]
                want = None if pd.isna(want) else want
                assert got[f][i] == want, (v.name, e, f)


def test_bytes_equal_feasts_own_write(redis_server, tmp_path):
    """Our encoder writes the same bytes Feast's own write_to_online_store writes (every contract type)."""
    fs = feast_repo.store(tmp_path / "repo", parquet_dir=tmp_path / "pq", project="bytes", redis_port=redis_server.port)
    r = redis_server.client()
    ts = pd.Timestamp("2026-11-25T00:00:00.5Z")
    for v in (contract.VIEWS["txn_profile"], contract.VIEWS["txn_device"]):
        vals = {"count_30m": 3, "count_24h": 0, "sum_24h": -12, "avg_24h": 1.5, "geo_mismatch_ratio_last_n": 0.1,
                "device_mismatch_ratio_last_n": 0.0, "seconds_since_last_txn": None, "amount_minor": 999,
                "device_os": "android", "device_age_days": 12.25, "device_country_mismatch": 1}
        row = {"card_id": "feast-wrote", "event_timestamp": ts, **{f: vals[f] for f in v.feature_names}}
        fs.write_to_online_store(v.name, pd.DataFrame([row]))
        theirs = r.hgetall(layout.redis_key({"card_id": "feast-wrote"}, "bytes"))
        ours = layout.row_mapping(v.name, v.features, vals, int(ts.value // 1_000_000))
        for field, b in ours.items():
            assert theirs[field] == b, (v.name, field, theirs[field].hex(), b.hex())


def test_newest_event_time_wins(redis_server):
    r = redis_server.client()
    v = contract.VIEWS["txn_stats_5m"]
    rows = [("c9", 2000, {"count_5m": 2, "sum_5m": 20, "avg_5m": 10.0, "geo_mismatch_ratio_5m": 0.5}),
            ("c9", 1000, {"count_5m": 1, "sum_5m": 10, "avg_5m": 10.0, "geo_mismatch_ratio_5m": 0.0}),
            ("c9", 2000, {"count_5m": 9, "sum_5m": 90, "avg_5m": 10.0, "geo_mismatch_ratio_5m": 0.0})]
    assert layout.write_rows(r, "nw", "card_id", v.name, v.features, rows) == 3
    raw = r.hmget(layout.redis_key({"card_id": "c9"}, "nw"), layout.ViewLayout(v.name, v.features).fields)
    vals, ts = layout.decode_row(v.features, raw)
    assert vals["count_5m"] == 2 and ts == 2.0  # older and equal event times are not written
