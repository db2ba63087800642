#!/usr/bin/env bash
# A Confluent-compatible Schema Registry on loopback for tests and the local stack: Karapace
# (Aiven, Apache-2.0, Python), storing its schemas in the `_schemas` topic of its own local broker
# (Tansu, scripts/local-broker.sh, memory storage: nothing is kept across restarts).
#   scripts/schema-registry.sh install   pip-installs Karapace's pinned dependencies into
#                                        .local/venv-registry (Karapace runs from its source tree)
#   scripts/schema-registry.sh start     starts the broker and the registry (or finds them running);
#                                        prints the registry's URL (http://127.0.0.1:PORT)
#   scripts/schema-registry.sh stop      stops the registry, then its broker (nothing running: nothing to do)
#   scripts/schema-registry.sh status    prints the URL and pid, exit 1 if not running
# Karapace is not published on PyPI, so it runs from its source tree: tag 3.16.0 (commit 800f3cbc,
# also tagged 3.15.2), the last release before 4.0, which builds a Go extension (setuptools-golang
# downloads a Go toolchain), and 6.x needs Python >= 3.12. The tree: KARAPACE_SOURCE, else
# third_party/karapace-3.16.0, else .local/src/karapace-3.16.0 in this checkout. Its
# requirements/requirements.txt pins the PyPI dependencies; Apache Avro comes from PyPI
# (avro==1.11.3) instead of Aiven's patched fork, which that file names as a GitHub tarball.
# SCHEMA_REGISTRY_PORT sets the port (default 8081); SCHEMA_REGISTRY_DIR the state directory
# (default .build/schema-registry); SCHEMA_REGISTRY_BOOTSTRAP uses a running broker (host:port)
# instead of starting one.
# Exit codes: 0 ok, 1 failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${SCHEMA_REGISTRY_DIR:-$ROOT/.build/schema-registry}
VENV=$ROOT/.local/venv-registry
PIDFILE=$DIR/karapace.pid
URLFILE=$DIR/url
OWNBROKER=$DIR/own-broker   # present when start started the broker (stop stops it)
LOG=$DIR/karapace.log
CONFIG=$DIR/karapace.config.json
PORT=${SCHEMA_REGISTRY_PORT:-8081}
KARAPACE_VERSION=3.16.0
AVRO_VERSION=1.11.3

say() { echo "schema-registry: $*" >&2; }

source_tree() {
    local d
    for d in "${KARAPACE_SOURCE:-}" "$ROOT/third_party/karapace-$KARAPACE_VERSION" "$ROOT/.local/src/karapace-$KARAPACE_VERSION"; do
        if [ -n "$d" ] && [ -f "$d/karapace/karapace_all.py" ] && [ -f "$d/requirements/requirements.txt" ]; then
            echo "$d"
            return 0
        fi
    done
    say "no Karapace $KARAPACE_VERSION source tree: Karapace is not on PyPI. Put the tag's karapace/ package," \
        "LICENSE and requirements/requirements.txt (github.com/Aiven-Open/karapace, tag $KARAPACE_VERSION," \
        "with karapace/version.py saying __version__ = \"$KARAPACE_VERSION\") at" \
        "$ROOT/third_party/karapace-$KARAPACE_VERSION or set KARAPACE_SOURCE"
    return 1
}

install() {
    local src
    src=$(source_tree) || exit 1
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || { say "python3 -m venv failed (apt-get install python3-venv)"; exit 1; }
    fi
    local stamp=$VENV/.installed-karapace-$KARAPACE_VERSION
    if [ ! -f "$stamp" ] || ! PYTHONPATH=$src "$VENV/bin/python" -c "import karapace.karapace_all" 2>/dev/null; then
        say "installing Karapace $KARAPACE_VERSION's pinned dependencies and avro==$AVRO_VERSION into $VENV"
        local req
        req=$(mktemp)
        grep -v -E '^avro @' "$src/requirements/requirements.txt" >"$req"
        if ! "$VENV/bin/pip" install -q -r "$req" "avro==$AVRO_VERSION"; then
            rm -f "$req"
            say "pip install failed"
            exit 1
        fi
        rm -f "$req"
        local err
        if ! err=$(PYTHONPATH=$src "$VENV/bin/python" -c "import karapace.karapace_all" 2>&1); then
            say "Karapace does not import from $src: $err"
            exit 1
        fi
        touch "$stamp"
    fi
}

