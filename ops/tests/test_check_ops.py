"""scripts/check_ops.py: passes on the repository, and each check catches what it is for."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import check_ops
from conftest import ROOT

CONTRACT_NOTES = Path("/work/notes/feature-contract.md")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def schema():
    return json.loads((ROOT / "ops" / "compose-spec.json").read_text())


def test_repository_passes_every_check():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_ops.py")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("check_ops: ok (compose, env, prometheus, checkpoints, topics, metrics, grafana, k8s, terraform)")


def test_compose_schema_rejects_unknown_keys_and_bad_types(compose, schema):
    bad = copy.deepcopy(compose)
    bad["services"]["redis"]["restart_policy"] = "always"   # not a Compose service key
    bad["services"]["prometheus"]["ports"] = "9090:9090"   # must be a list
    problems = check_ops.check_compose(bad, schema)
    assert any("services/redis" in p and "restart_policy" in p for p in problems), problems
    assert any("services/prometheus/ports" in p for p in problems), problems


def test_compose_semantics(compose, schema):
    bad = copy.deepcopy(compose)
    bad["services"]["grafana"]["depends_on"] = ["prometheus", "nosuch"]
    bad["services"]["redis"]["volumes"] = ["undeclared:/data", "./ops/nosuch.yml:/x"]
    bad["services"]["scoring"]["build"]["target"] = "nosuchstage"
    bad["services"]["mlflow"]["ports"] = ["6379:5000"]
    problems = "\n".join(check_ops.check_compose(bad, schema))
    assert "unknown service 'nosuch'" in problems
    assert "volume 'undeclared'" in problems
    assert "./ops/nosuch.yml" in problems
    assert "target 'nosuchstage'" in problems
    assert "host port 6379" in problems


def test_env_names_are_the_contracts(compose):
    assert check_ops.check_env(compose) == []
    bad = copy.deepcopy(compose)
    bad["services"]["txn-features"]["environment"]["KAFKA_BROKERS"] = "redpanda:9092"
    del bad["services"]["click-features"]["environment"]["TRIBUTARY_CHECKPOINT_DIR"]
    bad["services"]["scoring"]["environment"] = [f"{k}={v}" for k, v in bad["services"]["scoring"]["environment"].items()
                                                 if k != "MODEL_VERSION"]
    problems = check_ops.check_env(bad)
    assert "env: txn-features sets KAFKA_BROKERS, not a feature-contract variable" in problems
    assert "env: click-features does not set TRIBUTARY_CHECKPOINT_DIR" in problems
    assert "env: scoring does not set MODEL_VERSION" in problems


def test_third_party_services_are_not_held_to_the_contract(compose):
    assert "GF_AUTH_ANONYMOUS_ENABLED" in compose["services"]["grafana"]["environment"]
    assert not check_ops.is_tributary_service(compose["services"]["grafana"])
    assert check_ops.is_tributary_service(compose["services"]["txn-features"])


def test_every_tributary_service_shares_the_stack_values(compose):
    """Same broker, Redis and project for every process (values, not just names)."""
    envs = {n: check_ops.env_mapping(s.get("environment")) for n, s in compose["services"].items()
            if check_ops.is_tributary_service(s)}
    for key in ("KAFKA_BOOTSTRAP", "REDIS_HOST", "REDIS_PORT", "FEAST_PROJECT", "SCHEMA_REGISTRY_URL"):
        assert len({e[key] for e in envs.values() if key in e}) == 1, key
    assert envs["txn-features"]["TRIBUTARY_CHECKPOINT_DIR"] != envs["click-features"]["TRIBUTARY_CHECKPOINT_DIR"]


def test_metrics_ports_follow_the_scrape_configs(compose):
    native = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    com = yaml.safe_load((ROOT / "ops/prometheus/prometheus-compose.yml").read_text())
    assert check_ops.check_prometheus(native, com, compose) == []
    bad = copy.deepcopy(compose)
    bad["services"]["txn-features"]["environment"]["METRICS_PORT"] = "9999"
    assert any("METRICS_PORT is 9999" in p for p in check_ops.check_prometheus(native, com, bad))
    drift = copy.deepcopy(com)
    drift["scrape_configs"] = [s for s in drift["scrape_configs"] if s["job_name"] != "scoring"]
    drift["scrape_configs"][1]["honor_labels"] = False
    problems = "\n".join(check_ops.check_prometheus(native, drift, compose))
    assert "scrape jobs differ" in problems
    assert "honor_labels" in problems


def test_topics_match_the_native_script(compose):
    expected = check_ops.native_topics()
    assert expected["txn.events"] == 12 and expected["device.enrich"] == 6
    assert check_ops.check_topics(compose, expected) == []
    bad = copy.deepcopy(compose)
    bad["services"]["topics"]["environment"]["TOPICS"] = "txn.events:24 click.events:12"
    assert check_ops.check_topics(bad, expected)


def test_metric_names():
    assert check_ops.metric_names('sum by (job) (rate(tributary_dlq_records_total{reason="tributary_x"}[5m]))') == \
        {"tributary_dlq_records_total"}
    assert check_ops.metric_names("job:tributary_dlq_ratio:rate5m > 0.001") == set()
    assert check_ops.known_metric("scoring_request_duration_seconds_bucket")
    assert not check_ops.known_metric("tributary_records_in_total_bucket")
    assert not check_ops.known_metric("tributary_records_total")
    rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(tributary_dlq_total[5m]) > 0"}]}]}
    dash = {"title": "d", "panels": [{"title": "p", "targets": [{"expr": "job:nosuch:rate5m"}]}]}
    problems = "\n".join(check_ops.check_metrics(rules, [dash], parse=False))
    assert "tributary_dlq_total, not a feature-contract metric" in problems
    assert "recording rule job:nosuch:rate5m, not in alerts.yml" in problems


def test_dashboard_expressions_parse_and_bad_ones_do_not(promtool):
    good = [("p", 'histogram_quantile(0.95, sum by (le) (rate(scoring_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))')]
    assert check_ops.promtool_parse(good) == []
    assert check_ops.promtool_parse([("p", "sum by (job (rate(x[5m]))")])


def test_dashboard_has_the_panels_of_the_issue():
    dash = json.loads((ROOT / "ops/grafana/dashboards/tributary-overview.json").read_text())
    exprs = " ".join(e for _, e in check_ops.dashboard_exprs(dash))
    for needle in ("tributary_kafka_consumer_lag_records", "tributary_source_records_total",
                   "tributary_checkpoint_duration_seconds_bucket", "tributary_watermark_lag_seconds",
                   "tributary_dlq_records_total", "job:tributary_dlq_ratio:rate5m",
                   "histogram_quantile(0.5, sum by (le) (rate(scoring_request_duration_seconds_bucket",
                   "histogram_quantile(0.95, sum by (le) (rate(scoring_request_duration_seconds_bucket",
                   "drift_psi", "drift_alert"):
        assert needle in exprs, needle


def test_grafana_datasource_uid():
    dash = json.loads((ROOT / "ops/grafana/dashboards/tributary-overview.json").read_text())
    ds = [yaml.safe_load(p.read_text()) for p in (ROOT / "ops/grafana/provisioning/datasources").glob("*.yml")]
    assert check_ops.check_grafana([dash], ds) == []
    other = copy.deepcopy(ds)
    other[0]["datasources"][0]["uid"] = "other"
    assert check_ops.check_grafana([dash], other)


def test_k8s_manifests_validate_and_catch_mistakes():
    pytest.importorskip("kubernetes_validate", reason="ops/setup.sh installs kubernetes-validate")
    docs = check_ops.k8s_documents()
    kinds = {d["kind"] for _, d in docs}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    assert check_ops.check_k8s(docs) == []
    bad = copy.deepcopy(docs)
    for _, d in bad:
        if d["kind"] == "StatefulSet":
            d["spec"]["replica"] = 2
        if d["kind"] == "ConfigMap":
            d["data"]["REDIS_URL"] = "redis://x"
    problems = "\n".join(check_ops.check_k8s(bad))
    assert "'replica' was unexpected" in problems
    assert "REDIS_URL, not a feature-contract variable" in problems


def test_jobs_keep_checkpoints_on_their_own_volume():
    for fname, d in check_ops.k8s_documents():
        if d["kind"] == "StatefulSet":
            claims = [t["metadata"]["name"] for t in d["spec"]["volumeClaimTemplates"]]
            assert "checkpoints" in claims, fname
            env = {e["name"]: e["value"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            mounts = {m["name"]: m["mountPath"] for m in d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
            assert env["TRIBUTARY_CHECKPOINT_DIR"] == mounts["checkpoints"], fname


def test_terraform_parses_and_a_broken_file_does_not(tmp_path):
    pytest.importorskip("hcl2", reason="ops/setup.sh installs python-hcl2")
    assert check_ops.check_terraform() == []
    (tmp_path / "bad.tf").write_text('resource "aws_s3_bucket" "x" {\n  bucket = \n')
    problems = check_ops.check_terraform(tmp_path)
    assert problems and "bad.tf" in problems[0]


def test_contract_parsing(tmp_path):
    text = """# Feature contract
