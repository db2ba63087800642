"""Scoring service contract: scores from Redis rows in the Feast layout, A/B routing, budget, timeout,
circuit breaker with Redis stopped, TTL, 4xx on bad input, /healthz and /metrics."""
import re
import time

import pytest
from fastapi.testclient import TestClient

from tributary_ml import contract, layout
from tributary_ml.serve import Settings, create_app

NOW_MS = lambda: int(time.time() * 1000)  # noqa: E731


def settings(trained, port, **kw):
    base = dict(redis_host="127.0.0.1", redis_port=port, project="tributary", model_version="v1",
                candidate_version="v2", candidate_share=0.1, model_dir=str(trained["dir"]), tracking_uri="",
                max_qps=100000, timeout_ms=500, redis_timeout_ms=200, breaker_failures=3, breaker_reset_s=0.5,
                enforce_ttl=True)
    base.update(kw)
    return Settings(**base)


def write_card(r, card, event_ms, **over):
    vals = {"count_5m": 3, "sum_5m": 9000, "avg_5m": 3000.0, "geo_mismatch_ratio_5m": 0.0, "count_30m": 4,
            "count_24h": 10, "sum_24h": 30000, "avg_24h": 3000.0, "geo_mismatch_ratio_last_n": 0.0,
            "device_mismatch_ratio_last_n": 0.0, "seconds_since_last_txn": 30.0, "amount_minor": 3000,
            "device_os": "ios", "device_age_days": 100.0, "device_country_mismatch": 0, **over}
    for name in contract.FRAUD_VIEWS:
        v = contract.VIEWS[name]
        layout.write_rows(r, "tributary", "card_id", v.name, v.features, [(card, event_ms, vals)])


@pytest.fixture()
def client(trained, redis_server):
    with TestClient(create_app(settings(trained, redis_server.port))) as c:
        yield c


def test_fraud_score_from_redis(client, redis_server):
    r = redis_server.client()
    write_card(r, "svc-normal", NOW_MS())
    write_card(r, "svc-fraudish", NOW_MS(), amount_minor=150000, count_5m=8, device_mismatch_ratio_last_n=0.8,
               geo_mismatch_ratio_5m=0.9, device_country_mismatch=1)
    a = client.post("/score", json={"card_id": "svc-normal"}, headers={"X-Model-Version": "v2"}).json()
    b = client.post("/score", json={"card_id": "svc-fraudish"}, headers={"X-Model-Version": "v2"}).json()
    assert a["model_version"] == "v2" and not a["fallback"] and a["missing_features"] == [] and a["entity_found"]
    assert 0 <= a["score"] < b["score"] <= 1
    assert a["latency_ms"] > 0 and a["use_case"] == "fraud"


def test_missing_and_stale_features_are_explicit(client, redis_server):
    r = redis_server.client()
    unknown = client.post("/score", json={"card_id": "never-seen"}).json()
    assert unknown["entity_found"] is False and len(unknown["missing_features"]) == 14 and not unknown["fallback"]
    write_card(r, "svc-stale", NOW_MS() - 2 * 3600_000)  # older than txn_stats_5m's 1 h ttl, within the others'
    s = client.post("/score", json={"card_id": "svc-stale"}).json()
    assert s["stale_views"] == ["txn_stats_5m"]
    assert all(f.startswith("txn_stats_5m:") for f in s["missing_features"]) and len(s["missing_features"]) == 4
    write_card(r, "svc-first", NOW_MS(), seconds_since_last_txn=None)  # null by contract: first transaction
    f = client.post("/score", json={"card_id": "svc-first"}).json()
    assert f["missing_features"] == ["txn_profile:seconds_since_last_txn"]


def test_ab_split_and_header(client):
    versions = [client.post("/score", json={"card_id": f"ab-{i}"}).json()["model_version"] for i in range(1500)]
    share = versions.count("v2") / len(versions)
    assert 0.07 < share < 0.13, share
    assert versions.count("v1") + versions.count("v2") == len(versions)
    # sticky: the same card goes to the same model
    assert {client.post("/score", json={"card_id": "ab-7"}).json()["model_version"] for _ in range(5)} == {versions[7]}
    h = client.post("/score", json={"card_id": "ab-1"}, headers={"X-Model-Version": "v2"})
    assert h.json()["model_version"] == "v2" and h.headers["X-Model-Version"] == "v2"
    bad = client.post("/score", json={"card_id": "ab-1"}, headers={"X-Model-Version": "v9"})
    assert bad.status_code == 400 and "v9" in bad.json()["error"]


