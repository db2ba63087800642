#!/usr/bin/env bash
# A throwaway redis-server for tests: 127.0.0.1 on a free port, no persistence, its own directory
# with pid file and log.
#   scripts/redis-test-server.sh start   starts it (or finds it running) and prints its port
#   scripts/redis-test-server.sh stop    stops it by its pid (nothing running: nothing to do)
#   scripts/redis-test-server.sh port    prints the port of the running server (exit 1 if none)
# REDIS_TEST_DIR sets the directory (default: .build/redis-test in this checkout, so worktrees and
# concurrent checkouts each get their own server). REDIS_PORT fixes the port (the local stack: 6379).
# Exit codes: 0 ok, 1 failure, 3 redis-server is not installed (tests skip on 3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${REDIS_TEST_DIR:-$ROOT/.build/redis-test}
PIDFILE=$DIR/redis.pid
PORTFILE=$DIR/port
LOG=$DIR/redis.log

# shellcheck source=lib/pidfile.sh
. "$ROOT/scripts/lib/pidfile.sh"

running_pid() { pidfile_running "$PIDFILE" redis-server; }

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        local p
        for _ in $(seq 50); do
            p=$((20000 + RANDOM % 40000))
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
        done
        return 1
    fi
}

find_server() {
    if command -v redis-server >/dev/null 2>&1; then command -v redis-server; return; fi
    [ -x /usr/bin/redis-server ] && { echo /usr/bin/redis-server; return; }
    return 1
}

ping() {  # port
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
    else
        grep -q "Ready to accept connections" "$LOG" 2>/dev/null
    fi
}

start() {
    if pid=$(running_pid) && [ -f "$PORTFILE" ] && ping "$(cat "$PORTFILE")"; then
        cat "$PORTFILE"
        return 0
    fi
    local server
    if ! server=$(find_server); then
        echo "redis-test-server: redis-server is not installed (apt-get install redis-server, or run scripts/setup.sh)" >&2
        exit 3
    fi
    mkdir -p "$DIR"
    rm -f "$PIDFILE" "$PORTFILE"
    for _ in 1 2 3 4 5; do  # another process may take the port between choosing and binding it
        local port
        port=${REDIS_PORT:-$(free_port)}
        : >"$LOG"
        "$server" --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$DIR" \
            --daemonize yes --pidfile "$PIDFILE" --logfile "$LOG" >/dev/null 2>&1 || true
        for _ in $(seq 100); do  # up to 5 s
            if ping "$port"; then
                echo "$port" >"$PORTFILE"
                echo "$port"
                return 0
            fi
            if grep -q "Address already in use" "$LOG" 2>/dev/null; then break; fi
            sleep 0.05
        done
        stop >/dev/null 2>&1 || true
    done
    echo "redis-test-server: redis-server did not start; see $LOG:" >&2
    tail -5 "$LOG" >&2 || true
    exit 1
}

stop() {
    pidfile_stop "$PIDFILE" redis-server 5
    rm -f "$PORTFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    port) if running_pid >/dev/null && [ -f "$PORTFILE" ]; then cat "$PORTFILE"; else exit 1; fi ;;
    *) echo "usage: $0 start|stop|port" >&2; exit 2 ;;
esac
