"""Checks the ops artifacts that no engine runs here (no Docker, no Kubernetes, no Terraform).

    python scripts/check_ops.py [--contract FEATURE_CONTRACT.md] [--only NAME ...]

  compose     docker-compose.yml against the Compose Specification's JSON schema (ops/compose-spec.json),
              plus what `docker compose config` would refuse: unknown services in depends_on,
              undeclared named volumes, missing bind-mount sources, build targets not in the Dockerfile,
              a host port published twice; the Dockerfile's COPY sources exist and are in the build context
  env         the Tributary services' (built from ./Dockerfile) environment variable names are the
              feature contract's, and each job/service has the ones it needs
  prometheus  the native and compose scrape configs have the same jobs, and the jobs' METRICS_PORT
              in compose is the port both configs scrape
  checkpoints the jobs in compose and k8s checkpoint at the interval the stale-checkpoint alert assumes
  topics      the compose topic-creation service creates scripts/create_topics.py's topics
  metrics     every Tributary metric name in the alert rules and the Grafana dashboard is a contract
              name (histograms: _bucket/_sum/_count), every panel expression parses (promtool)
  grafana     datasource uid, unique panel ids
  k8s         deploy/k8s manifests against the Kubernetes schemas (kubernetes-validate, when installed)
              and their env names against the contract
  terraform   deploy/terraform/**/*.tf parse as HCL2 (python-hcl2, when installed)

Needs PyYAML and jsonschema, and promtool (ops/setup.sh installs it and makes .venv-ops with these and
the optional two; without those, their checks are skipped, saying so). Exit 0 when everything holds,
1 with one line per problem otherwise.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "ops" / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"
PROM_NATIVE = ROOT / "ops" / "prometheus" / "prometheus.yml"
PROM_COMPOSE = ROOT / "ops" / "prometheus" / "prometheus-compose.yml"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"
DATASOURCES = ROOT / "ops" / "grafana" / "provisioning" / "datasources"
CREATE_TOPICS = ROOT / "scripts" / "create_topics.py"
K8S = ROOT / "deploy" / "k8s"
TERRAFORM = ROOT / "deploy" / "terraform"

# The feature contract (decided by the jobs' owner): environment and metric names. --contract FILE
# re-reads both from the contract's markdown and fails when they differ from these.
CONTRACT_ENV = frozenset({
    "KAFKA_BOOTSTRAP", "REDIS_HOST", "REDIS_PORT", "FEAST_PROJECT", "TRIBUTARY_OFFLINE_DIR",
    "TRIBUTARY_CHECKPOINT_DIR", "METRICS_PORT", "MODEL_VERSION", "MLFLOW_TRACKING_URI",
    "SCHEMA_REGISTRY_URL",
})
CONTRACT_METRICS = frozenset({
    "tributary_records_in_total", "tributary_records_out_total", "tributary_busy_seconds_total",
    "tributary_backpressured_seconds_total", "tributary_watermark_lag_seconds",
    "tributary_late_records_dropped_total", "tributary_checkpoint_duration_seconds",
    "tributary_checkpoint_size_bytes", "tributary_checkpoint_failures_total", "tributary_last_checkpoint_id",
    "tributary_last_checkpoint_timestamp_seconds", "tributary_kafka_consumer_lag_records",
    "tributary_source_records_total", "tributary_dlq_records_total", "tributary_sink_latency_seconds",
    "tributary_sink_errors_total", "tributary_state_size_bytes", "tributary_event_to_feature_latency_seconds",
    "scoring_requests_total", "scoring_request_duration_seconds", "scoring_fallback_total",
    "scoring_redis_errors_total", "drift_psi", "drift_js", "drift_alert",
})
CONTRACT_HISTOGRAMS = frozenset({
    "tributary_checkpoint_duration_seconds", "tributary_sink_latency_seconds",
    "tributary_event_to_feature_latency_seconds", "scoring_request_duration_seconds",
})
# What each Tributary service cannot run without (names only; values differ per stack).
REQUIRED_ENV = {
    "txn-features": {"KAFKA_BOOTSTRAP", "REDIS_HOST", "REDIS_PORT", "FEAST_PROJECT", "TRIBUTARY_OFFLINE_DIR",
                     "TRIBUTARY_CHECKPOINT_DIR", "METRICS_PORT"},
    "click-features": {"KAFKA_BOOTSTRAP", "REDIS_HOST", "REDIS_PORT", "FEAST_PROJECT", "TRIBUTARY_OFFLINE_DIR",
                       "TRIBUTARY_CHECKPOINT_DIR", "METRICS_PORT"},
    "scoring": {"REDIS_HOST", "REDIS_PORT", "FEAST_PROJECT", "MODEL_VERSION", "MLFLOW_TRACKING_URI"},
}
# A service's own knobs beside the contract's shared names: the scoring service's (documented in
# python/tributary_ml/serve.py). TRIBUTARY_MODEL_DIR is used by python/ but is not (yet) a contract name.
SERVICE_ENV = {"scoring": ({"TRIBUTARY_MODEL_DIR"}, "SCORING_")}
JOBS = ("txn-features", "click-features")
SCORING_PORT = 8000
METRIC_PREFIXES = ("tributary_", "scoring_", "drift_")
# What could not be checked for want of an optional package (printed, not a failure).
SKIPPED: list[str] = []


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def read_contract(path: Path) -> tuple[set[str], set[str]]:
    """(env names, metric names) from the feature contract's markdown."""
    text = path.read_text(encoding="utf-8")
    env_part = re.search(r"^## Environment.*?(?=^## |\Z)", text, re.S | re.M)
    metric_part = re.search(r"^## Metric names.*?(?=^## |\Z)", text, re.S | re.M)
    if not env_part or not metric_part:
        raise ValueError(f"{path}: no '## Environment' or '## Metric names' section")
    env = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", env_part.group(0)))
    metrics = {m for m in re.findall(r"`([a-z][a-z0-9_]*)", metric_part.group(0)) if m.startswith(METRIC_PREFIXES)}
    return env, metrics