# shellcheck source=lib/pidfile.sh
. "$ROOT/scripts/lib/pidfile.sh"

running_pid() { pidfile_running "$PIDFILE" karapace; }

healthy() {  # url: GET /subjects answers 200 with a JSON list
    "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/subjects", timeout=2) as r:
    assert r.status == 200 and isinstance(json.load(r), list)
PY
}

# url: sets the global compatibility to BACKWARD (Confluent's default). It is the first write to
# _schemas, which Karapace confirms only once its reader has read it back (~6 s after a fresh start
# on Tansu); after it, writes take milliseconds.
first_write() {
    "$VENV/bin/python" - "$1" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/config", method="PUT", data=b'{"compatibility": "BACKWARD"}',
                             headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
with urllib.request.urlopen(req, timeout=60) as r:
    assert json.load(r)["compatibility"] == "BACKWARD"
PY
}

broker() {  # prints host:port of the broker the registry uses, starting its own when none is given
    if [ -n "${SCHEMA_REGISTRY_BOOTSTRAP:-}" ]; then
        echo "$SCHEMA_REGISTRY_BOOTSTRAP"
        return 0
    fi
    local out
    out=$(KAFKA_LOCAL_DIR=$DIR/broker "$ROOT/scripts/local-broker.sh" start) || { say "the local broker did not start"; return 1; }
    touch "$OWNBROKER"
    echo "$out" | tail -1
}

start() {
    install
    if pid=$(running_pid) && [ -f "$URLFILE" ] && healthy "$(cat "$URLFILE")"; then
        cat "$URLFILE"
        return 0
    fi
    stop >/dev/null 2>&1 || true   # a registry half up, or one whose broker is gone
    mkdir -p "$DIR"
    local src bootstrap url
    src=$(source_tree)
    url="http://127.0.0.1:$PORT"
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        say "port $PORT on 127.0.0.1 is taken by another program (set SCHEMA_REGISTRY_PORT)"
        exit 1
    fi
    bootstrap=$(broker) || exit 1
    # Registry only (no REST proxy); BACKWARD like Confluent's default; loopback only.
    cat >"$CONFIG" <<JSON
{
  "advertised_hostname": "127.0.0.1",
  "bootstrap_uri": "$bootstrap",
  "client_id": "tributary-sr-$PORT",
  "group_id": "schema-registry",
  "host": "127.0.0.1",
  "port": $PORT,
  "compatibility": "BACKWARD",
  "log_level": "INFO",
  "master_eligibility": true,
  "replication_factor": 1,
  "security_protocol": "PLAINTEXT",
  "karapace_rest": false,
  "karapace_registry": true,
  "topic_name": "_schemas",
  "protobuf_runtime_directory": "$DIR/protobuf-runtime"
}
JSON
    mkdir -p "$DIR/protobuf-runtime"
    PYTHONPATH=$src nohup "$VENV/bin/python" -m karapace.karapace_all "$CONFIG" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 600); do  # up to 60 s; Karapace answers after ~6 s (it replays _schemas first)
        if healthy "$url"; then
            if ! first_write "$url"; then
                say "Karapace on $url answers but does not take writes; its log ($LOG):"
                tail -20 "$LOG" >&2 || true
                stop
                exit 1
            fi
            echo "$url" >"$URLFILE"
            echo "$url"
            return 0
        fi
        running_pid >/dev/null || break
        sleep 0.1
    done
    say "Karapace did not come up on $url (broker $bootstrap); its log ($LOG):"
    tail -20 "$LOG" >&2 || true
    stop
    exit 1
}

stop_broker() {
    if [ -f "$OWNBROKER" ]; then
        KAFKA_LOCAL_DIR=$DIR/broker "$ROOT/scripts/local-broker.sh" stop
        rm -f "$OWNBROKER"
    fi
}

stop() {
    pidfile_stop "$PIDFILE" karapace 10
    rm -f "$URLFILE"
    stop_broker
}

status() {
    if pid=$(running_pid) && [ -f "$URLFILE" ]; then
        echo "$(cat "$URLFILE") (pid $pid)"
    else
        echo "not running"
        return 1
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
