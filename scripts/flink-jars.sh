#!/usr/bin/env bash
# Fetches Apache Flink 2.3's JVM runtime (the jars the `apache-flink` PyPI package ships, in its
# `apache-flink-libraries` dependency) into .cache/flink/lib and compiles flink/src against them
# into .build-flink/classes. Idempotent: does nothing when both are current. Prints the classpath.
set -euo pipefail
cd "$(dirname "$0")/.."
FLINK_VERSION=2.3.0
CACHE=.cache/flink
LIB=$CACHE/lib
CLASSES=.build-flink/classes

command -v javac >/dev/null || { echo "flink-jars: javac not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
if [ ! -f "$LIB/flink-dist-$FLINK_VERSION.jar" ]; then
    mkdir -p "$CACHE"
    wheel=$(ls "$CACHE"/apache_flink_libraries-$FLINK_VERSION-*.whl 2>/dev/null | head -1 || true)
    if [ -z "$wheel" ]; then
        echo "flink-jars: downloading apache-flink-libraries==$FLINK_VERSION from PyPI (~330 MB)" >&2
        python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE" "apache-flink-libraries==$FLINK_VERSION" >&2
        wheel=$(ls "$CACHE"/apache_flink_libraries-$FLINK_VERSION-*.whl | head -1)
    fi
    rm -rf "$CACHE/unpacked" && mkdir -p "$CACHE/unpacked" "$LIB"
    python3 -m zipfile -e "$wheel" "$CACHE/unpacked" >&2
    cp "$CACHE"/unpacked/pyflink/lib/*.jar "$LIB/"
    rm -rf "$CACHE/unpacked"
fi
CP=$(ls "$LIB"/*.jar | tr '\n' ':')
stamp=$CLASSES/.stamp
if [ ! -f "$stamp" ] || [ -n "$(find flink/src -name '*.java' -newer "$stamp")" ]; then
    rm -rf "$CLASSES" && mkdir -p "$CLASSES"
    javac -nowarn -d "$CLASSES" -cp "$CP" $(find flink/src -name '*.java') >&2
    touch "$stamp"
fi
echo "$CLASSES:$CP"