def check_contract(path: Path) -> list[str]:
    env, metrics = read_contract(path)
    problems = []
    if env != CONTRACT_ENV:
        problems.append(f"contract: env names differ from check_ops.py's: only in contract {sorted(env - CONTRACT_ENV)}, "
                        f"only here {sorted(CONTRACT_ENV - env)}")
    if metrics != CONTRACT_METRICS:
        problems.append(f"contract: metric names differ from check_ops.py's: only in contract "
                        f"{sorted(metrics - CONTRACT_METRICS)}, only here {sorted(CONTRACT_METRICS - metrics)}")
    return problems


# ---- compose ------------------------------------------------------------------------------------

def env_names(environment) -> set[str]:
    """Names from a compose/k8s-style environment: a mapping, or a list of NAME=value / NAME."""
    if environment is None:
        return set()
    if isinstance(environment, dict):
        return set(environment)
    return {str(item).split("=", 1)[0] for item in environment}


def env_mapping(environment) -> dict[str, str]:
    if isinstance(environment, dict):
        return {k: "" if v is None else str(v) for k, v in environment.items()}
    out = {}
    for item in environment or []:
        name, _, value = str(item).partition("=")
        out[name] = value
    return out


def dockerfile_stages(path: Path) -> set[str]:
    return set(re.findall(r"^\s*FROM\s+\S+\s+AS\s+(\S+)", path.read_text(encoding="utf-8"), re.M | re.I))


def check_dockerfile(root: Path = ROOT) -> list[str]:
    """Every COPY source (not --from) is in the repository and not left out of the context by .dockerignore."""
    import fnmatch

    dockerfile, ignore = root / "Dockerfile", root / ".dockerignore"
    if not dockerfile.exists():
        return ["dockerfile: no Dockerfile"]
    patterns = [l.strip().rstrip("/") for l in (ignore.read_text().splitlines() if ignore.exists() else [])
                if l.strip() and not l.startswith("#")]
    problems = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0].upper() != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        for src in [p for p in parts[1:-1] if not p.startswith("--")]:
            if not (root / src).exists():
                problems.append(f"dockerfile: COPY {src}: not in the repository")
            elif any(fnmatch.fnmatch(src.rstrip("/"), pat) for pat in patterns):
                problems.append(f"dockerfile: COPY {src}: left out of the build context by .dockerignore")
    return problems


