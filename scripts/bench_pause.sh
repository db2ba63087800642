#!/usr/bin/env bash
# make bench-pause: how long txn-features' tasks pause for each checkpoint as its keyed state grows.
# A broker and a redis-server of its own (loopback, stopped by PID at the end); PAUSE_EVENTS
# transactions + as many device records in the topics; txn-features (release build) reads them with
# checkpoints every PAUSE_INTERVAL and serves /metrics; at each completed checkpoint the longest task
# pause (tributary_last_checkpoint_max_pause_seconds) and the state size are printed.
#   PAUSE_EVENTS (600000)  PAUSE_INTERVAL (3s)  PAUSE_BIN (.build/release/txn-features: another build to compare)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EVENTS=${PAUSE_EVENTS:-600000}
INTERVAL=${PAUSE_INTERVAL:-3s}
WORK=$ROOT/.build/bench-pause
pid=
bench_cleanup_extra() { [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; }
. scripts/lib/bench_stack.sh
bench_stack_start "$WORK" "txn-features generate" p-txn:12 p-dev:6
JOB=${PAUSE_BIN:-$BIN/txn-features}
"$BIN/generate" --bootstrap "$BOOT" --streams txn,devices --count "$EVENTS" --rate 0 --seed 7 \
    --txn-topic p-txn --devices-topic p-dev 2>/dev/null | head -1
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$JOB" --bootstrap "$BOOT" --redis "127.0.0.1:$RPORT" --txn-topic p-txn --device-topic p-dev \
    --checkpoint-dir "$WORK/chk" --offline-dir "$WORK/offline" --group-id bench-pause --features-topic none \
    --progress-seconds 0 --checkpoint-interval "$INTERVAL" --starting-offsets earliest \
    --metrics-host 127.0.0.1 --metrics-port "$MPORT" >"$WORK/job.log" 2>&1 &
pid=$!
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $JOB; $EVENTS + $EVENTS events, checkpoints every $INTERVAL"
python3 - "$MPORT" "$((EVENTS * 2))" <<'PY'
import sys, time, urllib.request
port, total = sys.argv[1], int(sys.argv[2])
def scrape():
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    v = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.split("{")[0].split(" ")[0], line.rsplit(" ", 1)[1]
            v[name] = v.get(name, 0.0) + float(value)
    return v
start, done, last = time.time(), None, 0
while time.time() - start < 600:
    v = scrape()
    time.sleep(0.5)
    if not v:
        continue
    cid = int(v.get("tributary_last_checkpoint_id", 0))
    if cid != last:
        last = cid
        print(f"checkpoint {cid}: longest task pause {v.get('tributary_last_checkpoint_max_pause_seconds', 0) * 1000:.0f} ms, "
              f"state {v.get('tributary_checkpoint_size_bytes', 0) / 1e6:.0f} MB, "
              f"{int(v.get('tributary_source_records_total', 0))} records read", flush=True)
    if done is None and v.get("tributary_source_records_total", 0) >= total:
        done = time.time()
        print(f"all {total} records read after {done - start:.1f} s", flush=True)
    if done and time.time() - done > 8:
        break
PY