@pytest.mark.parametrize("body", [
    {}, {"card_id": ""}, {"card_id": 12}, {"card_id": "a", "user_id": "b"}, {"user_id": "u1"},
    {"user_id": "u1", "context": "x"}, {"card_id": "a", "context": {}}, {"card_id": "a", "extra": 1},
    {"card_id": "a" * 500}, {"card_id": "a", "amount_minor": -5}, [], "card_id",
])
def test_bad_requests_get_4xx_with_a_message(client, body):
    resp = client.post("/score", json=body)
    assert 400 <= resp.status_code < 500, (body, resp.status_code, resp.text)
    assert resp.json()["error"]


def test_malformed_json_and_wrong_method(client):
    r1 = client.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r1.status_code == 422 and r1.json()["error"]
    assert client.get("/score").status_code == 405


def test_personalisation(client, redis_server):
    r = redis_server.client()
    v = contract.VIEWS["user_session_live"]
    layout.write_rows(r, "tributary", "user_id", v.name, v.features, [("u-live", NOW_MS(), {
        "session_clicks": 12, "session_dwell_seconds": 600.0, "session_distinct_items": 8, "clicks_1h": 30})])
    resp = client.post("/score", json={"user_id": "u-live", "context": {"placement": "home"}})
    hot, cold = resp.json(), client.post("/score", json={"user_id": "u-none", "context": {}}).json()
    # the trained purchase-propensity model (perso-v1, loaded at startup), not the rules
    assert hot["use_case"] == "personalisation" and hot["model_version"] == "perso-v1" and not hot["fallback"]
    assert resp.headers["X-Model-Version"] == "perso-v1" and 0 < hot["score"] < 1
    assert hot["entity_found"] and not cold["entity_found"] and hot["score"] != cold["score"]
    assert "user_last_session:last_session_pages" in hot["missing_features"]
    assert "user_session_live:clicks_1h" in cold["missing_features"]
    from tributary_ml import features, models
    x, _ = features.perso_vector({f"user_session_live:{k}": v for k, v in {
        "session_clicks": 12, "session_dwell_seconds": 600.0, "session_distinct_items": 8, "clicks_1h": 30}.items()})
    assert abs(hot["score"] - models.load("v1", client.app.state.settings.model_dir, use_case="perso").predict(x)[0]) < 1e-12
    assert client.get("/healthz").json()["personalisation"] == "perso-v1"


def test_personalisation_rules_only_when_configured(trained, redis_server, tmp_path):
    with TestClient(create_app(settings(trained, redis_server.port, perso_version="rules"))) as c:
        body = c.post("/score", json={"user_id": "u-x", "context": {}}).json()
    assert body["model_version"] == "perso-rules-v0" and not body["fallback"]
    app = create_app(settings(trained, redis_server.port, model_dir=str(trained["dir"]), perso_version="v9",
                              perso_required=True))
    with pytest.raises(FileNotFoundError):
        with TestClient(app):
            pass


def test_budget_returns_429(trained, redis_server):
    with TestClient(create_app(settings(trained, redis_server.port, max_qps=5))) as c:
        codes = [c.post("/score", json={"card_id": "b"}).status_code for _ in range(20)]
    assert codes[0] == 200 and codes.count(429) >= 15
    assert codes.count(429) + codes.count(200) == 20


def test_timeout_returns_504(trained, redis_server):
    # Redis is paused longer than the request budget; the Redis timeout is longer still
    with TestClient(create_app(settings(trained, redis_server.port, timeout_ms=100, redis_timeout_ms=2000))) as c:
        c.post("/score", json={"card_id": "warm"})  # a pooled connection exists
        redis_server.client().execute_command("CLIENT", "PAUSE", "600", "ALL")
        resp = c.post("/score", json={"card_id": "slow"})
        time.sleep(0.6)
    assert resp.status_code == 504 and "100 ms" in resp.json()["error"]