def is_tributary_service(service: dict) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("tributary/")


def check_compose(compose: dict, schema: dict, root: Path = ROOT) -> list[str]:
    import jsonschema

    problems = []
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"compose schema: {where}: {error.message}")
    services = compose.get("services") or {}
    volumes = set((compose.get("volumes") or {}).keys())
    stages = dockerfile_stages(root / "Dockerfile") if (root / "Dockerfile").exists() else set()
    published: dict[str, str] = {}
    for name, svc in services.items():
        svc = svc or {}
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"compose: {name} depends on unknown service {dep!r}")
        for vol in svc.get("volumes") or []:
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if not source:
                continue
            if source.startswith((".", "/")):
                if source.startswith(".") and not (root / source).exists():
                    problems.append(f"compose: {name} mounts {source}, which is not in the repository")
            elif source not in volumes:
                problems.append(f"compose: {name} uses volume {source!r}, not declared under volumes:")
        build = svc.get("build")
        if isinstance(build, dict):
            dockerfile = root / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                problems.append(f"compose: {name} builds from {dockerfile.relative_to(root)}, which does not exist")
            elif build.get("target") and build["target"] not in dockerfile_stages(dockerfile):
                problems.append(f"compose: {name} builds target {build['target']!r}, not a stage of "
                                f"{dockerfile.relative_to(root)} ({sorted(stages)})")
        for port in svc.get("ports") or []:
            host = str(port).rsplit(":", 1)[0] if ":" in str(port) else None
            if isinstance(port, dict):
                host = str(port.get("published")) if port.get("published") else None
            if host:
                if host in published:
                    problems.append(f"compose: host port {host} published by {published[host]} and {name}")
                published[host] = name
    return problems


def own_env(service: str, names: set[str]) -> set[str]:
    extra, prefix = SERVICE_ENV.get(service, (set(), None))
    return {n for n in names if n in extra or (prefix and n.startswith(prefix))}


def check_env(compose: dict) -> list[str]:
    problems = []
    services = compose.get("services") or {}
    for name, svc in services.items():
        if not is_tributary_service(svc or {}):
            continue
        names = env_names((svc or {}).get("environment"))
        for unknown in sorted(names - CONTRACT_ENV - own_env(name, names)):
            problems.append(f"env: {name} sets {unknown}, not a feature-contract variable")
        for missing in sorted(REQUIRED_ENV.get(name, set()) - names):
            problems.append(f"env: {name} does not set {missing}")
    for name in REQUIRED_ENV:
        if name not in services:
            problems.append(f"env: no {name} service in docker-compose.yml")
    return problems


# ---- prometheus ---------------------------------------------------------------------------------

def scrape_targets(config: dict) -> dict[str, dict]:
    """job_name -> {targets, metrics_path, honor_labels}."""
    out = {}
    for sc in config.get("scrape_configs") or []:
        targets = [t for static in sc.get("static_configs") or [] for t in static.get("targets") or []]
        out[sc["job_name"]] = {"targets": targets, "metrics_path": sc.get("metrics_path", "/metrics"),
                               "honor_labels": bool(sc.get("honor_labels", False))}
    return out


