"""ONNX fraud models by version: from TRIBUTARY_MODEL_DIR (`fraud-<version>.onnx`, written by training) or,
when a version is not there, from the MLflow registry (model `tributary-fraud`, alias `fraud-<version>`)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .features import FRAUD_INPUT_NAMES

REGISTERED_MODEL = "tributary-fraud"
log = logging.getLogger(__name__)


class OnnxModel:
    def __init__(self, path: str | Path, version: str):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.version = version
        inp = self.session.get_inputs()[0]
        self.input = inp.name
        self.dtype = np.float64 if inp.type == "tensor(double)" else np.float32
        outs = [o.name for o in self.session.get_outputs()]
        self.output = "probabilities" if "probabilities" in outs else outs[-1]
        meta = Path(path).with_suffix(".json")
        self.meta = json.loads(meta.read_text()) if meta.exists() else {}
        if self.meta.get("inputs", FRAUD_INPUT_NAMES) != FRAUD_INPUT_NAMES:
            raise ValueError(f"model {version}: inputs {self.meta['inputs']} differ from this code's {FRAUD_INPUT_NAMES}")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(fraud) for rows of inputs (fed as the model's input type)."""
        out = self.session.run([self.output], {self.input: np.asarray(x, dtype=self.dtype).reshape(-1, len(FRAUD_INPUT_NAMES))})[0]
        return out[:, 1] if out.ndim == 2 else out


def alias_for(version: str) -> str:
    """MLflow alias of a Tributary model version (MLflow reserves aliases named v<N>)."""
    return f"fraud-{version}"


def model_path(model_dir: str | Path, version: str) -> Path:
    return Path(model_dir) / f"fraud-{version}.onnx"


def load(version: str, model_dir: str | Path, tracking_uri: str | None = None) -> OnnxModel:
    p = model_path(model_dir, version)
    if not p.exists() and tracking_uri:
        import mlflow
        mlflow.set_tracking_uri(tracking_uri)
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{REGISTERED_MODEL}@{alias_for(version)}"))
        cand = sorted(local.rglob("*.onnx"))
        if not cand:
            raise FileNotFoundError(f"no ONNX file in models:/{REGISTERED_MODEL}@{version}")
        p = cand[0]
    if not p.exists():
        raise FileNotFoundError(f"model {version}: {p} not found (run `make train`)")
    return OnnxModel(p, version)
