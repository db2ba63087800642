"""Drift: a simulated shift is detected (exit 1, drift_alert 1, chart); an unshifted sample is not."""
import numpy as np
import pandas as pd
import pytest

from tributary_ml import drift, synthetic


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