def check_prometheus(native: dict, compose_prom: dict, compose: dict) -> list[str]:
    problems = []
    nat, com = scrape_targets(native), scrape_targets(compose_prom)
    if set(nat) != set(com):
        problems.append(f"prometheus: scrape jobs differ: native {sorted(nat)}, compose {sorted(com)}")
    if native.get("rule_files") != compose_prom.get("rule_files"):
        problems.append("prometheus: the native and compose configs load different rule files")
    for job in set(nat) & set(com):
        for key in ("metrics_path", "honor_labels"):
            if nat[job][key] != com[job][key]:
                problems.append(f"prometheus: {job}: {key} differs (native {nat[job][key]}, compose {com[job][key]})")
        nat_ports = sorted(t.rsplit(":", 1)[1] for t in nat[job]["targets"])
        com_ports = sorted(t.rsplit(":", 1)[1] for t in com[job]["targets"])
        if nat_ports != com_ports:
            problems.append(f"prometheus: {job}: ports differ (native {nat_ports}, compose {com_ports})")
        if any(not t.startswith(("127.0.0.1:", "localhost:")) for t in nat[job]["targets"]):
            problems.append(f"prometheus: {job}: the native config scrapes off loopback {nat[job]['targets']}")
    services = compose.get("services") or {}
    for job in JOBS:
        if job not in com:
            problems.append(f"prometheus: no scrape job {job}")
            continue
        if not com[job]["honor_labels"]:
            problems.append(f"prometheus: {job} needs honor_labels: true (its series carry their own job label)")
        port = env_mapping((services.get(job) or {}).get("environment")).get("METRICS_PORT")
        if [f"{job}:{port}"] != com[job]["targets"]:
            problems.append(f"prometheus: compose scrapes {job} at {com[job]['targets']}, "
                            f"but its METRICS_PORT is {port}")
    if "scoring" in com and com["scoring"]["targets"] != [f"scoring:{SCORING_PORT}"]:
        problems.append(f"prometheus: scoring scraped at {com['scoring']['targets']}, expected scoring:{SCORING_PORT}")
    return problems


# ---- checkpoint interval ------------------------------------------------------------------------

def duration_seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def checkpoint_interval(argv: list) -> float | None:
    argv = [str(a) for a in argv or []]
    for i, a in enumerate(argv):
        if a == "--checkpoint-interval" and i + 1 < len(argv):
            return duration_seconds(argv[i + 1])
        if a.startswith("--checkpoint-interval="):
            return duration_seconds(a.split("=", 1)[1])
    return None


def check_checkpoints(rules: dict, compose: dict, k8s_docs: list[tuple[str, dict]]) -> list[str]:
    """The stale-checkpoint alert fires after 3 intervals: every deployed job runs at that interval."""
    stale = [r for g in rules.get("groups") or [] for r in g.get("rules") or [] if r.get("alert") == "TributaryCheckpointStale"]
    if not stale:
        return ["checkpoints: no TributaryCheckpointStale alert"]
    m = re.search(r">\s*([0-9.]+)\s*$", stale[0]["expr"])
    if not m:
        return [f"checkpoints: cannot read the threshold of {stale[0]['expr']!r}"]
    interval = float(m.group(1)) / 3
    problems = []
    where = [(f"compose {n}", (svc or {}).get("command")) for n, svc in (compose.get("services") or {}).items() if n in JOBS]
    for fname, doc in k8s_docs:
        if doc.get("kind") in ("StatefulSet", "Deployment"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c["name"] in JOBS:
                    where.append((f"k8s {fname}", c.get("args")))
    for name, argv in where:
        got = checkpoint_interval(argv)
        if got != interval:
            problems.append(f"checkpoints: {name} runs with --checkpoint-interval {got}, the alert assumes {interval:g}s")
    return problems


# ---- topics -------------------------------------------------------------------------------------

def native_topics(path: Path = CREATE_TOPICS) -> dict[str, int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TOPICS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError(f"{path}: no TOPICS = {{...}}")


def check_topics(compose: dict, expected: dict[str, int]) -> list[str]:
    svc = (compose.get("services") or {}).get("topics")
    if not svc:
        return ["topics: no one-shot 'topics' service in docker-compose.yml"]
    spec = env_mapping(svc.get("environment")).get("TOPICS", "")
    got = {}
    for item in spec.split():
        name, _, parts = item.partition(":")
        got[name] = int(parts) if parts.isdigit() else -1
    if got != expected:
        return [f"topics: compose creates {got}, scripts/create_topics.py {expected}"]
    return []


# ---- metric names -------------------------------------------------------------------------------

def metric_names(expr: str) -> set[str]:
    """Tributary metric names in a PromQL expression (recording-rule names like a:b:c left out)."""
    expr = re.sub(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]+", " ", expr)
    expr = re.sub(r'"[^"]*"', '""', expr)
    return {m for m in re.findall(r"\b[a-z_][a-z0-9_]*\b", expr) if m.startswith(METRIC_PREFIXES)}


def known_metric(name: str) -> bool:
    if name in CONTRACT_METRICS:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in CONTRACT_HISTOGRAMS:
            return True
    return False


def rule_exprs(rules: dict) -> list[tuple[str, str]]:
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in rules.get("groups") or [] for r in g.get("rules") or []]


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    out = []
    def walk(panels):
        for p in panels or []:
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels"))
    walk(dashboard.get("panels"))
    return out


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by values, so the expression parses as plain PromQL."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?", ".*", expr)


