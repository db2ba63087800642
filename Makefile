# Tributary — the two commands of the README, and a few more.
#   make demo   the main job end to end on the native local stack (both feature jobs, generators, a summary)
#   make run    runs the small example job over generated data
#   make test   runs every test: the Swift suites (debug build), the schema gate, the Flink diff, the ops
#               checks (promtool, compose schema) and the Python suite
#   make bench  runs the runtime benchmark in release mode and writes bench-results/*.json
#   make flink-diff / flink-diff-large   the differential test against Apache Flink (small / large data)
#   make bench-flink   bench-windows and the same workloads on Apache Flink, side by side
#   make up / down / status   the native local stack on loopback: Kafka-compatible broker (Tansu) with
#                      the design's topics, redis-server, Prometheus (scripts/stack.sh)
#   make crash-soak    the kill -9 crash test with 100 kills (make test runs it with 10)
#   make bench-checkpoint   checkpoint duration, pause and restore with 1 M keys (heap, then RocksDB)
#   make bench-kafka   Kafka sink and source → Avro decode throughput on the local broker (docs/kafka.md)

SWIFT ?= swift

help: ## this list
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## (.*)/\1|\2/' | awk -F'|' '{ printf "  make %-18s %s\n", $$1, $$2 }'
RUN_ARGS ?=

# ops-check, dashboard-png (ops/README.md).
include ops/Makefile.fragment

.PHONY: help setup run test bench build clean flink-diff flink-diff-large bench-flink crash-soak bench-checkpoint bench-kafka up down status schema-gate

setup: ## install what the build and tests need (apt packages, the local broker's wheels)
	@bash scripts/setup.sh

run: setup ## the small example job over generated data (RUN_ARGS)
	$(SWIFT) run -c release example-job $(RUN_ARGS)

build: setup ## debug build with tests
	$(SWIFT) build --build-tests

test: setup ## every test: Swift suites, schema gate, Flink diff, ops checks, Python suite
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing; status=$$?; \
	    bash scripts/redis-test-server.sh stop; bash scripts/local-broker.sh stop; \
	    KAFKA_LOCAL_DIR=.build/feature-jobs-broker bash scripts/local-broker.sh stop; \
	    REDIS_TEST_DIR=.build/feature-jobs-redis bash scripts/redis-test-server.sh stop; \
	    SCHEMA_REGISTRY_DIR=.build/schema-registry-tests bash scripts/schema-registry.sh stop >/dev/null 2>&1; exit $$status
	.venv-kafka/bin/python scripts/test_schema_gate.py
	.venv-kafka/bin/python scripts/schema_gate.py
	python3 scripts/flink_diff.py
	$(MAKE) --no-print-directory ops-check
	$(MAKE) --no-print-directory test-python

# The same jobs on Apache Flink 2.3 and on Tributary, outputs diffed (CI runs the small data set).
flink-diff: setup ## the differential test against Apache Flink 2.3 (small data)
	$(SWIFT) build --product flink-diff-tributary
	python3 scripts/flink_diff.py

flink-diff-large: setup ## the differential test against Apache Flink 2.3 (200 k events)
	$(SWIFT) build -c release --product flink-diff-tributary
	python3 scripts/flink_diff.py --events 200000 --keys 500 --tributary-bin .build/release/flink-diff-tributary

# bench-windows and Flink on the same generated workloads, one run, side by side (BENCH_ARGS: e.g. --records 2000000).
BENCH_ARGS ?=
bench-flink: setup ## bench-windows and the same workloads on Flink, side by side
	$(SWIFT) build -c release --product bench-windows
	python3 scripts/bench_vs_flink.py $(BENCH_ARGS)

bench: setup ## the runtime benchmark (bench-windows), JSON in bench-results/
	mkdir -p bench-results
	$(SWIFT) run -c release bench-windows --json bench-results/bench-windows.json

clean: ## remove build output and benchmark results
	rm -rf .build bench-results

# The kill -9 crash test with 100 random kills (CRASH_SEED=… replays one run).
CRASH_KILLS ?= 100
crash-soak: setup ## the kill -9 crash test with CRASH_KILLS (100) kills
	$(SWIFT) build --build-tests
	CRASH_KILLS=$(CRASH_KILLS) $(SWIFT) test --skip-build --disable-swift-testing --filter CrashTests

bench-checkpoint: setup ## checkpoint duration, pause and restore with 1 M keys (heap, RocksDB)
	$(SWIFT) run -c release bench-checkpoint --keys 1000000
	$(SWIFT) run -c release bench-checkpoint --keys 1000000 --state-backend rocksdb