## Environment (12-factor)
`KAFKA_BOOTSTRAP` (127.0.0.1:9092), `REDIS_HOST` (127.0.0.1)

## Metric names (Prometheus)
Jobs: `tributary_records_in_total{job,operator,subtask}`, `drift_alert` (0/1).
"""
    path = tmp_path / "contract.md"
    path.write_text(text)
    env, metrics = check_ops.read_contract(path)
    assert env == {"KAFKA_BOOTSTRAP", "REDIS_HOST"}
    assert metrics == {"tributary_records_in_total", "drift_alert"}
    assert len(check_ops.check_contract(path)) == 2


@pytest.mark.skipif(not CONTRACT_NOTES.exists(), reason="the feature contract's notes file is not on this machine")
def test_embedded_names_equal_the_contract():
    assert check_ops.check_contract(CONTRACT_NOTES) == []


def test_service_knobs_only_where_they_belong(compose):
    """SCORING_* and TRIBUTARY_MODEL_DIR are the scoring service's own (python/tributary_ml/serve.py)."""
    assert "SCORING_HOST" in compose["services"]["scoring"]["environment"]
    bad = copy.deepcopy(compose)
    bad["services"]["txn-features"]["environment"]["SCORING_HOST"] = "0.0.0.0"
    bad["services"]["scoring"]["environment"]["REDIS_URL"] = "redis://redis"
    problems = check_ops.check_env(bad)
    assert "env: txn-features sets SCORING_HOST, not a feature-contract variable" in problems
    assert "env: scoring sets REDIS_URL, not a feature-contract variable" in problems
    assert len(problems) == 2


def test_checkpoint_interval_matches_the_stale_alert(compose):
    rules = yaml.safe_load((ROOT / "ops/prometheus/alerts.yml").read_text())
    docs = check_ops.k8s_documents()
    assert check_ops.check_checkpoints(rules, compose, docs) == []
    assert check_ops.checkpoint_interval(["txn-features", "--checkpoint-interval=1m"]) == 60
    bad = copy.deepcopy(compose)
    bad["services"]["click-features"]["command"] = ["click-features"]
    problems = check_ops.check_checkpoints(rules, bad, docs)
    assert problems == ["checkpoints: compose click-features runs with --checkpoint-interval None, the alert assumes 30s"]


def test_dockerfile_copy_sources(tmp_path):
    assert check_ops.check_dockerfile() == []
    (tmp_path / "Dockerfile").write_text("FROM x AS a\nCOPY schemas ./schemas\nCOPY docs ./docs\nCOPY --from=a /out /x\n")
    (tmp_path / ".dockerignore").write_text("# comment\ndocs/\n")
    (tmp_path / "docs").mkdir()
    assert check_ops.check_dockerfile(tmp_path) == [
        "dockerfile: COPY schemas: not in the repository",
        "dockerfile: COPY docs: left out of the build context by .dockerignore"]