def promtool_parse(exprs: list[tuple[str, str]]) -> list[str]:
    """Every expression through `promtool check rules` as a recording rule (promtool 2.x has no parse command)."""
    promtool = shutil.which("promtool")
    if not promtool:
        return ["metrics: promtool not found (ops/setup.sh installs it)"]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}:check", "expr": grafana_to_promql(e)} for i, (_, e) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
        path = f.name
    try:
        run = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        Path(path).unlink()
    if run.returncode != 0:
        return [f"metrics: a dashboard expression does not parse: {(run.stdout + run.stderr).strip()}"]
    return []


def check_metrics(rules: dict, dashboards: list[dict], parse: bool = True) -> list[str]:
    problems = []
    exprs = [(f"alerts.yml {n}", e) for n, e in rule_exprs(rules)]
    dash = [(f"dashboard {d.get('title')}: {t}", e) for d in dashboards for t, e in dashboard_exprs(d)]
    for where, expr in exprs + dash:
        for name in sorted(metric_names(expr)):
            if not known_metric(name):
                problems.append(f"metrics: {where} uses {name}, not a feature-contract metric")
    recorded = {r.get("record") for g in rules.get("groups") or [] for r in g.get("rules") or [] if r.get("record")}
    for where, expr in dash:
        for rec in re.findall(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]+", expr):
            if rec not in recorded:
                problems.append(f"metrics: {where} uses recording rule {rec}, not in alerts.yml")
    if parse and dash:
        problems += promtool_parse(dash)
    return problems


def check_grafana(dashboards: list[dict], datasources: list[dict]) -> list[str]:
    problems = []
    uids = {ds.get("uid") for d in datasources for ds in d.get("datasources") or []}
    for d in dashboards:
        ids = []
        def walk(panels):
            for p in panels or []:
                ids.append(p.get("id"))
                ds = p.get("datasource")
                if isinstance(ds, dict) and ds.get("uid") not in uids:
                    problems.append(f"grafana: {d.get('title')}: panel {p.get('title')!r} uses datasource "
                                    f"{ds.get('uid')!r}, not provisioned ({sorted(uids)})")
                walk(p.get("panels"))
        walk(d.get("panels"))
        if len(ids) != len(set(ids)):
            problems.append(f"grafana: {d.get('title')}: panel ids repeat")
        if not d.get("uid"):
            problems.append(f"grafana: {d.get('title')}: no uid")
    return problems


# ---- k8s and terraform ---------------------------------------------------------------------------

