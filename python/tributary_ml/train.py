"""Training: labels + a point-in-time training set from the offline log → LR (v1) and XGBoost (v2).

    python -m tributary_ml.train --labels data/labels.csv [--offline-dir …] [--parquet-dir …] [--out data/models]

1. The Avro log is converted to Parquet (incremental) and read through Feast's `get_historical_features`
   with one entity row per `txn_profile` row (card_id, event_timestamp): every feature as of that
   transaction, no later information. Label 1 when (card_id, event_time) is in the labels CSV.
2. Time split (the last --test-share of time is the test set). Both models are Platt-calibrated on the
   latest 20% of the training slice.
3. ROC-AUC, PR-AUC, Brier on the test set; a precision/recall curve PNG.
4. ONNX export; the ONNX scores must equal the native model's to 1e-6 (else the run fails).
5. MLflow (MLFLOW_TRACKING_URI, default sqlite:///mlruns.db): one run per model, registered as
   `tributary-fraud`, v1 (LR) and v2 (XGB) by aliases `fraud-v1`, `fraud-v2` (MLflow reserves `v<N>`) and tag
   `tributary_version`; model card; files in --out for the service.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import contract, feast_repo, offline
from .contract import env, resolve
from .features import FRAUD_INPUT_NAMES, FRAUD_SOURCE_FEATURES, fraud_matrix
from .models import REGISTERED_MODEL, alias_for, model_path

log = logging.getLogger("tributary.train")
EXPERIMENT = "tributary-fraud"
PARITY_TOL = 1e-6


def load_labels(path: str | Path) -> pd.DataFrame:
    lab = pd.read_csv(path, dtype={"txn_id": str, "card_id": str, "pattern": str})
    lab["event_timestamp"] = pd.to_datetime(lab["event_time"].astype("int64"), unit="ms", utc=True)
    return lab


def training_set(store, offline_dir: str | Path, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per txn_profile row: "view:feature" columns (point in time), label, event_timestamp."""
    ent = offline.read_view(offline_dir, "txn_profile")[["card_id", "event_timestamp"]]
    ent = ent.drop_duplicates(["card_id", "event_timestamp"])
    ent["event_timestamp"] = ent["event_timestamp"].astype("datetime64[ms, UTC]")
    # one query per view, left-joined back: Feast 0.67 drops an entity row (all views) when any view has
    # no source row inside its ttl
    from .parity import historical
    views = sorted({contract.VIEWS[f.split(":")[0]] for f in FRAUD_SOURCE_FEATURES}, key=lambda v: v.name)
    df = historical(store, "card_id", views, ent)
    df = df[["card_id", "event_timestamp", *FRAUD_SOURCE_FEATURES]]
    lab = labels[["card_id", "event_timestamp"]].assign(label=1)
    lab["event_timestamp"] = lab["event_timestamp"].astype("datetime64[ms, UTC]")
    df = df.merge(lab.drop_duplicates(), on=["card_id", "event_timestamp"], how="left")
    df["label"] = df["label"].fillna(0).astype(int)
    return df.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


@dataclass
class Trained:
    version: str
    kind: str
    native: object
    onnx_bytes: bytes
    metrics: dict
    params: dict
    curve: tuple


class PlattCalibrated:
    """Platt scaling of the base model's margin on a held-out (later-in-time) calibration slice:
    q = sigmoid(a · margin + b), margin = LR decision function or XGBoost raw margin.

    Done here rather than with CalibratedClassifierCV because skl2onnx 1.20's converter for the latter
    does not match scikit-learn 1.9's scores (measured: 0.58 max abs diff). On the margin (not on
    logit(p)) so that float32 ONNX arithmetic stays within 1e-6 of the native scores."""

    def __init__(self, base, cal_share: float = 0.2):
        self.base, self.cal_share = base, cal_share
        self.a, self.b = 1.0, 0.0

    def margin(self, x):
        # inputs are float32 values (features.fraud_vector), computed on in double (as the ONNX graph does)
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        if hasattr(self.base, "decision_function"):
            return np.asarray(self.base.decision_function(x), dtype=np.float64)
        return self._xgb_margin64(x)

    def _xgb_margin64(self, x):
        """XGBoost's margin with the trees' leaf values summed in float64 (XGBoost sums in float32: its own
        predict differs from the exact sum by up to ~1e-5; the ONNX graph sums in double, see to_onnx)."""
        import json
        import xgboost as xgb
        b = self.base.get_booster()
        if getattr(self, "_tables", None) is None:
            tables = []
            for t in b.get_dump(dump_format="json"):
                leaves: dict[int, float] = {}
                stack = [json.loads(t)]
                while stack:
                    n = stack.pop()
                    if "leaf" in n:
                        leaves[n["nodeid"]] = n["leaf"]
                    else:
                        stack.extend(n["children"])
                tab = np.zeros(max(leaves) + 1)
                tab[list(leaves)] = list(leaves.values())
                tables.append(tab)
            bs = float(str(json.loads(b.save_config())["learner"]["learner_model_param"]["base_score"]).strip("[]"))
            self._tables, self._base_margin = tables, float(np.log(bs / (1 - bs)))
        leaf = b.predict(xgb.DMatrix(np.asarray(x, dtype=np.float32)), pred_leaf=True).astype(np.int64)
        leaf = leaf.reshape(len(x), -1)
        return self._base_margin + sum(tab[leaf[:, k]] for k, tab in enumerate(self._tables))

    def fit(self, x, y):
        from sklearn.linear_model import LogisticRegression
        cut = int(len(x) * (1 - self.cal_share))
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        self.base.fit(x[:cut], y[:cut])
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(self.margin(x[cut:]).reshape(-1, 1), y[cut:])
        self.a, self.b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def predict_proba(self, x):
        q = 1 / (1 + np.exp(-(self.a * self.margin(x) + self.b)))
        return np.stack([1 - q, q], axis=1)


