# Tributary — the two commands of the README, and a few more.
#   make run    runs the main job end to end (for now: the example job over generated data)
#   make test   runs every test (debug build)
#   make bench  runs the runtime benchmark in release mode and writes bench-results/*.json
#   make flink-diff / flink-diff-large   the differential test against Apache Flink (small / large data)
#   make bench-flink   bench-windows and the same workloads on Apache Flink, side by side
#   make up / down / status   the native local stack on loopback: Kafka-compatible broker (Tansu) with
#                      the design's topics, redis-server, Prometheus (scripts/stack.sh)
#   make crash-soak    the kill -9 crash test with 100 kills (make test runs it with 10)
#   make bench-checkpoint   checkpoint duration, pause and restore with 1 M keys (heap, then RocksDB)
#   make bench-kafka   Kafka sink and source → Avro decode throughput on the local broker (docs/kafka.md)

SWIFT ?= swift
RUN_ARGS ?=

.PHONY: setup run test bench build clean flink-diff flink-diff-large bench-flink crash-soak bench-checkpoint bench-kafka up down status schema-gate

setup:
	@bash scripts/setup.sh

run: setup
	$(SWIFT) run -c release example-job $(RUN_ARGS)

build: setup
	$(SWIFT) build --build-tests

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing; status=$$?; \
	    bash scripts/redis-test-server.sh stop; bash scripts/local-broker.sh stop; \
	    SCHEMA_REGISTRY_DIR=.build/schema-registry-tests bash scripts/schema-registry.sh stop >/dev/null 2>&1; exit $$status
	.venv-kafka/bin/python scripts/test_schema_gate.py
	.venv-kafka/bin/python scripts/schema_gate.py
	python3 scripts/flink_diff.py

# The same jobs on Apache Flink 2.3 and on Tributary, outputs diffed (CI runs the small data set).
flink-diff: setup
	$(SWIFT) build --product flink-diff-tributary
	python3 scripts/flink_diff.py

flink-diff-large: setup
	$(SWIFT) build -c release --product flink-diff-tributary
	python3 scripts/flink_diff.py --events 200000 --keys 500 --tributary-bin .build/release/flink-diff-tributary

# bench-windows and Flink on the same generated workloads, one run, side by side (BENCH_ARGS: e.g. --records 2000000).
BENCH_ARGS ?=
bench-flink: setup
	$(SWIFT) build -c release --product bench-windows
	python3 scripts/bench_vs_flink.py $(BENCH_ARGS)

bench: setup
	mkdir -p bench-results
	$(SWIFT) run -c release bench-windows --json bench-results/bench-windows.json

clean:
	rm -rf .build bench-results

# The kill -9 crash test with 100 random kills (CRASH_SEED=… replays one run).
CRASH_KILLS ?= 100
crash-soak: setup
	$(SWIFT) build --build-tests
	CRASH_KILLS=$(CRASH_KILLS) $(SWIFT) test --skip-build --disable-swift-testing --filter CrashTests

bench-checkpoint: setup
	$(SWIFT) run -c release bench-checkpoint --keys 1000000
	$(SWIFT) run -c release bench-checkpoint --keys 1000000 --state-backend rocksdb

# The Kafka connectors' throughput: a broker of its own on a free port, 1 M records (BENCH_ARGS: --records N --parallelism P).
bench-kafka: setup
	$(SWIFT) build -c release --product bench-kafka
	@bootstrap=$$(KAFKA_LOCAL_DIR=.build/bench-kafka-broker bash scripts/local-broker.sh start | tail -1); \
	    .build/release/bench-kafka --bootstrap $$bootstrap $(BENCH_ARGS); status=$$?; \
	    KAFKA_LOCAL_DIR=.build/bench-kafka-broker bash scripts/local-broker.sh stop; exit $$status

# The native local stack (no Docker): broker :9092 with the topics, Redis :6379, Prometheus :9090.
up: setup
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

status:
	@bash scripts/stack.sh status

# Every schema version BACKWARD compatible with the previous one (Avro's own rules); make test runs it.
schema-gate: setup
	.venv-kafka/bin/python scripts/schema_gate.py
