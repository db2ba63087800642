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
fi
# Each demo starts from fresh checkpoints and consumer groups of its own, reading from the end of
# the topics (the jobs start before the generators), so earlier data on a running stack is left alone.
rm -rf "$DIR"
run=$(date +%s)
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
    --group-id "txn-features-demo-$run" --starting-offsets latest --metrics-port "${TXN_METRICS_PORT:-9464}" \
    --progress-seconds 10 >"$DIR/txn-features.out" 2>"$DIR/txn-features.log" &
pids+=($!)
"$BIN/click-features" --checkpoint-dir "$DIR/checkpoints/click-features" --checkpoint-interval 10s \
    --group-id "click-features-demo-$run" --starting-offsets latest --metrics-port "${CLICK_METRICS_PORT:-9465}" \
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

# The scoring service, when a model has been trained (make train): features from this run's Redis.
scoring=""
if [ -x .venv-py/bin/python ] && [ -f data/models/fraud-v1.onnx ]; then
    # :8000 (what the stack's Prometheus scrapes) unless taken, then any free port.
    port=$(python3 -c '
import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8000))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
    SCORING_PORT=$port MODEL_VERSION=v1 .venv-py/bin/python -m tributary_ml.serve >"$DIR/scoring.log" 2>&1 &
    spid=$!
    scoring=$(python3 - "$port" "$DIR/fraud-labels.csv" <<'PY'
import json, sys, time, urllib.request
port, labels = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1); break
    except Exception:
        time.sleep(0.2)
cards = [f"card-{i}" for i in range(100)]
try:
    cards += [line.split(",")[1] for line in open(labels).read().splitlines()[1:101]]
except OSError:
    pass
lat, example = [], None
for c in cards:
    req = urllib.request.Request(base + "/score", data=json.dumps({"card_id": c}).encode(), headers={"Content-Type": "application/json"})
    try:
        body = json.load(urllib.request.urlopen(req, timeout=2))
    except Exception as e:
        print(f"scoring service: request failed: {e}"); sys.exit(0)
    lat.append(body.get("latency_ms", 0)); example = example or (c, body)
lat.sort()
print(f"scoring service: {len(lat)} POST /score, service latency p50 {lat[len(lat)//2]:.2f} ms, p95 {lat[int(len(lat)*0.95)]:.2f} ms")
print(f"  e.g. {{\"card_id\": \"{example[0]}\"}} -> {json.dumps(example[1])}")
PY
)
    kill -TERM "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
else
    scoring="scoring service: skipped (no trained model: run \`make train\` once, then make demo scores against this run's features)"
fi

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
echo "$scoring"
echo "offline log: $files committed Avro files under $DIR/offline; txn-features checkpoints retained: $chk_txn"
echo "logs: $DIR/*.log"
exit $status
