#!/usr/bin/env bash
# make demo: the whole loop on this machine, natively. Sets up what is missing, starts the local
# stack (unless it is already up), runs txn-features and click-features, drives the generators at
# DEMO_RATE events/s per stream for DEMO_SECONDS, stops the jobs with a savepoint, prints a summary
# (events in, features written, DLQ count and reasons, event→Redis latency percentiles, checkpoints)
# and stops everything it started.
#   DEMO_RATE (5000)  DEMO_SECONDS (60)  DEMO_DIR (data/demo)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RATE=${DEMO_RATE:-5000}
SECONDS_TO_RUN=${DEMO_SECONDS:-60}
DIR=${DEMO_DIR:-$ROOT/data/demo}
say() { echo "demo: $*" >&2; }

bash scripts/setup.sh >/dev/null
say "building the jobs and the generator (release)"
for p in txn-features click-features generate; do swift build -c release --product "$p" 2>&1 | grep -E "error|warning: " >&2 || true; done
BIN=$(swift build -c release --show-bin-path)

started_stack=0
if ! bash scripts/stack.sh status >/dev/null 2>&1; then
    say "starting the local stack"
    bash scripts/stack.sh up >&2
    started_stack=1
    # A fresh broker has no data: checkpoints of an earlier demo point past its (empty) topics.
    rm -rf "$DIR"
fi
mkdir -p "$DIR"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$started_stack" = 1 ]; then say "stopping the local stack"; bash scripts/stack.sh down >&2 || true; fi
}
trap cleanup EXIT

export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
export TRIBUTARY_OFFLINE_DIR="$DIR/offline"
"$BIN/txn-features" --checkpoint-dir "$DIR/checkpoints/txn-features" --checkpoint-interval 10s \
    --progress-seconds 10 >"$DIR/txn-features.out" 2>"$DIR/txn-features.log" &
pids+=($!)
"$BIN/click-features" --checkpoint-dir "$DIR/checkpoints/click-features" --checkpoint-interval 10s \
    --progress-seconds 10 >"$DIR/click-features.out" 2>"$DIR/click-features.log" &
pids+=($!)
sleep 2
for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { say "a job did not start:"; cat "$DIR"/*.log >&2; exit 1; }
done

say "generating $RATE events/s per stream (transactions, clicks, devices) for $SECONDS_TO_RUN s"
"$BIN/generate" --rate "$RATE" --count $((RATE * SECONDS_TO_RUN)) --start now --seed "$(date +%s)" \
    --labels "$DIR/fraud-labels.csv" >"$DIR/generate.out" 2>"$DIR/generate.log"
sleep 3   # the last events through the jobs

say "stopping the jobs with a savepoint"
for p in "${pids[@]}"; do kill -TERM "$p"; done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
pids=()

echo
echo "=== Tributary demo: $RATE events/s per stream for $SECONDS_TO_RUN s ==="
cat "$DIR/generate.out"
echo
cat "$DIR/txn-features.out"
echo
cat "$DIR/click-features.out"
echo
files=$(find "$DIR/offline" -name '*.avro' ! -path '*/.*' 2>/dev/null | wc -l)
chk_txn=$(ls -d "$DIR"/checkpoints/txn-features/chk-* 2>/dev/null | wc -l)
echo "offline log: $files committed Avro files under $DIR/offline; txn-features checkpoints retained: $chk_txn"
echo "logs: $DIR/*.log"
exit $status
