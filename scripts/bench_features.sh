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
#                  the broker's part (event → read) and the job's (read → in Redis). Topics of 2
#                  partitions (one per subtask: 5k/s needs no more), then of 12 and 6 as in 1–3:
#                  the local broker's latency grows with the partitions a request spans;
#   5. the broker  alone at the same record rate (2 × BENCH_RATE), produced → consumed, on 2 and
#                  on 12 partitions: the floor under 4 (scripts/broker_hop.py).
# Steps 1 and 2 run with BENCH_PARALLELISM subtasks (3: one more than the cores, so that a subtask
# waiting on Redis or Kafka leaves the CPU to another — 20 % more than 2 here, docs/benchmarks.md);
# the latency runs with the job's default (2).
# BENCH_EVENTS (1000000) BENCH_RATE (5000) BENCH_SECONDS (30) BENCH_PARALLELISM (3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EVENTS=${BENCH_EVENTS:-1000000}
RATE=${BENCH_RATE:-5000}
SECS=${BENCH_SECONDS:-30}
PAR=${BENCH_PARALLELISM:-3}
WORK=$ROOT/.build/bench-features
say() { echo "bench-features: $*" >&2; }

. scripts/lib/bench_stack.sh
bench_stack_start "$WORK" "txn-features generate drill" t-txn:12 t-dev:6 l-txn:2 l-dev:2 w-txn:12 w-dev:6 hop2:2 hop12:12
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

echo "== 1. throughput: Kafka → txn-features → Redis + offline log (bounded, $EVENTS transactions, parallelism $PAR)"
job run t-txn t-dev --bounded --parallelism "$PAR" | grep -E "events in|side records|online|offline rows|dead letters"

echo "== 3. drill: wipe Redis, rebuild from the offline log"
"$BIN/drill" --offline-dir "$WORK/run/offline" --redis "127.0.0.1:$RPORT" | tail -1

echo "== 2. replay: the same retained topics again, fresh group and checkpoints (parallelism $PAR)"
out=$(job replay t-txn t-dev --bounded --parallelism "$PAR")
echo "$out" | grep -E "events in|side records"
rate=$(echo "$out" | sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' | head -1)
if [ -n "$rate" ] && [ "$rate" -gt 0 ]; then
    echo "   one hour at 5k events/s (18 000 000 transactions) at this rate: $((18000000 / rate)) s"
fi

# The producer as quick as this broker allows (docs/benchmarks.md: idempotent producers and lingering
# 0 ms wait far longer here).
QUICK="enable.idempotence=false max.in.flight.requests.per.connection=1 linger.ms=1"
latency() {  # latency NAME TXN DEV: the job running, the generator at RATE for SECS
    local name=$1 txn=$2 dev=$3 pid x=()
    for kv in $QUICK; do x+=(-X "$kv"); done
    job "$name" "$txn" "$dev" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    pid=$!
    sleep 3
    "$BIN/generate" --bootstrap "$BOOT" --streams txn,devices --count $((RATE * SECS)) --rate "$RATE" --start now \
        --seed 2 --txn-topic "$txn" --devices-topic "$dev" "${x[@]}" 2>/dev/null | head -1
    sleep 2
    kill -TERM "$pid"
    wait "$pid" || true
    grep -E -A2 "event→Redis" "$WORK/$name.out"
}
echo "== 4. latency at $RATE transactions/s (+ $RATE device records/s) for $SECS s (producer: $QUICK)"
echo "-- topics of 2 partitions each"
latency latency l-txn l-dev
echo "-- topics of 12 and 6 partitions"
latency latency-wide w-txn w-dev

# Python's producer (confluent-kafka) is quickest on this broker idempotent with linger 5 ms (the
# generator's settings above make it slower); the floor is the broker's hop either way.
HOP="enable.idempotence=true linger.ms=5"
echo "== 5. the broker alone at $((2 * RATE)) records/s for $SECS s (produced → consumed, no job; Python producer: $HOP)"
for t in hop2 hop12; do
    echo -n "$t: "
    .venv-kafka/bin/python scripts/broker_hop.py "$BOOT" "$t" $((2 * RATE)) "$SECS" $HOP
done
