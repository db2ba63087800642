"""Feast definitions: the contract's entities (card_id, user_id, device_id) and views.

The Parquet sources live under $TRIBUTARY_PARQUET_DIR (default data/parquet), written from the jobs' Avro
log by `python -m tributary_ml.offline`. The objects themselves are in tributary_ml.feast_repo.
"""
from tributary_ml.feast_repo import objects

for _o in objects():
    globals()[f"{type(_o).__name__.lower()}_{_o.name}"] = _o
