"""Model inputs from feature values: one function shared by training and serving (no train/serve skew).

Missing values are handled explicitly: every input has a documented imputation, and a row says which
inputs were missing. `seconds_since_last_txn` is null by contract for a card's first transaction: the
model gets `has_prev_txn` = 0 and the imputed gap instead.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

# (input name, source feature or None for derived, imputation when missing)
FRAUD_INPUTS: tuple[tuple[str, str | None, float], ...] = (
    ("count_5m", "txn_stats_5m:count_5m", 1.0),
    ("sum_5m", "txn_stats_5m:sum_5m", 0.0),
    ("avg_5m", "txn_stats_5m:avg_5m", 0.0),
    ("geo_mismatch_ratio_5m", "txn_stats_5m:geo_mismatch_ratio_5m", 0.0),
    ("count_30m", "txn_profile:count_30m", 1.0),
    ("count_24h", "txn_profile:count_24h", 1.0),
    ("sum_24h", "txn_profile:sum_24h", 0.0),
    ("avg_24h", "txn_profile:avg_24h", 0.0),
    ("geo_mismatch_ratio_last_n", "txn_profile:geo_mismatch_ratio_last_n", 0.0),
    ("device_mismatch_ratio_last_n", "txn_profile:device_mismatch_ratio_last_n", 0.0),
    ("seconds_since_last_txn", "txn_profile:seconds_since_last_txn", 7 * 86400.0),
    ("amount_minor", "txn_profile:amount_minor", 0.0),
    ("device_age_days", "txn_device:device_age_days", 0.0),
    ("device_country_mismatch", "txn_device:device_country_mismatch", 0.0),
    ("has_prev_txn", None, 0.0),
    ("log_amount", None, 0.0),
    ("amount_to_avg_24h", None, 1.0),
    ("amount_to_avg_5m", None, 1.0),
)
FRAUD_INPUT_NAMES = [n for n, _, _ in FRAUD_INPUTS]
FRAUD_SOURCE_FEATURES = [s for _, s, _ in FRAUD_INPUTS if s]


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _source_inputs(inputs, values: Mapping[str, Any]):
    """The inputs read straight from source features (missing ones imputed, and listed), as a float32
    vector with the derived inputs still 0; the values by input name; the missing source features."""
    out = np.zeros(len(inputs), dtype=np.float32)
    missing: list[str] = []
    got: dict[str, float] = {}
    for i, (name, src, imp) in enumerate(inputs):
        if src is None:
            continue
        v = _num(values.get(src))
        if v is None:
            missing.append(src)
            v = imp
        got[name] = v
        out[i] = v
    return out, got, missing


def fraud_vector(values: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Input vector (float32) from {"view:feature": value}; and the names of source features missing."""
    out, got, missing = _source_inputs(FRAUD_INPUTS, values)
    idx = {n: i for i, n in enumerate(FRAUD_INPUT_NAMES)}
    prev = _num(values.get("txn_profile:seconds_since_last_txn"))
    out[idx["has_prev_txn"]] = 0.0 if prev is None else 1.0
    amt = got["amount_minor"]
    out[idx["log_amount"]] = math.log1p(max(amt, 0.0))
    out[idx["amount_to_avg_24h"]] = amt / got["avg_24h"] if got["avg_24h"] > 0 else 1.0
    out[idx["amount_to_avg_5m"]] = amt / got["avg_5m"] if got["avg_5m"] > 0 else 1.0
    return out, missing


def fraud_matrix(df) -> np.ndarray:
    """Vectors for a DataFrame whose columns are "view:feature" refs or bare feature names."""
    cols = {}
    for src in FRAUD_SOURCE_FEATURES:
        bare = src.split(":", 1)[1]
        cols[src] = df[src] if src in df else df[bare]
    recs = [dict(zip(cols, row)) for row in zip(*[c.to_numpy(dtype=object) for c in cols.values()])]
    return np.stack([fraud_vector(r)[0] for r in recs]) if recs else np.empty((0, len(FRAUD_INPUTS)), np.float32)


# --- baseline rules (the circuit breaker's fallback; no features needed) -----------------------------
FRAUD_PRIOR = 0.01


def fraud_rules(amount_minor: int | None = None) -> float:
    """Score without features: the prior, raised for a large amount when the request carries one."""
    if amount_minor is None:
        return FRAUD_PRIOR
    return 0.5 if amount_minor >= 100_000 else (0.1 if amount_minor >= 30_000 else FRAUD_PRIOR)


