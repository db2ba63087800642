"""The Feast objects of the contract and a FeatureStore built from them.

`feature_repo/` (feature_store.yaml + definitions.py) is the repo for the `feast` CLI; this module holds the
objects so that tests and tools can build the same store programmatically (other Redis, other paths).
"""
from __future__ import annotations

import os
from pathlib import Path

from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Float64, Int64, String, UnixTimestamp

from . import contract
from .contract import env, resolve

_TYPES = {"Int64": Int64, "Float64": Float64, "String": String, "TimestampMillis": UnixTimestamp}


def entities() -> list[Entity]:
    return [Entity(name=e, join_keys=[e], value_type=ValueType.STRING,
                   description=f"keyed by {e}") for e in contract.ENTITIES]


def objects(parquet_dir: str | os.PathLike | None = None) -> list:
    """Entities, one Parquet FileSource per view, and the feature views (offline-only ones with online=False)."""
    parquet_dir = Path(resolve(parquet_dir or env("TRIBUTARY_PARQUET_DIR")))
    ents = {e.join_key: e for e in entities()}
    out: list = list(ents.values())
    for v in contract.ALL_VIEWS:
        src = FileSource(name=f"{v.name}_source", path=str(parquet_dir / v.name),
                         timestamp_field="event_timestamp")
        out.append(FeatureView(
            name=v.name, entities=[ents[v.entity]], ttl=v.ttl, online=v.online, source=src,
            schema=[Field(name=f, dtype=_TYPES[t]) for f, t in v.features],
            tags={"owner": "tributary-jobs", "contract": "notes/feature-contract.md"},
        ))
    return out


def config(repo_path: str | os.PathLike, project: str | None = None, redis_host: str | None = None,
           redis_port: int | str | None = None, registry: str | os.PathLike | None = None,
           key_ttl_seconds: int | None = None) -> RepoConfig:
    online = {"type": "redis",
              "connection_string": f"{redis_host or env('REDIS_HOST')}:{redis_port or env('REDIS_PORT')}"}
    if key_ttl_seconds:
        online["key_ttl_seconds"] = key_ttl_seconds
    return RepoConfig(
        project=project or env("FEAST_PROJECT"), provider="local",
        registry=str(registry or Path(repo_path) / "registry.db"),
        online_store=online, offline_store={"type": "file"},
        entity_key_serialization_version=3, repo_path=Path(repo_path),
    )


def store(repo_path: str | os.PathLike, parquet_dir=None, apply: bool = True, **kw) -> FeatureStore:
    """A FeatureStore on the contract's objects (applied to its registry when `apply`)."""
    Path(repo_path).mkdir(parents=True, exist_ok=True)
    fs = FeatureStore(config=config(repo_path, **kw))
    if apply:
        fs.apply(objects(parquet_dir))
    return fs


def feature_refs(views) -> list[str]:
    return [f"{v}:{f}" for v in views for f in contract.VIEWS[v].feature_names]
