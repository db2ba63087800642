# Sourced by the feature-job benchmarks: release builds of PRODUCTS, then a broker and a
# redis-server of their own under WORK (loopback, stopped by PID on exit) with TOPIC:PARTITIONS
# created (each with a one-partition .dlq). Sets BIN, BOOT and RPORT; extra cleanup goes in
# bench_cleanup_extra (a function the caller may define).
#   bench_stack_start WORK "txn-features generate" t-txn:12 t-dev:6
bench_stack_start() {
    local work=$1 products=$2 p
    shift 2
    for p in $products; do swift build -c release --product "$p" 2>&1 | grep -E "error" >&2 || true; done
    BIN=$(swift build -c release --show-bin-path)
    export KAFKA_LOCAL_DIR=$work/broker REDIS_TEST_DIR=$work/redis
    trap bench_stack_stop EXIT
    rm -rf "$work"
    mkdir -p "$work"
    BOOT=$(bash scripts/local-broker.sh start | tail -1)
    RPORT=$(bash scripts/redis-test-server.sh start | tail -1)
    .venv-kafka/bin/python - "$BOOT" "$@" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
topics = {t: int(n) for t, n in (arg.rsplit(":", 1) for arg in sys.argv[2:])}
topics.update({t + ".dlq": 1 for t in list(topics)})
for f in a.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
    f.result()
PY
}

bench_stack_stop() {
    if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra || true; fi
    bash scripts/local-broker.sh stop >/dev/null 2>&1 || true
    bash scripts/redis-test-server.sh stop >/dev/null 2>&1 || true
}
