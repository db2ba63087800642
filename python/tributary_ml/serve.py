"""The scoring service: POST /score → features from Redis (Feast layout) → ONNX model → score.

    python -m tributary_ml.serve          (uvicorn on $SCORING_HOST:$SCORING_PORT, default 127.0.0.1:8000)

Environment (contract): REDIS_HOST, REDIS_PORT, FEAST_PROJECT, MODEL_VERSION (the control model),
TRIBUTARY_MODEL_DIR, MLFLOW_TRACKING_URI. Service knobs (defaults in Settings): SCORING_CANDIDATE_VERSION,
SCORING_CANDIDATE_SHARE (0.1), SCORING_MAX_QPS, SCORING_TIMEOUT_MS, SCORING_REDIS_TIMEOUT_MS,
SCORING_BREAKER_FAILURES, SCORING_BREAKER_RESET_S, SCORING_ENFORCE_TTL.

Requests: {"card_id": "…"} (fraud; optional "amount_minor" used only by the fallback rules) or
{"user_id": "…", "context": {…}} (personalisation: the `perso-<PERSO_MODEL_VERSION>` purchase-propensity
model; the `perso-rules-v0` rules when Redis fails or no model is configured). Response: {score, model_version, latency_ms, use_case,
fallback, fallback_reason, missing_features, stale_views}. A/B: header X-Model-Version picks a model;
otherwise a sticky split by entity hash sends SCORING_CANDIDATE_SHARE of entities to the candidate.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import mmh3
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import values as prom_values
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from . import contract, features, layout, models
from .contract import env, resolve

log = logging.getLogger("tributary.scoring")

# Importing Feast (feast/metrics.py) sets PROMETHEUS_MULTIPROC_DIR for the whole process and its children,
# which switches prometheus_client to multiprocess values: every registry's metric of the same name and
# labels then shares one value per process. The service is one process with metrics of its own: plain values.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
prom_values.ValueClass = prom_values.MutexValue


def _f(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


@dataclass
class Settings:
    redis_host: str = field(default_factory=lambda: env("REDIS_HOST"))
    redis_port: int = field(default_factory=lambda: int(env("REDIS_PORT")))
    project: str = field(default_factory=lambda: env("FEAST_PROJECT"))
    model_version: str = field(default_factory=lambda: env("MODEL_VERSION"))
    candidate_version: str = field(default_factory=lambda: os.environ.get("SCORING_CANDIDATE_VERSION", ""))
    candidate_share: float = field(default_factory=lambda: _f("SCORING_CANDIDATE_SHARE", 0.1))
    model_dir: str = field(default_factory=lambda: str(resolve(env("TRIBUTARY_MODEL_DIR"))))
    tracking_uri: str = field(default_factory=lambda: env("MLFLOW_TRACKING_URI"))
    max_qps: float = field(default_factory=lambda: _f("SCORING_MAX_QPS", 2000))
    timeout_ms: float = field(default_factory=lambda: _f("SCORING_TIMEOUT_MS", 200))
    redis_timeout_ms: float = field(default_factory=lambda: _f("SCORING_REDIS_TIMEOUT_MS", 50))
    breaker_failures: int = field(default_factory=lambda: int(_f("SCORING_BREAKER_FAILURES", 5)))
    breaker_reset_s: float = field(default_factory=lambda: _f("SCORING_BREAKER_RESET_S", 5))
    enforce_ttl: bool = field(default_factory=lambda: os.environ.get("SCORING_ENFORCE_TTL", "1") != "0")
    # personalisation model (perso-<version>.onnx / alias perso-<version>); "rules": the rules only.
    # Required when PERSO_MODEL_VERSION is set; unset, v1 is loaded when there and the rules serve otherwise.
    perso_version: str = field(default_factory=lambda: os.environ.get("PERSO_MODEL_VERSION") or "v1")
    perso_required: bool = field(default_factory=lambda: bool(os.environ.get("PERSO_MODEL_VERSION")))
    # The drift check's Prometheus textfile (make drift-check), served with the service's own metrics
    # so the stack's Prometheus scrapes drift_psi / drift_js / drift_alert; "" turns it off.
    drift_metrics_file: str = field(default_factory=lambda: os.environ.get(
        "DRIFT_METRICS_FILE", str(resolve("data/drift.prom"))))


# --- requests ------------------------------------------------------------------------------------

class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card_id: Optional[StrictStr] = Field(None, min_length=1, max_length=128)
    user_id: Optional[StrictStr] = Field(None, min_length=1, max_length=128)
    context: Optional[dict[str, Any]] = None
    amount_minor: Optional[StrictInt] = Field(None, ge=0)

    @model_validator(mode="after")
    def one_use_case(self):
        if (self.card_id is None) == (self.user_id is None):
            raise ValueError("give exactly one of card_id (fraud) or user_id + context (personalisation)")
        if self.user_id is not None and self.context is None:
            raise ValueError("personalisation needs a context object with user_id")
        if self.card_id is not None and self.context is not None:
            raise ValueError("context goes with user_id, not card_id")
        return self


# --- budget and breaker --------------------------------------------------------------------------

class TokenBucket:
    """max_qps tokens per second, burst of max_qps/10 (at least 1)."""

    def __init__(self, qps: float):
        self.rate = qps
        self.capacity = max(1.0, qps / 10)
        self.tokens = self.capacity
        self.t = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class CircuitBreaker:
    """closed → open after `failures` consecutive failures; after `reset_s` one trial (half-open)."""

    def __init__(self, failures: int, reset_s: float):
        self.threshold, self.reset_s = failures, reset_s
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        s = self.state
        if s == "closed":
            return True
        if s == "half_open" and not self.trial:
            self.trial = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.trial = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial = False
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()


class FeatureUnavailable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- the app -------------------------------------------------------------------------------------

def create_app(settings: Settings | None = None) -> FastAPI:
    s = settings or Settings()
    reg = CollectorRegistry()
    m_requests = Counter("scoring_requests_total", "Score requests", ["model_version", "status"], registry=reg)
    m_duration = Histogram("scoring_request_duration_seconds", "Score request duration", registry=reg,
                           buckets=(.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1))
    m_fallback = Counter("scoring_fallback_total", "Scores from the baseline rules", ["reason"], registry=reg)
    m_redis_err = Counter("scoring_redis_errors_total", "Redis errors and timeouts", registry=reg)

    fraud_views = [contract.VIEWS[v] for v in contract.FRAUD_VIEWS]
    perso_views = [contract.VIEWS[v] for v in contract.PERSONALISATION_VIEWS]
    fields_of = {tuple(v.name for v in vs): [f for v in vs for f in layout.ViewLayout(v.name, v.features).fields]
                 for vs in (fraud_views, perso_views)}

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app):
        await startup()
        try:
            yield
        finally:
            await shutdown()

    app = FastAPI(title="Tributary scoring", version="0.1.0", lifespan=lifespan)
    app.state.settings = s
    app.state.breaker = CircuitBreaker(s.breaker_failures, s.breaker_reset_s)
    app.state.bucket = TokenBucket(s.max_qps)

    async def startup() -> None:
        loaded = {s.model_version: models.load(s.model_version, s.model_dir, s.tracking_uri)}
        if s.candidate_version and s.candidate_version != s.model_version:
            loaded[s.candidate_version] = models.load(s.candidate_version, s.model_dir, s.tracking_uri)
        state["models"] = loaded
        state["perso"] = None
        if s.perso_version != "rules":
            try:
                state["perso"] = models.load(s.perso_version, s.model_dir, s.tracking_uri, use_case="perso")
            except FileNotFoundError:
                if s.perso_required:
                    raise
                log.warning("scoring: no personalisation model %s: the %s rules serve user_id requests",
                            models.alias_for(s.perso_version, "perso"), features.PERSONALISATION_VERSION)
        t = s.redis_timeout_ms / 1000
        # no retries: redis-py ≥ 6 retries timeouts with backoff by default, which would blow the budget;
        # the breaker and the fallback handle a failed read instead
        state["redis"] = aioredis.Redis(host=s.redis_host, port=s.redis_port, socket_timeout=t,
                                        socket_connect_timeout=t, retry=Retry(NoBackoff(), 0),
                                        max_connections=64)
        gc.collect()
        gc.freeze()  # the start-up heap is never collected again: shorter GC pauses on the request path
        log.info("scoring: models %s, control %s, candidate %s", list(loaded), s.model_version, s.candidate_version or "-")

    async def shutdown() -> None:
        if "redis" in state:
            await state["redis"].aclose()

    def err(status: int, msg: str, version: str = "-", headers=None) -> JSONResponse:
        m_requests.labels(version, str(status)).inc()
        return JSONResponse({"error": msg}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msgs.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return err(422, "; ".join(msgs) or "invalid request")

    async def fetch(entity: str, value: str, views) -> tuple[dict[str, Any], list[str], bool]:
        """Feature values {"view:feature": v}, stale views, any row found. Raises FeatureUnavailable."""
        br: CircuitBreaker = app.state.breaker
        if not br.allow():
            raise FeatureUnavailable("circuit_open")
        key = layout.redis_key({entity: value}, s.project)
        try:
            raw = await state["redis"].hmget(key, fields_of[tuple(v.name for v in views)])
        except (aioredis.TimeoutError, asyncio.TimeoutError):
            m_redis_err.inc(); br.failure()
            raise FeatureUnavailable("redis_timeout")
        except (aioredis.RedisError, OSError) as e:
            m_redis_err.inc(); br.failure()
            log.warning("redis: %s", e)
            raise FeatureUnavailable("redis_error")
        br.success()
        vals: dict[str, Any] = {}
        stale: list[str] = []
        found = False
        now = time.time()
        i = 0
        for v in views:
            n = len(v.features)
            row, ts = layout.decode_row(v.features, raw[i:i + n + 1])
            i += n + 1
            if ts is None:
                continue
            found = True
            if s.enforce_ttl and now - ts > v.ttl.total_seconds():
                stale.append(v.name)  # older than the view's ttl: served as missing
                continue
            for f, x in row.items():
                vals[f"{v.name}:{f}"] = x
        return vals, stale, found

    def route(req: ScoreRequest, header: str | None) -> str:
        ms = state["models"]
        if header:
            if header not in ms:
                raise KeyError(header)
            return header
        if s.candidate_version in ms and s.candidate_version != s.model_version:
            bucket = mmh3.hash(req.card_id, 7, signed=False) % 10_000
            if bucket < s.candidate_share * 10_000:
                return s.candidate_version
        return s.model_version

    async def score_fraud(req: ScoreRequest, version: str) -> dict:
        try:
            vals, stale, found = await fetch("card_id", req.card_id, fraud_views)
        except FeatureUnavailable as e:
            m_fallback.labels(e.reason).inc()
            return {"score": features.fraud_rules(req.amount_minor), "model_version": "baseline-rules",
                    "fallback": True, "fallback_reason": e.reason, "missing_features": features.FRAUD_SOURCE_FEATURES,
                    "stale_views": []}
        x, missing = features.fraud_vector(vals)
        score = float(state["models"][version].predict(x)[0])
        return {"score": score, "model_version": version, "fallback": False, "fallback_reason": None,
                "missing_features": missing, "stale_views": stale, "entity_found": found}

    async def score_perso(req: ScoreRequest) -> dict:
        try:
            vals, stale, found = await fetch("user_id", req.user_id, perso_views)
        except FeatureUnavailable as e:
            m_fallback.labels(e.reason).inc()
            sc, missing = features.personalisation_score({}, req.context or {})
            return {"score": sc, "model_version": "baseline-rules", "fallback": True, "fallback_reason": e.reason,
                    "missing_features": missing, "stale_views": []}
        model = state["perso"]
        if model is None:
            sc, missing = features.personalisation_score(vals, req.context or {})
            version = features.PERSONALISATION_VERSION
        else:
            x, missing = features.perso_vector(vals)
            sc, version = float(model.predict(x)[0]), models.alias_for(model.version, "perso")
        return {"score": sc, "model_version": version, "fallback": False,
                "fallback_reason": None, "missing_features": missing, "stale_views": stale, "entity_found": found}

    @app.post("/score")
    async def score(req: ScoreRequest, request: Request):
        t0 = time.perf_counter()
        if not app.state.bucket.take():
            return err(429, f"over the budget of {s.max_qps:g} requests/s", headers={"Retry-After": "1"})
        header = request.headers.get("x-model-version")
        if req.card_id is not None:
            try:
                version = route(req, header)
            except KeyError:
                return err(400, f"unknown model version {header!r}; loaded: {sorted(state['models'])}")
            work = score_fraud(req, version)
        else:
            work = score_perso(req)
        try:
            async with asyncio.timeout(s.timeout_ms / 1000):  # no extra task per request (unlike wait_for)
                body = await work
        except TimeoutError:
            m_duration.observe(time.perf_counter() - t0)
            return err(504, f"scoring took longer than the {s.timeout_ms:g} ms budget")
        dt = time.perf_counter() - t0
        body["latency_ms"] = round(dt * 1000, 3)
        body["use_case"] = "fraud" if req.card_id is not None else "personalisation"
        m_duration.observe(dt)
        m_requests.labels(body["model_version"], "200").inc()
        return JSONResponse(body, headers={"X-Model-Version": body["model_version"]})

    @app.get("/healthz")
    async def healthz():
        try:
            redis_ok = bool(await state["redis"].ping())
        except Exception:  # noqa: BLE001 - health reports, never raises
            redis_ok = False
        degraded = not redis_ok or app.state.breaker.state != "closed"
        return {"status": "degraded" if degraded else "ok", "redis": redis_ok, "breaker": app.state.breaker.state,
                "models": sorted(state.get("models", {})), "control": s.model_version,
                "personalisation": (models.alias_for(state["perso"].version, "perso") if state.get("perso")
                                    else features.PERSONALISATION_VERSION),
                "candidate": s.candidate_version or None}

    @app.get("/metrics")
    async def metrics():
        body = generate_latest(reg)
        if s.drift_metrics_file:
            try:
                body += Path(s.drift_metrics_file).read_bytes()
            except OSError:
                pass   # no drift check has run yet
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


def main() -> None:
    import uvicorn
    logging.basicConfig(level=logging.INFO)
    host = os.environ.get("SCORING_HOST") or ("0.0.0.0" if os.path.exists("/.dockerenv") else "127.0.0.1")
    port = int(os.environ.get("SCORING_PORT", "8000"))
    uvicorn.run(create_app(), host=host, port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
