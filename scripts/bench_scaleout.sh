#!/usr/bin/env bash
# make bench-scaleout: txn-features as one process and as N processes (docs/scaling.md), on a broker
# and a redis-server of their own (loopback, stopped by PID at the end), same data:
#   1. one process with as many threads as all N together (--parallelism N×P), bounded: events/s;
#   2. N processes (--process-index i --process-count N, --parallelism P each) started together,
#      bounded: wall time from start to the last exit and events/s over all of them; then the two
#      Redis contents compared (key count and a digest of every hash; the data has no late records,
#      so both runs must give the same digest — docs/scaling.md).
# BENCH_EVENTS (500000) BENCH_PROCESSES (2) BENCH_PARALLELISM (1) BENCH_INTERVAL (checkpoints, 10s)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EVENTS=${BENCH_EVENTS:-500000}
N=${BENCH_PROCESSES:-2}
P=${BENCH_PARALLELISM:-1}
INTERVAL=${BENCH_INTERVAL:-10s}
WORK=$ROOT/.build/bench-scaleout
say() { echo "bench-scaleout: $*" >&2; }

. scripts/lib/bench_stack.sh
bench_stack_start "$WORK" "txn-features generate" s-txn:12 s-dev:6
redis() { .venv-kafka/bin/python - "$RPORT" "$@" <<'PY'
import socket, sys, hashlib
port, cmd = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def call(*a):
    s.sendall(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a))
    return read()
def read():
    l = f.readline(); t, r = l[:1], l[1:-2]
    if t in (b"+", b"-"): return r
    if t == b":": return int(r)
    if t == b"$": n = int(r); return None if n < 0 else f.read(n + 2)[:-2]
    if t == b"*": return [read() for _ in range(int(r))]
if cmd == "flush": call(b"FLUSHALL"); print("flushed")
else:
    keys, cur = [], b"0"
    while True:
        cur, found = call(b"SCAN", cur, b"COUNT", b"1000"); keys += found
        if cur == b"0": break
    h = hashlib.sha256()
    for k in sorted(keys):
        v = call(b"HGETALL", k); h.update(k); h.update(repr(sorted(zip(v[::2], v[1::2]))).encode())
    print(f"{len(keys)} keys, digest {h.hexdigest()[:16]}")
PY
}
job() {  # job NAME extra... (CPU seconds of the process into $WORK/NAME.cpu)
    local name=$1; shift
    /usr/bin/time -o "$WORK/$name.cpu" -f "%U %S" "$BIN/txn-features" --bootstrap "$BOOT" --redis "127.0.0.1:$RPORT" --txn-topic s-txn --device-topic s-dev \
        --checkpoint-dir "$WORK/$name/checkpoints" --offline-dir "$WORK/$name/offline" --checkpoint-interval "$INTERVAL" \
        --features-topic none --progress-seconds 0 --bounded "$@"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); broker and Redis on loopback"

say "generating $EVENTS transactions and $EVENTS device records (unthrottled)"
"$BIN/generate" --bootstrap "$BOOT" --streams txn,devices --count "$EVENTS" --rate 0 --seed 1 \
    --late-share 0 --too-late-share 0 --txn-topic s-txn --devices-topic s-dev 2>/dev/null | head -1

# CPU seconds (user + system) a helper process has used so far: the broker, redis-server.
ticks() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$(cat "$1")/stat"; }
helpers() { echo "broker $(ticks "$KAFKA_LOCAL_DIR/tansu.pid") s, Redis $(ticks "$REDIS_TEST_DIR/redis.pid") s"; }
echo "   CPU so far: $(helpers)"

echo "== 1. one process, parallelism $((N * P))"
job single --group-id bench-single --parallelism $((N * P)) 2>/dev/null | grep -E "events in"
cpu() { awk '{ printf "%.1f", $1 + $2 }' "$WORK/$1.cpu"; }
echo "   CPU: $(cpu single) s (user + system); so far: $(helpers)"
echo "   Redis: $(redis digest)"
redis flush >/dev/null

echo "== 2. $N processes, parallelism $P each, started together"
start=$(date +%s.%N)
pids=()
for ((i = 0; i < N; i++)); do
    job "p$i" --group-id bench-scaled --parallelism "$P" --process-index "$i" --process-count "$N" \
        >"$WORK/p$i.out" 2>"$WORK/p$i.log" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
end=$(date +%s.%N)
total=0
for ((i = 0; i < N; i++)); do
    n=$(sed -n 's/.*events in *\([0-9]*\) in.*/\1/p' "$WORK/p$i.out")
    echo "   process $i: $(grep -E 'events in' "$WORK/p$i.out" | sed 's/^ *//'), CPU $(cpu "p$i") s"
    total=$((total + n))
done
awk -v t="$total" -v s="$start" -v e="$end" 'BEGIN { printf "   all: %d events in %.1f s wall (%d/s)\n", t, e - s, t / (e - s) }'
echo "   CPU so far: $(helpers)"
echo "   Redis: $(redis digest)"