def test_redis_timeout_falls_back(trained, redis_server):
    with TestClient(create_app(settings(trained, redis_server.port, timeout_ms=1000, redis_timeout_ms=50))) as c:
        c.post("/score", json={"card_id": "warm"})
        redis_server.client().execute_command("CLIENT", "PAUSE", "400", "ALL")
        body = c.post("/score", json={"card_id": "slow"}).json()
        time.sleep(0.4)
    assert body["fallback"] and body["fallback_reason"] == "redis_timeout" and body["model_version"] == "baseline-rules"


def test_breaker_falls_back_to_rules_with_redis_stopped(trained, own_redis):
    write_card(own_redis.client(), "brk", NOW_MS())
    with TestClient(create_app(settings(trained, own_redis.port))) as c:
        ok = c.post("/score", json={"card_id": "brk"}).json()
        assert not ok["fallback"]
        own_redis.stop()
        errs = [c.post("/score", json={"card_id": "brk", "amount_minor": 200000}).json() for _ in range(3)]
        assert all(e["fallback"] and e["fallback_reason"] == "redis_error" for e in errs)
        assert errs[0]["score"] == 0.5 and errs[0]["model_version"] == "baseline-rules"  # rules: large amount
        opened = c.post("/score", json={"card_id": "brk"}).json()
        assert opened["fallback_reason"] == "circuit_open" and opened["score"] == 0.01
        h = c.get("/healthz").json()
        assert h["breaker"] == "open" and h["status"] == "degraded" and h["redis"] is False
        metrics = c.get("/metrics").text
        assert 'scoring_fallback_total{reason="redis_error"} 3.0' in metrics
        assert 'scoring_fallback_total{reason="circuit_open"} 1.0' in metrics
        assert re.search(r"^scoring_redis_errors_total 3.0$", metrics, re.M)  # this app's own count
        own_redis.start()  # same port; the data is gone (no persistence): the card is now unknown
        time.sleep(0.6)  # past the reset time: one trial closes the breaker
        back = c.post("/score", json={"card_id": "brk"}).json()
        assert not back["fallback"] and back["model_version"] == "v1"
        assert c.get("/healthz").json()["breaker"] == "closed"


def test_metrics_and_health(client):
    client.post("/score", json={"card_id": "m1"}, headers={"X-Model-Version": "v1"})
    client.post("/score", json={})
    text = client.get("/metrics").text
    for name in ("scoring_requests_total", "scoring_request_duration_seconds_bucket", "scoring_fallback_total",
                 "scoring_redis_errors_total"):
        assert name in text
    assert 'scoring_requests_total{model_version="v1",status="200"}' in text
    assert 'status="422"' in text
    h = client.get("/healthz").json()
    assert h["redis"] is True and h["status"] == "ok" and h["models"] == ["v1", "v2"] and h["control"] == "v1"


def test_metrics_include_the_drift_textfile(trained, redis_server, tmp_path):
    """make drift-check writes data/drift.prom; the service serves it with its own metrics."""
    prom = tmp_path / "drift.prom"
    app = create_app(settings(trained, redis_server.port, drift_metrics_file=str(prom)))
    with TestClient(app) as c:
        assert "drift_psi" not in c.get("/metrics").text      # no drift check yet: nothing, no error
        prom.write_text('# TYPE drift_psi gauge\ndrift_psi{feature="amount_minor"} 0.31\n# TYPE drift_alert gauge\ndrift_alert 1\n')
        text = c.get("/metrics").text
        assert 'drift_psi{feature="amount_minor"} 0.31' in text and "drift_alert 1" in text
        assert "scoring_requests_total" in text


def test_startup_fails_without_the_model(trained, redis_server, tmp_path):
    app = create_app(settings(trained, redis_server.port, model_dir=str(tmp_path), model_version="v7", candidate_version=""))
    with pytest.raises(FileNotFoundError):
        with TestClient(app):
            pass
