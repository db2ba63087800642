"""Personalisation: purchase-propensity models trained on click labels (PIT features), registered as
perso-v1/perso-v2 with ONNX parity, served for user_id requests; and (gated) on the real jobs' output."""
import os

import numpy as np
import pandas as pd
import pytest

from tributary_ml import models, train_perso



def test_labels_are_purchases_in_the_next_30_minutes():
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    rows = pd.DataFrame({"user_id": ["a", "a", "a", "b"],
                         "event_timestamp": [t0, t0 + pd.Timedelta(minutes=10), t0 + pd.Timedelta(minutes=40), t0]})
    buys = pd.DataFrame({"user_id": ["a", "c"], "event_timestamp": [t0 + pd.Timedelta(minutes=30), t0]})
    # a@0: purchase at 30 min is in (0, 30] → 1; a@10 → 1; a@40: after it → 0; b: none → 0
    assert list(train_perso.label_rows(rows, buys, pd.Timedelta(minutes=30))) == [1, 1, 0, 0]
    # the purchase click's own row (t = purchase time) is not labelled by that purchase
    assert list(train_perso.label_rows(rows.iloc[[0]], buys.assign(event_timestamp=[t0, t0]), pd.Timedelta(minutes=30))) == [0]


def test_perso_models_registered_with_parity(trained):
    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=trained["uri"], registry_uri=trained["uri"])
    for v, kind in (("v1", "logistic_regression"), ("v2", "xgboost")):
        mv = c.get_model_version_by_alias(models.PERSO_REGISTERED_MODEL, models.alias_for(v, "perso"))
        assert mv.tags["tributary_version"] == v and mv.tags["kind"] == kind
        m = trained["perso"][v]
        assert m["onnx_max_abs_diff"] <= 1e-6
        assert m["roc_auc"] > 0.6, m  # seed 11: v1 0.75, v2 0.73
    for f in ("perso-v1.onnx", "perso-v2.onnx", "perso_pr_curve.png", "PERSO_MODEL_CARD.md"):
        assert (trained["dir"] / f).stat().st_size > 0
    reg = models.load("v1", trained["dir"].parent / "nowhere", tracking_uri=trained["uri"], use_case="perso")
    loc = models.load("v1", trained["dir"], use_case="perso")
    x = np.ones((1, len(models.PERSO_INPUT_NAMES)), np.float32)
    assert abs(reg.predict(x)[0] - loc.predict(x)[0]) < 1e-12


from tributary_ml import realdata  # noqa: E402


@pytest.mark.skipif(not realdata.available("generate", "click-features")
                    or os.environ.get("TRIBUTARY_REAL") != "1",
                    reason="TRIBUTARY_REAL=1 and release builds of generate and click-features needed")
def test_perso_on_the_real_click_features(tmp_path):
    """generate --streams clicks --click-labels → click-features --bounded (own broker and Redis) → train."""
    from tributary_ml import realdata
    with realdata.Stack(tmp_path) as st:
        st.generate("clicks", "--count", "100000", "--users", "2000", "--click-labels", str(tmp_path / "click-labels.csv"))
        st.job("click-features")
    s = train_perso.run(tmp_path / "click-labels.csv", st.offline, tmp_path / "parquet", tmp_path / "models",
                        f"sqlite:///{tmp_path / 'mlruns.db'}", horizon_minutes=realdata.CLICK_HORIZON_MINUTES)
    print({v: (round(m["roc_auc"], 4), round(m["pr_auc"], 4), m["test_rows"], m["test_positives"]) for v, m in s.items()})
    assert s["v1"]["roc_auc"] > 0.6 and s["v1"]["onnx_max_abs_diff"] <= 1e-6