def k8s_documents(root: Path = K8S) -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(root.glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            docs += [(path.name, d) for d in yaml.safe_load_all(f) if d]
    return docs


def check_k8s(docs: list[tuple[str, dict]], version: str = "1.30", root: Path = K8S) -> list[str]:
    problems = []
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
        SKIPPED.append("k8s: kubernetes-validate not installed (ops/setup.sh installs it): schemas not checked")
    configmaps = {}
    for fname, doc in docs:
        kind = doc.get("kind")
        if kind == "Kustomization":
            continue
        if kubernetes_validate is not None:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except Exception as e:  # noqa: BLE001 - one line per invalid document
                first = str(e).splitlines()[0]
                problems.append(f"k8s: {fname}: {kind} {doc.get('metadata', {}).get('name')}: {first}")
        if kind == "ConfigMap":
            name = doc["metadata"]["name"]
            configmaps[name] = set((doc.get("data") or {}).keys())
            if name.endswith("-env"):
                for key in sorted(configmaps[name] - CONTRACT_ENV):
                    problems.append(f"k8s: {fname}: ConfigMap {name} has {key}, not a feature-contract variable")
    for fname, doc in docs:
        spec = (doc.get("spec") or {}).get("template", {}).get("spec", {})
        for c in spec.get("containers") or []:
            names = env_names([e["name"] for e in c.get("env") or []])
            for unknown in sorted(names - CONTRACT_ENV - own_env(c["name"], names)):
                problems.append(f"k8s: {fname}: container {c['name']} sets {unknown}, not a feature-contract variable")
            for ref in c.get("envFrom") or []:
                cm = (ref.get("configMapRef") or {}).get("name")
                if cm and cm not in configmaps:
                    problems.append(f"k8s: {fname}: container {c['name']} reads ConfigMap {cm}, not defined")
    kustomization = root / "kustomization.yaml"
    if kustomization.exists():
        listed = set(load_yaml(kustomization).get("resources") or [])
        present = {p.name for p in root.glob("*.yaml")} - {"kustomization.yaml"}
        if listed != present:
            problems.append(f"k8s: kustomization.yaml lists {sorted(listed)}, the folder has {sorted(present)}")
    return problems


def check_terraform(root: Path = TERRAFORM) -> list[str]:
    try:
        import hcl2
    except ImportError:
        SKIPPED.append("terraform: python-hcl2 not installed (ops/setup.sh installs it): .tf files not parsed")
        return []
    problems = []
    files = sorted(root.rglob("*.tf"))
    if not files:
        problems.append(f"terraform: no .tf files under {root}")
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                hcl2.load(f)
        except Exception as e:  # noqa: BLE001 - one line per file that does not parse
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            problems.append(f"terraform: {where}: {str(e).splitlines()[0]}")
    return problems


# ---- main ---------------------------------------------------------------------------------------

CHECKS = ("compose", "env", "prometheus", "checkpoints", "topics", "metrics", "grafana", "k8s", "terraform")


def run(only: set[str], contract: Path | None) -> list[str]:
    compose = load_yaml(COMPOSE)
    problems = []
    if contract:
        problems += check_contract(contract)
    if "compose" in only:
        problems += check_compose(compose, json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8")))
        problems += check_dockerfile()
    if "env" in only:
        problems += check_env(compose)
    if "prometheus" in only:
        problems += check_prometheus(load_yaml(PROM_NATIVE), load_yaml(PROM_COMPOSE), compose)
    if "checkpoints" in only:
        problems += check_checkpoints(load_yaml(ALERTS), compose, k8s_documents())
    if "topics" in only:
        problems += check_topics(compose, native_topics())
    dashboards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))]
    if "metrics" in only:
        problems += check_metrics(load_yaml(ALERTS), dashboards)
    if "grafana" in only:
        problems += check_grafana(dashboards, [load_yaml(p) for p in sorted(DATASOURCES.glob("*.yml"))])
    if "k8s" in only:
        problems += check_k8s(k8s_documents())
    if "terraform" in only:
        problems += check_terraform()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contract", type=Path, help="the feature contract's markdown: its names must equal ours")
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    args = parser.parse_args(argv)
    problems = run(set(args.only), args.contract)
    for note in SKIPPED:
        print(f"check_ops: skipped: {note}", file=sys.stderr)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_ops: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_ops: ok ({', '.join(c for c in CHECKS if c in args.only)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
