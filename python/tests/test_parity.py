"""Parity: Feast point-in-time historical values = the online values served at that time."""
import pytest

from tributary_ml import contract, feast_repo, layout, offline, parity, synthetic


@pytest.fixture(scope="module")
def store(dataset, redis_server):
    offline.convert(dataset["offline"], dataset["parquet"])
    return feast_repo.store(dataset["root"] / "feast-parity", parquet_dir=dataset["parquet"],
                            redis_port=redis_server.port)


def test_replay_parity(store, dataset, redis_server):
    rep = parity.replay(store, dataset["offline"], redis_server.client(db=15), "tributary", samples=120, seed=5)
    print(rep)
    assert rep.ok, str(rep)
    assert rep.samples >= 100 and rep.missing_both > 0  # ttl-expired views were sampled too


def test_snapshot_parity_and_a_corrupted_value_is_caught(store, dataset, redis_server):
    r = redis_server.client(db=0)
    r.flushdb()
    synthetic.write_online(dataset["ds"], r, project="tributary")
    rep = parity.snapshot(store, dataset["offline"], r, "tributary", samples=60)
    assert rep.ok, str(rep)
    # one float off by 1e-6 relative is reported
    v = contract.VIEWS["txn_profile"]
    row = dataset["ds"].rows["txn_profile"][-1]
    key = layout.redis_key({"card_id": row["card_id"]}, "tributary")
    r.hset(key, layout.feature_field(v.name, "avg_24h"), layout.encode_value(row["avg_24h"] * (1 + 1e-6), "Float64"))
    bad = parity.Report()
    online = parity.read_online(r, "card_id", row["card_id"], [v], "tributary", at=None)
    import pandas as pd
    t = pd.Timestamp(row["event_timestamp"], unit="ms", tz="UTC")
    hist = parity.historical(store, "card_id", [v], pd.DataFrame([(row["card_id"], t)], columns=["card_id", "event_timestamp"]))
    parity._compare(bad, [v], row["card_id"], t, online, hist.iloc[0].to_dict())
    assert len(bad.mismatches) == 1 and "avg_24h" in bad.mismatches[0]
