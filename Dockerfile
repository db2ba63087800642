# syntax=docker/dockerfile:1
# Tributary images for docker-compose.yml and deploy/k8s (not built on the dev machines here: they
# have no Docker engine; scripts/check_ops.py checks that compose's targets exist in this file).
#   target jobs     the stream jobs (txn-features, click-features) and the tools (generate, replay),
#                   Swift 6.3, release build, Swift runtime linked statically: a plain Debian runtime
#   target scoring  the Python scoring service from python/ (FastAPI), `python -m $SCORING_MODULE`
#
#   docker build --target jobs -t tributary/jobs .
#   docker build --target scoring -t tributary/scoring --build-arg SCORING_MODULE=tributary_ml.serve .
# Configuration comes from the environment only (feature contract: KAFKA_BOOTSTRAP, REDIS_HOST, ...).

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the Swift products ------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
# The system libraries behind the C targets (scripts/setup.sh's list).
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        pkg-config librdkafka-dev librocksdb-dev libavro-dev libzstd-dev libhiredis-dev libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Examples ./Examples
COPY Benchmarks ./Benchmarks
COPY Tools ./Tools
COPY Tests ./Tests
ARG PRODUCTS="txn-features click-features generate replay"
# .build in a BuildKit cache: packages and objects survive source edits between image builds.
RUN --mount=type=cache,target=/src/.build \
    mkdir -p /out \
    && for p in ${PRODUCTS}; do \
         swift build -c release --static-swift-stdlib --product "$p" || exit 1; \
         cp "$(swift build -c release --show-bin-path)/$p" /out/; \
       done

# ---- jobs: runtime image ------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS jobs
# Runtime halves of the -dev packages above. librdkafka 2.0.2 (Debian 12) talks to Redpanda and
# Kafka; only the native stack's Tansu broker needs the newer one from the confluent-kafka wheel.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        librdkafka1 librocksdb7.8 libavro23 libzstd1 libhiredis0.14 libjemalloc2 ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app tributary \
    && mkdir -p /app /var/lib/tributary/checkpoints /var/lib/tributary/offline \
    && chown -R tributary /var/lib/tributary
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
COPY schemas ./schemas
ENV TRIBUTARY_CHECKPOINT_DIR=/var/lib/tributary/checkpoints \
    TRIBUTARY_OFFLINE_DIR=/var/lib/tributary/offline \
    FEAST_PROJECT=tributary
USER tributary
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["txn-features"]

# ---- scoring: the Python service ----------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS scoring
# The module run as `python -m`: the scoring package's entry point (python/, built by its owner).
ARG SCORING_MODULE=tributary_ml.serve
ENV SCORING_MODULE=${SCORING_MODULE} \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --home-dir /app tributary
WORKDIR /app
COPY python ./python
COPY schemas ./schemas
# The lock file pins every dependency (uvloop and httptools among them: serve.py runs uvicorn on them).
RUN pip install -r python/requirements.lock && pip install --no-deps ./python \
    && mkdir -p /models && chown tributary /models
# serve.py listens on 127.0.0.1 unless told otherwise (it guesses Docker from /.dockerenv only).
ENV SCORING_HOST=0.0.0.0 \
    SCORING_PORT=8000 \
    TRIBUTARY_MODEL_DIR=/models
USER tributary
EXPOSE 8000
CMD ["sh", "-c", "exec python -m \"$SCORING_MODULE\""]
