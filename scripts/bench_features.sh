#!/usr/bin/env bash
# make bench-features: the feature-job figures of docs/benchmarks.md, on a broker and a redis-server
# of their own (loopback, stopped by PID at the end):
#   1. throughput  Kafka → txn-features → Redis + offline log, bounded, BENCH_EVENTS transactions
#                  (+ as many device records), unthrottled input already in the topics;
#   2. replay      the same topics again from the beginning with a fresh group and checkpoints —
#                  what replaying retained data costs, and the time one hour at 5k events/s
#                  (18 M events) would take at that rate;
#   3. drill       wipe Redis, rebuild it from the offline log, compare, time to recovery;
#   4. latency     txn-features running, transactions and devices at BENCH_RATE/s with Kafka
#                  timestamps from the wall clock for BENCH_SECONDS: event → in Redis, split into
#                  the broker's part (event → read) and the job's (read → in Redis);
#   5. the broker  alone at the same record rate (2 × BENCH_RATE), produced → consumed, with the
#                  generator's producer settings and with the quickest we found: the floor under 4.
# BENCH_EVENTS (1000000) BENCH_RATE (5000) BENCH_SECONDS (30)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EVENTS=${BENCH_EVENTS:-1000000}
RATE=${BENCH_RATE:-5000}
SECS=${BENCH_SECONDS:-30}
WORK=$ROOT/.build/bench-features
say() { echo "bench-features: $*" >&2; }

. scripts/lib/bench_stack.sh
bench_stack_start "$WORK" "txn-features generate drill" t-txn:12 t-dev:6 l-txn:12 l-dev:6 hop:12
job() {  # job NAME TXN DEV extra...
    local name=$1 txn=$2 dev=$3; shift 3
    exec "$BIN/txn-features" --bootstrap "$BOOT" --redis "127.0.0.1:$RPORT" --txn-topic "$txn" --device-topic "$dev" \
        --checkpoint-dir "$WORK/$name/checkpoints" --offline-dir "$WORK/$name/offline" --group-id "bench-$name" \
        --features-topic none --progress-seconds 0 "$@"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); broker and Redis on loopback"

say "generating $EVENTS transactions and $EVENTS device records (unthrottled)"
"$BIN/generate" --bootstrap "$BOOT" --streams txn,devices --count "$EVENTS" --rate 0 --seed 1 \
    --txn-topic t-txn --devices-topic t-dev 2>/dev/null | head -1

echo "== 1. throughput: Kafka → txn-features → Redis + offline log (bounded, $EVENTS transactions)"
job run t-txn t-dev --bounded | grep -E "events in|online|offline rows|dead letters"

echo "== 3. drill: wipe Redis, rebuild from the offline log"
"$BIN/drill" --offline-dir "$WORK/run/offline" --redis "127.0.0.1:$RPORT" | tail -1

echo "== 2. replay: the same retained topics again, fresh group and checkpoints"
out=$(job replay t-txn t-dev --bounded)
echo "$out" | grep -E "events in"
rate=$(echo "$out" | sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' | head -1)
if [ -n "$rate" ] && [ "$rate" -gt 0 ]; then
    echo "   one hour at 5k events/s (18 000 000 transactions) at this rate: $((18000000 / rate)) s"
fi

echo "== 4. latency at $RATE transactions/s (+ $RATE device records/s) for $SECS s (producer: no idempotence, in-flight 1, linger 1 ms)"
job latency l-txn l-dev >"$WORK/latency.out" 2>"$WORK/latency.log" &
pid=$!
sleep 3
# The producer as quick as this broker allows (docs/benchmarks.md: idempotent producers wait far longer here).
"$BIN/generate" --bootstrap "$BOOT" --streams txn,devices --count $((RATE * SECS)) --rate "$RATE" --start now \
    --seed 2 --txn-topic l-txn --devices-topic l-dev \
    -X enable.idempotence=false -X max.in.flight.requests.per.connection=1 -X linger.ms=1 2>/dev/null | head -1
sleep 2
kill -TERM "$pid"
wait "$pid" || true
grep -E -A2 "event→Redis" "$WORK/latency.out"

echo "== 5. the broker alone at $((2 * RATE)) records/s for $SECS s (produced → consumed, no job)"
.venv-kafka/bin/python scripts/broker_hop.py "$BOOT" hop $((2 * RATE)) "$SECS" enable.idempotence=true linger.ms=5
.venv-kafka/bin/python scripts/broker_hop.py "$BOOT" hop $((2 * RATE)) "$SECS" enable.idempotence=false max.in.flight.requests.per.connection=1 linger.ms=1