# The Kafka connectors' throughput: a broker of its own on a free port, 1 M records (BENCH_ARGS: --records N --parallelism P).
bench-kafka: setup ## Kafka sink and source → Avro decode throughput on a broker of its own
	$(SWIFT) build -c release --product bench-kafka
	@bootstrap=$$(KAFKA_LOCAL_DIR=.build/bench-kafka-broker bash scripts/local-broker.sh start | tail -1); \
	    .build/release/bench-kafka --bootstrap $$bootstrap $(BENCH_ARGS); status=$$?; \
	    KAFKA_LOCAL_DIR=.build/bench-kafka-broker bash scripts/local-broker.sh stop; exit $$status

# The native local stack (no Docker): broker :9092 with the topics, Redis :6379, Prometheus :9090.
up: setup ## start the native local stack: broker with the topics, Redis, Prometheus
	@bash scripts/stack.sh up

down: ## stop the local stack
	@bash scripts/stack.sh down

status: ## what of the local stack runs where
	@bash scripts/stack.sh status

# The feature jobs (docs/features.md).
#   make demo            the README's main command: stack, both jobs, generators at 5k/s for a minute, a summary
#   make run-features    txn-features and click-features against the running local stack (Ctrl-C: savepoint)
#   make seed            the generators at 5k events/s per stream into the local stack (SEED_ARGS)
#   make drill           wipe Redis, rebuild it from the offline log, verify, time to recovery
#   make backfill        the offline log ($$TRIBUTARY_OFFLINE_DIR) into Redis, newest event time wins
#   make bench-features  throughput, replay, drill and latency figures of the jobs (docs/benchmarks.md)
#   make bench-scaleout  txn-features as one process and as N processes, same data (docs/scaling.md)
SEED_ARGS ?= --rate 5000 --count 300000 --start now
.PHONY: demo run-features seed drill backfill bench-features ab-features bench-scaleout

demo: setup ## the main job end to end: stack, both feature jobs, generators at 5k/s, a summary
	@bash scripts/demo.sh

run-features: setup ## txn-features and click-features against the running local stack (/metrics on :9464, :9465)
	$(SWIFT) build -c release --product txn-features
	$(SWIFT) build -c release --product click-features
	@bin=$$($(SWIFT) build -c release --show-bin-path); \
	    $$bin/click-features --checkpoint-dir data/checkpoints/click-features --metrics-port 9465 & cpid=$$!; \
	    trap 'kill -TERM $$cpid' INT TERM; \
	    $$bin/txn-features --checkpoint-dir data/checkpoints/txn-features --metrics-port 9464; kill -TERM $$cpid 2>/dev/null; wait $$cpid

seed: setup ## the generators into the local stack (SEED_ARGS)
	$(SWIFT) run -c release generate $(SEED_ARGS)

drill: setup ## wipe Redis, rebuild it from the offline log, verify, time to recovery
	@bash scripts/drill.sh

backfill: setup ## the offline log into Redis, newest event time wins
	$(SWIFT) run -c release backfill

# DLQ workflow: `replay dlq --dlq txn.events.dlq --export fixed.jsonl` writes dead letters out for
# fixing; `make replay file=fixed.jsonl` re-ingests them to their source topics (or to=TOPIC);
# `make replay dlq=txn.events.dlq [reason=CODE]` re-publishes a DLQ as it is.
replay: setup ## re-ingest fixed dead letters: file=FILE (JSON lines from replay --export) or dlq=TOPIC [reason=CODE] [to=TOPIC]
	@if [ -z "$(file)$(dlq)" ]; then echo "make replay file=FILE (fixed records, JSON lines) or make replay dlq=TOPIC [reason=CODE]; optional to=TOPIC" >&2; exit 2; fi
	@$(SWIFT) build -c release --product replay 2>&1 | grep -E "error" >&2 || true
	@bin=$$($(SWIFT) build -c release --show-bin-path); \
	    if [ -n "$(file)" ]; then $$bin/replay file --bootstrap $${KAFKA_BOOTSTRAP:-127.0.0.1:9092} --file "$(file)" $(if $(to),--to "$(to)"); \
	    else $$bin/replay dlq --bootstrap $${KAFKA_BOOTSTRAP:-127.0.0.1:9092} --dlq "$(dlq)" $(if $(reason),--reason "$(reason)") $(if $(to),--to "$(to)"); fi

