"""Drift: a simulated shift is detected (exit 1, drift_alert 1, chart); an unshifted sample is not."""
import os

import numpy as np
import pandas as pd
import pytest

from tributary_ml import drift, realdata, synthetic


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    for name, shift in (("steady", None), ("shifted", 0.75)):
        ds = synthetic.generate(n_txn=8000, n_cards=200, n_users=20, n_clicks=100, hours=4, seed=21, shift_after=shift)
        synthetic.write_offline(ds, root / name)
    return root


def run(logs, name, tmp_path):
    prom, png = tmp_path / f"{name}.prom", tmp_path / f"{name}.png"
    code = drift.main(["--offline-dir", str(logs / name), "--recent-hours", "1", "--reference-hours", "2",
                       "--metrics-file", str(prom), "--chart", str(png)])
    return code, prom.read_text(), png


def test_shift_is_detected(logs, tmp_path):
    code, prom, png = run(logs, "shifted", tmp_path)
    assert code == 1
    assert "drift_alert 1" in prom
    assert 'drift_psi{feature="txn_profile:amount_minor"}' in prom and 'drift_js{feature=' in prom
    assert png.stat().st_size > 10_000


def test_unshifted_sample_is_not_flagged(logs, tmp_path):
    code, prom, _ = run(logs, "steady", tmp_path)
    assert code == 0, prom
    assert "drift_alert 0" in prom


def test_psi_and_js_basics():
    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(size=5000))
    p, q = drift.distributions(a, pd.Series(rng.normal(size=5000)))
    assert drift.psi(p, q) < 0.02 and drift.js(p, q) < 0.005
    p, q = drift.distributions(a, pd.Series(rng.normal(1.0, 1, size=5000)))
    assert drift.psi(p, q) > 0.5 and 0.05 < drift.js(p, q) <= 1
    # nulls are a bin of their own
    p, q = drift.distributions(a, pd.Series([np.nan] * 100 + list(rng.normal(size=100))))
    assert drift.psi(p, q) > 1


@pytest.mark.skipif(os.environ.get("TRIBUTARY_REAL") != "1" or not realdata.available("generate", "txn-features"),
                    reason="TRIBUTARY_REAL=1 and release builds of generate and txn-features needed")
def test_drift_on_the_generators_shift(tmp_path):
    """generate --amount-shift 3 --shift-after N → txn-features --bounded: alert after the shift point; the
    same data unshifted: none."""
    from tributary_ml import drift_demo
    res = drift_demo.run(count=40_000, factor=3.0, work=tmp_path, chart=tmp_path / "shift.png")
    feats = res["shifted"]["features"]
    assert res["shifted"]["alert"] and feats["txn_profile:amount_minor"]["alert"] and feats["txn_profile:avg_24h"]["alert"]
    assert not res["unshifted"]["alert"], res["unshifted"]
    assert (tmp_path / "shift.png").stat().st_size > 0
