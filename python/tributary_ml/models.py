"""ONNX models by use case and version: from TRIBUTARY_MODEL_DIR (`<prefix>-<version>.onnx`, written by
training) or, when a version is not there, from the MLflow registry (alias `<prefix>-<version>`).

Use cases: fraud (prefix `fraud`, registered model `tributary-fraud`) and personalisation (prefix `perso`,
registered model `tributary-perso`)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .features import FRAUD_INPUT_NAMES, PERSO_INPUT_NAMES

REGISTERED_MODEL = "tributary-fraud"
PERSO_REGISTERED_MODEL = "tributary-perso"
# use case → (file/alias prefix, registered model, input names)
USE_CASES = {"fraud": ("fraud", REGISTERED_MODEL, FRAUD_INPUT_NAMES),
             "perso": ("perso", PERSO_REGISTERED_MODEL, PERSO_INPUT_NAMES)}
log = logging.getLogger(__name__)


class OnnxModel:
    def __init__(self, path: str | Path, version: str, use_case: str = "fraud"):
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
        self.inputs = USE_CASES[use_case][2]
        if self.meta.get("inputs", self.inputs) != self.inputs:
            raise ValueError(f"model {version}: inputs {self.meta['inputs']} differ from this code's {self.inputs}")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(positive) for rows of inputs (fed as the model's input type)."""
        out = self.session.run([self.output], {self.input: np.asarray(x, dtype=self.dtype).reshape(-1, len(self.inputs))})[0]
        return out[:, 1] if out.ndim == 2 else out


def alias_for(version: str, use_case: str = "fraud") -> str:
    """MLflow alias of a Tributary model version (MLflow reserves aliases named v<N>)."""
    return f"{USE_CASES[use_case][0]}-{version}"


def model_path(model_dir: str | Path, version: str, use_case: str = "fraud") -> Path:
    return Path(model_dir) / f"{USE_CASES[use_case][0]}-{version}.onnx"


def load(version: str, model_dir: str | Path, tracking_uri: str | None = None, use_case: str = "fraud") -> OnnxModel:
    p = model_path(model_dir, version, use_case)
    registered = USE_CASES[use_case][1]
    if not p.exists() and tracking_uri:
        import mlflow
        mlflow.set_tracking_uri(tracking_uri)
        try:
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{registered}@{alias_for(version, use_case)}"))
        except Exception as e:  # noqa: BLE001 - MlflowException (no such model/alias) → not found
            raise FileNotFoundError(f"model {alias_for(version, use_case)}: not in {p.parent} nor in the registry ({e})") from e
        cand = sorted(local.rglob("*.onnx"))
        if not cand:
            raise FileNotFoundError(f"no ONNX file in models:/{registered}@{alias_for(version, use_case)}")
        p = cand[0]
    if not p.exists():
        raise FileNotFoundError(f"model {alias_for(version, use_case)}: {p} not found (run `make train`)")
    return OnnxModel(p, version, use_case)