bench-pause: setup ## txn-features' checkpoint pause per checkpoint as its state grows (PAUSE_EVENTS, PAUSE_INTERVAL, PAUSE_BIN)
	@bash scripts/bench_pause.sh

bench-features: setup ## feature-job throughput, replay, drill and latency figures
	@bash scripts/bench_features.sh

# Two txn-features builds, alternating on the same input (the only fair comparison on a noisy VM).
ab-features: setup ## A=REV|tree|BINARY B=REV|tree|BINARY: alternating txn-features runs (AB_PAIRS, AB_EVENTS, AB_ARGS, AB_REPLAY)
	@A="$(A)" B="$(B)" bash scripts/ab_features.sh

# txn-features as one process and as BENCH_PROCESSES processes on the same data (docs/scaling.md).
bench-scaleout: setup ## txn-features as 1 and as N processes: events/s and the Redis digests
	@bash scripts/bench_scaleout.sh

# Every schema version BACKWARD compatible with the previous one (Avro's own rules); make test runs it.
schema-gate: setup ## check every schema version against the previous one (BACKWARD)
	.venv-kafka/bin/python scripts/schema_gate.py

# ---- The Python learning loop (python/, venv .venv-py by python/setup.sh; docs/python.md) ----------------
#   make train          Avro offline log → Parquet, Feast point-in-time training set, LR v1 / XGBoost v2 → MLflow + ONNX
#   make serve          the scoring service (FastAPI) on 127.0.0.1:8000 (SCORING_PORT), Redis from REDIS_HOST/REDIS_PORT
#   make test-latency   own Redis + service on loopback, 500 requests/s for 20 s: p50/p95/p99 and errors
#   make drift-check    PSI / Jensen–Shannon per key feature, reference vs recent window (exit 1 on an alert)
#   make test-python    the Python test suite (pytest; redis-server on free loopback ports)
#   make parity         Feast point-in-time values vs the online values served at the same time
#   make synthetic      a synthetic offline log, labels and Redis rows in the jobs' layout (until the jobs run)
#   make e2e            event → score through its own broker, txn-features (release build), Redis and the service
PY := .venv-py/bin/python
TRAIN_ARGS ?=
CLICK_LABELS ?= data/click-labels.csv
TRAIN_PERSO_ARGS ?=
LATENCY_ARGS ?= --rate 500 --duration 20
DRIFT_ARGS ?=
SYNTHETIC_ARGS ?=
E2E_ARGS ?= --probes 200 --rate 20
.PHONY: setup-python train train-perso serve test-latency drift-check test-python parity synthetic e2e

setup-python: ## create/refresh .venv-py (pinned versions)
	@bash python/setup.sh

synthetic: setup-python ## synthetic offline log ($$TRIBUTARY_OFFLINE_DIR), labels (data/labels.csv); SYNTHETIC_ARGS=--redis also writes Redis
	$(PY) -m tributary_ml.synthetic --labels data/labels.csv $(SYNTHETIC_ARGS)

train: setup-python ## train v1 (LR) and v2 (XGBoost), register in MLflow, export ONNX to data/models
	$(PY) -m tributary_ml.train $(TRAIN_ARGS)

train-perso: setup-python ## the purchase-propensity model (perso-v1/v2) from click-features' log and generate --click-labels (CLICK_LABELS)
	$(PY) -m tributary_ml.train_perso --click-labels $(CLICK_LABELS) $(TRAIN_PERSO_ARGS)

serve: setup-python ## run the scoring service (MODEL_VERSION, REDIS_HOST, REDIS_PORT, SCORING_PORT)
	$(PY) -m tributary_ml.serve

test-latency: setup-python ## drive the scoring service at 500 requests/s and report p50/p95/p99 and errors
	@mkdir -p bench-results
	$(PY) -m tributary_ml.latency $(LATENCY_ARGS) --json bench-results/scoring-latency.json

drift-check: setup-python ## PSI/JS drift check on the offline log; chart data/drift.png, metrics data/drift.prom
	$(PY) -m tributary_ml.drift --chart data/drift.png --metrics-file data/drift.prom $(DRIFT_ARGS)

test-python: setup-python ## the Python test suite
	$(PY) -m pytest python/tests -q -p no:cacheprovider

parity: setup-python ## online/offline parity check (replay mode; --mode snapshot for the live store)
	$(PY) -m tributary_ml.parity

e2e: setup-python ## end-to-end event → score latency on loopback (needs .build/release/txn-features)
	@mkdir -p bench-results
	$(PY) -m tributary_ml.e2e --mode kafka --local $(E2E_ARGS) --json bench-results/scoring-e2e.json
