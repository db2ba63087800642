#!/usr/bin/env bash
# make ab-features A=REV B=REV: two txn-features builds compared the way docs/benchmarks.md
# compares them on this noisy shared machine — alternating runs on the same input, never across
# separate benchmark runs. A broker and a redis-server of its own (loopback, stopped by PID at the
# end), AB_EVENTS transactions + as many device records written once, then AB_PAIRS rounds of
# "A, B", each a bounded run with a fresh consumer group, checkpoints and offline directory.
#
#   A, B        a git revision (built in a worktree under .build/ab/), "tree" (this checkout's
#               release build) or the path of a txn-features binary
#   AB_PAIRS    rounds (default 4)             AB_EVENTS  transactions (default 500000)
#   AB_ARGS     extra txn-features flags for both (default "--parallelism 3")
#   AB_REPLAY   1: Redis keeps what the first (unmeasured) run wrote, so every run is a replay
#
# Prints per run: transactions/s, and CPU seconds of the job, Redis and the broker; then the
# averages, B/A, and how many rounds B won.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
A=${A:?"A=REV|tree|BINARY is required (make ab-features A=HEAD~1 B=tree)"}
B=${B:-tree}
PAIRS=${AB_PAIRS:-4}
EVENTS=${AB_EVENTS:-500000}
read -r -a EXTRA <<<"${AB_ARGS:---parallelism 3}"
WORK=$ROOT/.build/ab-work
say() { echo "ab-features: $*" >&2; }
build() {  # build DIR: a release build of txn-features there; a failed build stops here
    local log=$ROOT/.build/ab-build.log
    mkdir -p "$ROOT/.build"
    if ! (cd "$1" && swift build -c release --product txn-features >"$log" 2>&1); then
        grep -E "error" "$log" >&2 || tail -5 "$log" >&2
        say "the build in $1 failed (log: $log)"
        exit 2
    fi
}

# A binary for A or B. Binaries sit three directories below the checkout (as .build/release/
# does), so that the rpath's $ORIGIN/../../../.local/lib finds librdkafka 2.16.
binary() {
    local spec=$1 sha dir
    if [ "$spec" = tree ]; then
        build "$ROOT"
        echo "$ROOT/.build/release/txn-features"
        return
    fi
    if [ -x "$spec" ] && [ -f "$spec" ]; then echo "$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"; return; fi
    sha=$(git rev-parse --verify --quiet "$spec^{commit}") || { say "'$spec' is neither a git revision, 'tree', nor an executable"; exit 2; }
    dir=$ROOT/.build/ab/bin-${sha:0:12}
    if [ ! -x "$dir/txn-features" ]; then
        local src=$ROOT/.build/ab/src-${sha:0:12}
        [ -d "$src" ] || git worktree add --detach -q "$src" "$sha"
        say "building txn-features at ${sha:0:12} (a release build from scratch takes a few minutes)"
        build "$src"
        mkdir -p "$dir"
        cp "$src/.build/release/txn-features" "$dir/"
    fi
    echo "$dir/txn-features"
}
BIN_A=$(binary "$A")
BIN_B=$(binary "$B")
[ "$BIN_A" != "$BIN_B" ] || say "A and B are the same binary: the spread between them is the machine's noise"

. scripts/lib/bench_stack.sh
bench_stack_start "$WORK" "generate" t-txn:12 t-dev:6
BROKER_PID=$(cat "$KAFKA_LOCAL_DIR/tansu.pid")
REDIS_PID=$(cat "$REDIS_TEST_DIR/redis.pid")
echo "machine: $(nproc) cores, $(uname -sr); A = $A ($BIN_A); B = $B ($BIN_B)"
"$BIN/generate" --bootstrap "$BOOT" --streams txn,devices --count "$EVENTS" --rate 0 --seed 1 \
    --txn-topic t-txn --devices-topic t-dev 2>/dev/null | head -1

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system ticks of a running process
RUN=0
LINE=
run() {  # run BINARY: sets LINE to "transactions/s job redis broker" (CPU in seconds)
    local bin=$1 r0 b0 out
    RUN=$((RUN + 1))
    [ "${AB_REPLAY:-0}" = 1 ] || redis-cli -p "$RPORT" flushall >/dev/null
    r0=$(cpu "$REDIS_PID"); b0=$(cpu "$BROKER_PID")
    # The subshell's cutime/cstime after it reaped the job: the job's CPU, without needing time(1).
    out=$( (
        "$bin" --bootstrap "$BOOT" --redis "127.0.0.1:$RPORT" --txn-topic t-txn --device-topic t-dev \
            --checkpoint-dir "$WORK/run$RUN/checkpoints" --offline-dir "$WORK/run$RUN/offline" --group-id "ab-$RUN" \
            --features-topic none --progress-seconds 0 --bounded "${EXTRA[@]}" >"$WORK/run$RUN.out" 2>"$WORK/run$RUN.log" \
            || { say "run $RUN failed:"; tail -5 "$WORK/run$RUN.log" >&2; exit 1; }
        awk '{print $16 + $17}' "/proc/$BASHPID/stat"
    ) )
    local rate
    rate=$(sed -n 's/.*events in .*(\([0-9]*\)\/s).*/\1/p' "$WORK/run$RUN.out" | head -1)
    LINE="$rate $(echo "$out" | awk '{printf "%.2f", $1 / 100}') $(awk -v a="$r0" -v b="$(cpu "$REDIS_PID")" 'BEGIN {printf "%.2f", (b - a) / 100}') $(awk -v a="$b0" -v b="$(cpu "$BROKER_PID")" 'BEGIN {printf "%.2f", (b - a) / 100}')"
    rm -rf "$WORK/run$RUN"
}

if [ "${AB_REPLAY:-0}" = 1 ]; then
    say "replay: a first run (not counted) fills Redis"
    run "$BIN_A"
fi
printf "%-6s %-2s %14s %8s %8s %8s\n" round "" transactions/s job_cpu redis broker
results=()
for i in $(seq "$PAIRS"); do
    for side in A B; do
        if [ $side = A ]; then run "$BIN_A"; else run "$BIN_B"; fi
        results+=("$side $LINE")
        # shellcheck disable=SC2086
        printf "%-6s %-2s %14s %8s %8s %8s\n" "$i" $side $LINE
    done
done
printf '%s\n' "${results[@]}" | awk '
    { n[$1]++; rate[$1] += $2; job[$1] += $3; redis[$1] += $4; broker[$1] += $5; r[$1, n[$1]] = $2 }
    END {
        for (s = 0; s < 2; s++) {
            x = s ? "B" : "A"
            printf "avg %s: %.0f transactions/s, job %.2f s, Redis %.2f s, broker %.2f s\n", x, rate[x] / n[x], job[x] / n[x], redis[x] / n[x], broker[x] / n[x]
        }
        wins = 0
        for (i = 1; i <= n["A"]; i++) if (r["B", i] > r["A", i]) wins++
        printf "B/A: %.3f transactions/s, %.3f job CPU; B faster in %d of %d rounds\n", (rate["B"] / n["B"]) / (rate["A"] / n["A"]), (job["B"] / n["B"]) / (job["A"] / n["A"]), wins, n["A"]
    }'
