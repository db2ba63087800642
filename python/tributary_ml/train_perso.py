"""Personalisation: purchase propensity from the click features, trained on `generate --click-labels`.

    python -m tributary_ml.train_perso --click-labels data/click-labels.csv [--offline-dir …] [--out data/models]
                                       [--horizon-minutes 30]

1. Entity rows = every `user_session_live` row of the offline log (user_id, event_timestamp t): the
   moments a score could have been asked for. Label 1 when the user has a PURCHASE in (t, t + horizon]
   (30 min by default) in the click-labels CSV (`event_id,user_id,event_time,action`).
2. Features as of t through Feast's `get_historical_features` (the same per-view, left-joined point-in-time
   machinery as the fraud training): `user_session_live` and `user_last_session` (whose rows become
   visible only when the session has closed). Inputs: `features.perso_vector` (the service's function).
3. Time split (the last --test-share of time is the test set); v1 = StandardScaler + LogisticRegression,
   v2 = XGBoost (shallow: depth 2, 150 trees), both Platt-calibrated (train.fit_one, shared with fraud); ROC-AUC, PR-AUC, Brier.
4. ONNX (double graphs, parity ≤ 1e-6 or the run fails); MLflow experiment `tributary-perso`, registered
   model `tributary-perso`, aliases `perso-v1`, `perso-v2`; files `perso-v{1,2}.onnx` (+ .json) in --out.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import contract, feast_repo, offline
from .contract import env, resolve
from .features import PERSO_INPUT_NAMES, PERSO_SOURCE_FEATURES, perso_matrix
from .models import PERSO_REGISTERED_MODEL, alias_for, model_path
from .train import fit_one, pr_curve_png

log = logging.getLogger("tributary.train_perso")
EXPERIMENT = "tributary-perso"
# smaller trees than fraud's: the signal is per user and weak, deeper trees learn the training users
XGB_PARAMS = {"n_estimators": 150, "max_depth": 2, "min_child_weight": 20, "learning_rate": 0.05}


def load_click_labels(path: str | Path) -> pd.DataFrame:
    lab = pd.read_csv(path, dtype={"event_id": str, "user_id": str, "action": str})
    lab = lab[lab["action"] == "PURCHASE"]
    lab["event_timestamp"] = pd.to_datetime(lab["event_time"].astype("int64"), unit="ms", utc=True)
    return lab


def label_rows(rows: pd.DataFrame, purchases: pd.DataFrame, horizon: pd.Timedelta) -> np.ndarray:
    """1 where the row's user has a purchase with time in (t, t + horizon], else 0."""
    ms = lambda s: pd.to_datetime(s, utc=True).astype("datetime64[ms, UTC]").astype("int64").to_numpy()  # noqa: E731
    by_user = {u: np.sort(ms(g["event_timestamp"])) for u, g in purchases.groupby("user_id")}
    h = int(horizon / pd.Timedelta(milliseconds=1))
    t_all = ms(rows["event_timestamp"])
    out = np.zeros(len(rows), dtype=int)
    for u, idx in rows.groupby("user_id").indices.items():
        p = by_user.get(u)
        if p is None:
            continue
        t = t_all[idx]
        nxt = np.searchsorted(p, t, side="right")  # first purchase strictly after t
        ok = nxt < len(p)
        out[idx[ok]] = (p[nxt[ok]] <= t[ok] + h).astype(int)
    return out


def training_set(store, offline_dir: str | Path, purchases: pd.DataFrame, horizon: pd.Timedelta) -> pd.DataFrame:
    """One row per user_session_live row: "view:feature" columns (point in time), label, event_timestamp."""
    from .parity import historical
    ent = offline.read_view(offline_dir, "user_session_live")[["user_id", "event_timestamp"]]
    ent = ent.drop_duplicates(["user_id", "event_timestamp"])
    ent["event_timestamp"] = ent["event_timestamp"].astype("datetime64[ms, UTC]")
    views = [contract.VIEWS[v] for v in contract.PERSONALISATION_VIEWS]
    df = historical(store, "user_id", views, ent)
    df = df[["user_id", "event_timestamp", *[c for c in PERSO_SOURCE_FEATURES if c in df]]]
    df = df.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    df["label"] = label_rows(df, purchases, horizon)
    return df


def model_card(results, data: dict, path: Path) -> None:
    lines = ["# Model card: tributary-perso (purchase propensity)", "",
             f"Trained {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m tributary_ml.train_perso`.", "",
             "## Intended use",
             "Scores a user (features of the live session and the last closed session, from the online store) with",
             f"P(purchase within {data['horizon']}). Served by `tributary_ml.serve` for `user_id` requests; the",
             "breaker falls back to the `perso-rules-v0` rules. `context` is not an input (the labels carry none).", "",
             "## Data",
             f"- Offline log: `{data['offline_dir']}`; labels: `{data['labels']}` (PURCHASE clicks).",
             f"- Rows: {data['rows']} `user_session_live` rows ({data['positives']} positive, {data['base_rate']:.2%}); "
             f"time split at {data['split_time']}.",
             "- Point-in-time features via Feast `get_historical_features`, one view at a time, left-joined.",
             f"- Inputs ({len(PERSO_INPUT_NAMES)}): " + ", ".join(f"`{n}`" for n in PERSO_INPUT_NAMES) + ".", "",
             "## Models", "", "| version (MLflow alias) | model | ROC-AUC | PR-AUC | Brier | ONNX max abs diff |",
             "|---|---|---|---|---|---|"]
    for r in results:
        m = r.metrics
        lines.append(f"| `{r.version}` (`{alias_for(r.version, 'perso')}`) | {r.kind} + Platt | {m['roc_auc']:.4f} | "
                     f"{m['pr_auc']:.4f} | {m['brier']:.5f} | {m['onnx_max_abs_diff']:.2e} |")
    lines += ["", "## Caveats",
              "- Synthetic users: who buys is drawn per user (more buyers among the active); real intent differs.",
              "- Rows are per click: heavy users weigh more than their share of users.", ""]
    path.write_text("\n".join(lines))


