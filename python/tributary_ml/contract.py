"""The feature contract (notes/feature-contract.md), in one place: views, types, ttls, env defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class View:
    name: str
    entity: str
    features: tuple[tuple[str, str], ...]  # (name, Feast type: Int64 | Float64 | String)
    nullable: frozenset[str] = frozenset()
    online: bool = True
    ttl: timedelta = timedelta(days=1)  # Feast FeatureView ttl (offline point-in-time window, serving freshness)

    @property
    def feature_names(self) -> list[str]:
        return [f for f, _ in self.features]


ONLINE_VIEWS: tuple[View, ...] = (
    View("txn_stats_5m", "card_id", (
        ("count_5m", "Int64"), ("sum_5m", "Int64"), ("avg_5m", "Float64"), ("geo_mismatch_ratio_5m", "Float64"),
    ), ttl=timedelta(hours=1)),
    View("txn_profile", "card_id", (
        ("count_30m", "Int64"), ("count_24h", "Int64"), ("sum_24h", "Int64"), ("avg_24h", "Float64"),
        ("geo_mismatch_ratio_last_n", "Float64"), ("device_mismatch_ratio_last_n", "Float64"),
        ("seconds_since_last_txn", "Float64"), ("amount_minor", "Int64"),
    ), nullable=frozenset({"seconds_since_last_txn"}), ttl=timedelta(days=7)),
    View("txn_device", "card_id", (
        ("device_os", "String"), ("device_age_days", "Float64"), ("device_country_mismatch", "Int64"),
    ), ttl=timedelta(days=30)),
    View("user_session_live", "user_id", (
        ("session_clicks", "Int64"), ("session_dwell_seconds", "Float64"), ("session_distinct_items", "Int64"),
        ("clicks_1h", "Int64"),
    ), ttl=timedelta(hours=1)),
    View("user_last_session", "user_id", (
        ("last_session_pages", "Int64"), ("last_session_dwell_seconds", "Float64"),
        ("last_session_dwell_per_page_seconds", "Float64"), ("last_session_distinct_items", "Int64"),
    ), ttl=timedelta(days=7)),
)

OFFLINE_ONLY_VIEWS: tuple[View, ...] = tuple(
    View(n, "card_id", (("window_start", "TimestampMillis"), ("count", "Int64"), ("sum", "Int64"), ("avg", "Float64")),
         online=False, ttl=timedelta(days=1))
    for n in ("txn_window_5m", "txn_window_30m")
)

ALL_VIEWS = ONLINE_VIEWS + OFFLINE_ONLY_VIEWS
VIEWS = {v.name: v for v in ALL_VIEWS}
ENTITIES = ("card_id", "user_id", "device_id")
FRAUD_VIEWS = ("txn_stats_5m", "txn_profile", "txn_device")
PERSONALISATION_VIEWS = ("user_session_live", "user_last_session")

_AVRO_TYPES = {"Int64": "long", "Float64": "double", "String": "string",
               "TimestampMillis": {"type": "long", "logicalType": "timestamp-millis"}}


def avro_schema(view: View) -> dict:
    """The Avro record schema the jobs write for a view (entity, event_timestamp, features in order)."""
    fields = [{"name": view.entity, "type": "string"},
              {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}}]
    for f, t in view.features:
        at = _AVRO_TYPES[t]
        fields.append({"name": f, "type": ["null", at] if f in view.nullable else at})
    return {"type": "record", "name": view.name, "namespace": "tributary.features", "fields": fields}


def env(name: str) -> str:
    defaults = {
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "FEAST_PROJECT": "tributary",
        "TRIBUTARY_OFFLINE_DIR": str(REPO_ROOT / "data" / "offline"),
        "TRIBUTARY_PARQUET_DIR": str(REPO_ROOT / "data" / "parquet"),
        "TRIBUTARY_MODEL_DIR": str(REPO_ROOT / "data" / "models"),
        "MLFLOW_TRACKING_URI": "sqlite:///" + str(REPO_ROOT / "mlruns.db"),
        "MODEL_VERSION": "v2",
    }
    return os.environ.get(name) or defaults.get(name, "")


def resolve(path: str | os.PathLike) -> Path:
    """Relative paths in env vars are relative to the repo root (the Makefile's working directory)."""
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p