# --- personalisation: purchase propensity ---------------------------------------------------------
# Inputs of the trained model (train_perso.py, served by serve.py). A user with no live session row inside
# the view's 1 h ttl gets zeros and has_live_session 0; no closed session yet (or older than 7 d) →
# has_last_session 0 and zeros. `context` is not an input: the click labels carry no placement to learn from.
PERSO_INPUTS: tuple[tuple[str, str | None, float], ...] = (
    ("session_clicks", "user_session_live:session_clicks", 0.0),
    ("session_dwell_seconds", "user_session_live:session_dwell_seconds", 0.0),
    ("session_distinct_items", "user_session_live:session_distinct_items", 0.0),
    ("clicks_1h", "user_session_live:clicks_1h", 0.0),
    ("last_session_pages", "user_last_session:last_session_pages", 0.0),
    ("last_session_dwell_seconds", "user_last_session:last_session_dwell_seconds", 0.0),
    ("last_session_dwell_per_page_seconds", "user_last_session:last_session_dwell_per_page_seconds", 0.0),
    ("last_session_distinct_items", "user_last_session:last_session_distinct_items", 0.0),
    ("has_live_session", None, 0.0),
    ("has_last_session", None, 0.0),
    ("log_clicks_1h", None, 0.0),
    ("log_last_session_pages", None, 0.0),
)
PERSO_INPUT_NAMES = [n for n, _, _ in PERSO_INPUTS]
PERSO_SOURCE_FEATURES = [s for _, s, _ in PERSO_INPUTS if s]


def perso_vector(values: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Input vector (float32) from {"view:feature": value}; and the names of source features missing."""
    out, got, missing = _source_inputs(PERSO_INPUTS, values)
    idx = {n: i for i, n in enumerate(PERSO_INPUT_NAMES)}
    out[idx["has_live_session"]] = 0.0 if _num(values.get("user_session_live:clicks_1h")) is None else 1.0
    out[idx["has_last_session"]] = 0.0 if _num(values.get("user_last_session:last_session_pages")) is None else 1.0
    out[idx["log_clicks_1h"]] = math.log1p(max(got["clicks_1h"], 0.0))
    out[idx["log_last_session_pages"]] = math.log1p(max(got["last_session_pages"], 0.0))
    return out, missing


def perso_matrix(df) -> np.ndarray:
    """Vectors for a DataFrame whose columns are "view:feature" refs (absent columns: missing)."""
    cols = [df[src].to_numpy(dtype=object) if src in df else np.full(len(df), None, dtype=object)
            for src in PERSO_SOURCE_FEATURES]
    recs = [dict(zip(PERSO_SOURCE_FEATURES, row)) for row in zip(*cols)]
    return np.stack([perso_vector(r)[0] for r in recs]) if recs else np.empty((0, len(PERSO_INPUTS)), np.float32)


# The rules (`perso-rules-v0`): the circuit breaker's fallback (Redis failed: no features, so a constant
# damped by the context), and what the service serves when no personalisation model is configured.
PERSONALISATION_SOURCE_FEATURES = PERSO_SOURCE_FEATURES
PERSONALISATION_VERSION = "perso-rules-v0"


def personalisation_score(values: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[float, list[str]]:
    """Propensity from engagement (documented logistic of features); context `placement` = "banner" damps it."""
    missing = [f for f in PERSONALISATION_SOURCE_FEATURES if _num(values.get(f)) is None]
    g = lambda f, d=0.0: _num(values.get(f)) if _num(values.get(f)) is not None else d  # noqa: E731
    z = (-2.0 + 0.15 * min(g("user_session_live:session_clicks"), 20)
         + 0.002 * min(g("user_session_live:session_dwell_seconds"), 1800)
         + 0.1 * min(g("user_session_live:session_distinct_items"), 20)
         + 0.02 * min(g("user_session_live:clicks_1h"), 60)
         + 0.05 * min(g("user_last_session:last_session_pages"), 20)
         + 0.005 * min(g("user_last_session:last_session_dwell_per_page_seconds"), 300))
    if context.get("placement") == "banner":
        z -= 0.5
    return 1.0 / (1.0 + math.exp(-z)), missing