def run(click_labels: str | Path, offline_dir: str | Path, parquet_dir: str | Path, out_dir: str | Path,
        tracking_uri: str, feast_dir: str | Path | None = None, test_share: float = 0.25, seed: int = 7,
        horizon_minutes: float = 30.0, redis_host: str | None = None, redis_port: int | None = None,
        xgboost: bool = True, register: bool = True) -> dict:
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    offline.convert(offline_dir, parquet_dir)
    feast_dir = Path(feast_dir or Path(parquet_dir).parent / "feast-train")
    store = feast_repo.store(feast_dir, parquet_dir=parquet_dir, redis_host=redis_host, redis_port=redis_port)
    horizon = pd.Timedelta(minutes=horizon_minutes)
    t = time.time()
    df = training_set(store, offline_dir, load_click_labels(click_labels), horizon)
    log.info("perso training set: %d rows, %d positive, in %.1f s", len(df), int(df["label"].sum()), time.time() - t)
    x = perso_matrix(df); y = df["label"].to_numpy()
    cut = int(len(df) * (1 - test_share))
    xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
    if min(ytr.sum(), yte.sum(), len(ytr) - ytr.sum(), len(yte) - yte.sum()) < 4:
        raise RuntimeError(f"too few positives or negatives to train ({int(y.sum())} of {len(y)}): wrong labels file?")
    results = [fit_one("v1", "logistic_regression", xtr, ytr, xte, yte, seed)]
    if xgboost:
        results.append(fit_one("v2", "xgboost", xtr, ytr, xte, yte, seed, **XGB_PARAMS))
    png = out_dir / "perso_pr_curve.png"
    pr_curve_png(results, png, float(yte.mean()), title="Purchase propensity: precision / recall (time-split test set)")
    card = out_dir / "PERSO_MODEL_CARD.md"
    data = {"offline_dir": str(offline_dir), "labels": str(click_labels), "rows": len(df), "positives": int(y.sum()),
            "base_rate": float(y.mean()), "split_time": str(df["event_timestamp"].iloc[cut]), "horizon": str(horizon)}
    model_card(results, data, card)
    summary = {}
    client = None
    if register:
        import mlflow
        from mlflow import MlflowClient
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(EXPERIMENT)
        client = MlflowClient()
    for r in results:
        path = model_path(out_dir, r.version, "perso")
        path.write_bytes(r.onnx_bytes)
        meta = {"version": r.version, "kind": r.kind, "use_case": "perso", "inputs": PERSO_INPUT_NAMES,
                "metrics": r.metrics, "horizon_minutes": horizon_minutes,
                "trained_at": datetime.now(timezone.utc).isoformat()}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        summary[r.version] = {**r.metrics, "kind": r.kind}
        if client is None:
            continue
        import mlflow
        import onnx
        with mlflow.start_run(run_name=f"perso-{r.version}-{r.kind}") as run_:
            mlflow.log_params({**r.params, "model": r.kind, "inputs": len(PERSO_INPUT_NAMES), "seed": seed,
                               "test_share": test_share, "horizon_minutes": horizon_minutes})
            mlflow.log_metrics(dict(r.metrics))
            mlflow.set_tags({"alias": alias_for(r.version, "perso"), "feast_project": store.project})
            for f in (png, card, path.with_suffix(".json")):
                mlflow.log_artifact(str(f))
            info = mlflow.onnx.log_model(onnx.load_from_string(r.onnx_bytes), name="model",
                                         registered_model_name=PERSO_REGISTERED_MODEL)
            mv = str(info.registered_model_version)
            client.set_registered_model_alias(PERSO_REGISTERED_MODEL, alias_for(r.version, "perso"), mv)
            client.set_model_version_tag(PERSO_REGISTERED_MODEL, mv, "tributary_version", r.version)
            client.set_model_version_tag(PERSO_REGISTERED_MODEL, mv, "kind", r.kind)
            summary[r.version].update(registered_version=int(mv), run_id=run_.info.run_id)
    (out_dir / "perso_metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--click-labels", default=str(resolve("data/click-labels.csv")))
    ap.add_argument("--offline-dir", default=env("TRIBUTARY_OFFLINE_DIR"))
    ap.add_argument("--parquet-dir", default=env("TRIBUTARY_PARQUET_DIR"))
    ap.add_argument("--out", default=env("TRIBUTARY_MODEL_DIR"))
    ap.add_argument("--test-share", type=float, default=0.25)
    ap.add_argument("--horizon-minutes", type=float, default=30.0)
    ap.add_argument("--no-xgboost", action="store_true", help="v1 (LR) only")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = run(resolve(a.click_labels), resolve(a.offline_dir), resolve(a.parquet_dir), resolve(a.out),
            env("MLFLOW_TRACKING_URI"), test_share=a.test_share, horizon_minutes=a.horizon_minutes,
            xgboost=not a.no_xgboost)
    for v, m in s.items():
        print(f"perso {v} ({m['kind']}): ROC-AUC {m['roc_auc']:.4f}  PR-AUC {m['pr_auc']:.4f}  Brier {m['brier']:.5f}  "
              f"ONNX max|Δ| {m['onnx_max_abs_diff']:.1e}  test {m['test_rows']} rows ({m['test_positives']} positive)"
              + (f"  registered {PERSO_REGISTERED_MODEL} version {m['registered_version']} @{alias_for(v, 'perso')}"
                 if "registered_version" in m else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