def _lr(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    params = {"C": 1.0, "max_iter": 2000, "class_weight": "balanced", "calibration": "platt", "cal_share": 0.2}
    base = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced",
                                                              random_state=seed))
    return PlattCalibrated(base), params


def _xgb(seed: int, **over):
    from xgboost import XGBClassifier
    kw = {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.9, "colsample_bytree": 0.9,
          "tree_method": "hist", **over}
    params = {**kw, "calibration": "platt", "cal_share": 0.2}
    base = XGBClassifier(**kw, n_jobs=2, random_state=seed, eval_metric="logloss")
    return PlattCalibrated(base), params


def _platt_nodes(helper, TensorProto, model, margin_in: str) -> list:
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name + "_t", TensorProto.DOUBLE, [], [v]))
    return [
        c("one_i", 1.0), c("pa", model.a), c("pb", model.b),
        helper.make_node("Cast", [margin_in], ["margin"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["margin", "pa"], ["za"]),
        helper.make_node("Add", ["za", "pb"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["q"]),
        helper.make_node("Sub", ["one_i", "q"], ["q0"]),
        helper.make_node("Concat", ["q0", "q"], ["probabilities"], axis=1),
    ]


def to_onnx(model: PlattCalibrated) -> bytes:
    """ONNX graph in double precision: input `features` [N, F] double, output `probabilities` [N, 2] double.

    LR (StandardScaler + LogisticRegression): written directly as Sub/Div/MatMul/Add (skl2onnx's float
    LinearClassifier is ~5e-7 off). XGBoost: onnxmltools' TreeEnsembleClassifier with double input (ONNX
    Runtime then accumulates in double; with float input it sums in float, ~1e-5 off), its margin exposed
    (post_transform NONE). Then the Platt step."""
    import onnx
    from onnx import TensorProto, helper
    from xgboost import XGBClassifier
    base = model.base
    nf = int(base.n_features_in_)
    if isinstance(base, XGBClassifier):
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx import convert_sklearn, update_registered_converter
        from skl2onnx.common.data_types import DoubleTensorType
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
                                    convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
        onx = convert_sklearn(base, initial_types=[("features", DoubleTensorType([None, nf]))],
                              options={id(base): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        g = onx.graph
        trees = [n for n in g.node if n.op_type == "TreeEnsembleClassifier"]
        if len(trees) != 1:
            raise RuntimeError("unexpected ONNX graph for XGBoost: no single TreeEnsembleClassifier")
        for n in g.node:
            n.output[:] = ["base_scores" if o == "probabilities" else o for o in n.output]
        for at in trees[0].attribute:
            if at.name == "post_transform":
                at.s = b"NONE"
        g.node.extend([helper.make_node("Constant", [], ["idx1"], value=helper.make_tensor("idx1_t", TensorProto.INT64, [1], [1])),
                       helper.make_node("Gather", ["base_scores", "idx1"], ["margin_raw"], axis=1)])
        g.node.extend(_platt_nodes(helper, TensorProto, model, "margin_raw"))
        out = [o for o in g.output if o.name == "probabilities"][0]
        out.type.tensor_type.elem_type = TensorProto.DOUBLE
    else:
        scaler, lr = base.steps[0][1], base.steps[-1][1]
        t = lambda name, arr: helper.make_tensor(name, TensorProto.DOUBLE, list(np.shape(arr)),  # noqa: E731
                                                 np.asarray(arr, dtype=np.float64).ravel().tolist())
        inits = [t("mean", scaler.mean_), t("scale", scaler.scale_), t("w", lr.coef_.reshape(nf, 1)),
                 t("c", lr.intercept_.reshape(1))]
        nodes = [helper.make_node("Sub", ["features", "mean"], ["centred"]),
                 helper.make_node("Div", ["centred", "scale"], ["scaled"]),
                 helper.make_node("MatMul", ["scaled", "w"], ["wx"]),
                 helper.make_node("Add", ["wx", "c"], ["margin_raw"])]
        nodes += _platt_nodes(helper, TensorProto, model, "margin_raw")
        g = helper.make_graph(nodes, "tributary_fraud_lr",
                              [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, nf])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])], inits)
        onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="tributary_ml")
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def onnx_scores(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dt = np.float64 if inp.type == "tensor(double)" else np.float32
    return sess.run(["probabilities"], {inp.name: np.asarray(x, dtype=dt)})[0][:, 1]


def fit_one(version: str, kind: str, xtr, ytr, xte, yte, seed: int, **xgb_params) -> Trained:
    from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score
    model, params = _lr(seed) if kind == "logistic_regression" else _xgb(seed, **xgb_params)
    t = time.time()
    model.fit(xtr, ytr)
    fit_s = time.time() - t
    p = model.predict_proba(xte)[:, 1]
    onx = to_onnx(model)
    po = onnx_scores(onx, xte)
    parity = float(np.max(np.abs(po - p))) if len(p) else 0.0
    if parity > PARITY_TOL:
        raise RuntimeError(f"{version}: ONNX scores differ from the native model's by {parity:.3g} > {PARITY_TOL}")
    prec, rec, _ = precision_recall_curve(yte, p)
    metrics = {"roc_auc": float(roc_auc_score(yte, p)), "pr_auc": float(average_precision_score(yte, p)),
               "brier": float(brier_score_loss(yte, p)), "onnx_max_abs_diff": parity, "fit_seconds": fit_s,
               "test_rows": int(len(yte)), "test_positives": int(yte.sum()), "train_rows": int(len(ytr)),
               "train_positives": int(ytr.sum())}
    return Trained(version, kind, model, onx, metrics, params, (prec, rec))


def pr_curve_png(results: list[Trained], path: Path, base_rate: float,
                 title: str = "Fraud models: precision / recall on the time-split test set") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for r in results:
        prec, rec = r.curve
        ax.plot(rec, prec, label=f"{r.version} {r.kind} (PR-AUC {r.metrics['pr_auc']:.3f}, ROC-AUC {r.metrics['roc_auc']:.3f})")
    ax.axhline(base_rate, color="grey", ls="--", lw=0.8, label=f"base rate {base_rate:.3%}")
    ax.set_xlabel("recall"); ax.set_ylabel("precision"); ax.set_xlim(0, 1); ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left"); fig.tight_layout(); fig.savefig(path); plt.close(fig)


def model_card(results: list[Trained], data: dict, path: Path) -> None:
    lines = ["# Model card: tributary-fraud", "",
             f"Trained {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m tributary_ml.train`.", "",
             "## Intended use",
             "Scores a card's latest transaction (features as of that transaction, from the online store) with",
             "P(fraud). Served by `tributary_ml.serve` (ONNX); the breaker falls back to baseline rules.",
             "Not for decisions without a human review path; calibrated on synthetic/injected fraud only.", "",
             "## Data",
             f"- Offline log: `{data['offline_dir']}`; labels: `{data['labels']}` (the generators' injected fraud).",
             f"- Rows: {data['rows']} transactions ({data['positives']} fraud, {data['base_rate']:.3%}); time split at "
             f"{data['split_time']} (train before, test after).",
             "- Point-in-time features via Feast `get_historical_features` (rows Feast drops re-joined as missing).",
             f"- Inputs ({len(FRAUD_INPUT_NAMES)}): " + ", ".join(f"`{n}`" for n in FRAUD_INPUT_NAMES) + ".",
             "- Missing values: documented imputation in `tributary_ml/features.py` (same code trains and serves).", "",
             "## Models", "", "| version (MLflow alias) | model | ROC-AUC | PR-AUC | Brier | ONNX max abs diff |", "|---|---|---|---|---|---|"]
    for r in results:
        m = r.metrics
        lines.append(f"| `{r.version}` (`{alias_for(r.version)}`) | {r.kind} + Platt calibration (held-out later 20% of train) | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | "
                     f"{m['brier']:.5f} | {m['onnx_max_abs_diff']:.2e} |")
    lines += ["", "## Caveats",
              "- Labels are injected patterns (burst, geo hopping, new device, unusual amount): real fraud differs.",
              "- The test set is the last part of the time span; no seasonality is covered.",
              "- Watch `drift_psi`/`drift_js` (python -m tributary_ml.drift) before trusting scores on new data.", ""]
    path.write_text("\n".join(lines))


def run(labels: str | Path, offline_dir: str | Path, parquet_dir: str | Path, out_dir: str | Path,
        tracking_uri: str, feast_dir: str | Path | None = None, test_share: float = 0.25, seed: int = 7,
        redis_host: str | None = None, redis_port: int | None = None) -> dict:
    import mlflow
    from mlflow import MlflowClient
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    offline.convert(offline_dir, parquet_dir)
    feast_dir = Path(feast_dir or Path(parquet_dir).parent / "feast-train")
    store = feast_repo.store(feast_dir, parquet_dir=parquet_dir, redis_host=redis_host, redis_port=redis_port)
    t = time.time()
    df = training_set(store, offline_dir, load_labels(labels))
    log.info("training set: %d rows in %.1f s", len(df), time.time() - t)
    if df["label"].sum() < 4:
        raise RuntimeError("fewer than 4 fraud labels match the offline log: wrong labels file?")
    x = fraud_matrix(df); y = df["label"].to_numpy()
    cut = int(len(df) * (1 - test_share))
    split_time = df["event_timestamp"].iloc[cut]
    xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
    results = [fit_one("v1", "logistic_regression", xtr, ytr, xte, yte, seed),
               fit_one("v2", "xgboost", xtr, ytr, xte, yte, seed)]
    base_rate = float(y.mean())
    png = out_dir / "pr_curve.png"
    pr_curve_png(results, png, float(yte.mean()) if len(yte) else base_rate)
    card = out_dir / "MODEL_CARD.md"
    data = {"offline_dir": str(offline_dir), "labels": str(labels), "rows": len(df), "positives": int(y.sum()),
            "base_rate": base_rate, "split_time": str(split_time)}
    model_card(results, data, card)

    import onnx
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    summary = {}
    for r in results:
        path = model_path(out_dir, r.version)
        path.write_bytes(r.onnx_bytes)
        meta = {"version": r.version, "kind": r.kind, "inputs": FRAUD_INPUT_NAMES, "metrics": r.metrics,
                "trained_at": datetime.now(timezone.utc).isoformat()}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        with mlflow.start_run(run_name=f"{r.version}-{r.kind}") as run_:
            mlflow.log_params({**r.params, "model": r.kind, "inputs": len(FRAUD_INPUT_NAMES), "seed": seed,
                               "test_share": test_share})
            mlflow.log_metrics({k: v for k, v in r.metrics.items()})
            mlflow.set_tags({"alias": r.version, "feast_project": store.project})
            mlflow.log_artifact(str(png)); mlflow.log_artifact(str(card)); mlflow.log_artifact(str(path.with_suffix(".json")))
            info = mlflow.onnx.log_model(onnx.load_from_string(r.onnx_bytes), name="model",
                                         registered_model_name=REGISTERED_MODEL)
            mv = info.registered_model_version
            # MLflow reserves alias names v<N> (they mean version N): the alias is "fraud-<version>"
            client.set_registered_model_alias(REGISTERED_MODEL, alias_for(r.version), str(mv))
            client.set_model_version_tag(REGISTERED_MODEL, str(mv), "tributary_version", r.version)
            client.set_model_version_tag(REGISTERED_MODEL, str(mv), "kind", r.kind)
            summary[r.version] = {**r.metrics, "kind": r.kind, "registered_version": int(mv), "run_id": run_.info.run_id}
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default=str(resolve("data/labels.csv")))
    ap.add_argument("--offline-dir", default=env("TRIBUTARY_OFFLINE_DIR"))
    ap.add_argument("--parquet-dir", default=env("TRIBUTARY_PARQUET_DIR"))
    ap.add_argument("--out", default=env("TRIBUTARY_MODEL_DIR"))
    ap.add_argument("--test-share", type=float, default=0.25)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = run(resolve(a.labels), resolve(a.offline_dir), resolve(a.parquet_dir), resolve(a.out), env("MLFLOW_TRACKING_URI"),
            test_share=a.test_share)
    for v, m in s.items():
        print(f"{v} ({m['kind']}): ROC-AUC {m['roc_auc']:.4f}  PR-AUC {m['pr_auc']:.4f}  Brier {m['brier']:.5f}  "
              f"ONNX max|Δ| {m['onnx_max_abs_diff']:.1e}  registered {REGISTERED_MODEL} version {m['registered_version']} @{alias_for(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
