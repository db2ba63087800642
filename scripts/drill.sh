#!/usr/bin/env bash
# make drill: the online store's disaster drill on the local stack (it empties the stack's Redis
# first). Fills Redis by running both
# feature jobs (bounded) over what the topics hold (generating DRILL_EVENTS per stream first), then
# `drill`: snapshot Redis, wipe it, rebuild it from the offline log, verify it equals the snapshot,
# print the time to recovery. Starts (and then stops) the local stack if it is not up.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EVENTS=${DRILL_EVENTS:-50000}
DIR=${DRILL_DIR:-$ROOT/data/drill}
say() { echo "drill: $*" >&2; }

bash scripts/setup.sh >/dev/null
for p in txn-features click-features generate drill; do swift build -c release --product "$p" 2>&1 | grep -E "error" >&2 || true; done
BIN=$(swift build -c release --show-bin-path)
started=0
if ! bash scripts/stack.sh status >/dev/null 2>&1; then bash scripts/stack.sh up >&2; started=1; fi
trap '[ "$started" = 1 ] && bash scripts/stack.sh down >&2 || true' EXIT
rm -rf "$DIR"
export TRIBUTARY_OFFLINE_DIR="$DIR/offline"
# Redis then holds exactly what these runs serve (and log): the drill rebuilds it from their log.
redis-cli -h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-6379}" FLUSHDB >/dev/null
say "generating $EVENTS events per stream"
"$BIN/generate" --count "$EVENTS" --rate 0 --seed "$(date +%s)" 2>/dev/null | head -1
run=$(date +%s)
for job in txn-features click-features; do
    say "running $job over the topics (bounded)"
    "$BIN/$job" --bounded --checkpoint-dir "$DIR/checkpoints/$job" --group-id "drill-$job-$run" \
        --progress-seconds 0 | grep -E "events in|online updates"
done
"$BIN/drill" --offline-dir "$DIR/offline"
