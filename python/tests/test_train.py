"""Training: registered v1 (LR) / v2 (XGBoost) in MLflow, ONNX parity to 1e-6, useful AUCs, artefacts."""
import numpy as np

from tributary_ml import models, train


def test_registered_versions_and_metrics(trained):
    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=trained["uri"], registry_uri=trained["uri"])
    kinds = {}
    for v in ("v1", "v2"):
        mv = c.get_model_version_by_alias(models.REGISTERED_MODEL, models.alias_for(v))
        assert mv.tags["tributary_version"] == v
        kinds[v] = mv.tags["kind"]
        m = trained["summary"][v]
        assert m["onnx_max_abs_diff"] <= 1e-6
        assert m["roc_auc"] > 0.8, m
    assert kinds == {"v1": "logistic_regression", "v2": "xgboost"}
    for f in ("pr_curve.png", "MODEL_CARD.md", "fraud-v1.onnx", "fraud-v2.onnx", "metrics.json"):
        assert (trained["dir"] / f).stat().st_size > 0
    assert "ROC-AUC" in (trained["dir"] / "MODEL_CARD.md").read_text()


def test_onnx_matches_native_model():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, len(models.FRAUD_INPUT_NAMES))).astype(np.float32)
    x[:, 6] *= 1e5  # a large-valued column like sum_24h
    y = (x[:, 0] + 0.5 * x[:, 3] + rng.normal(size=2000) > 2.2).astype(int)
    for make in (train._lr, train._xgb):
        m, _ = make(1)
        m.fit(x, y)
        diff = np.abs(m.predict_proba(x)[:, 1] - train.onnx_scores(train.to_onnx(m), x)).max()
        assert diff <= 1e-6, (make.__name__, diff)


def test_service_loads_the_registered_model_from_mlflow(trained, tmp_path):
    m = models.load("v2", tmp_path, tracking_uri=trained["uri"])  # not in tmp_path: from the registry
    local = models.load("v2", trained["dir"])
    x = np.zeros((1, len(models.FRAUD_INPUT_NAMES)), np.float32)
    assert abs(m.predict(x)[0] - local.predict(x)[0]) < 1e-9
