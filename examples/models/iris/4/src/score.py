"""Scoring script for iris:4, a scikit-learn classifier, in Azure's entry-script contract:
init() once per worker, run(raw_data) per request. Needs scikit-learn and joblib in the image
(`pip install 'inferplane[examples]'`) and runs under `inferplane serve`, whose AMLResponse it uses
to answer a bad request with a 400.

Request:  {"data": [[sepal_length, sepal_width, petal_length, petal_width], ...]}  (cm)
Answer:   {"predictions": ["setosa", ...], "probabilities": [[0.98, 0.02, 0.0], ...], "model": "iris:4"}
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import joblib
import numpy

from scoring import AMLResponse

log = logging.getLogger("iris")

FEATURES = 4
model: Any = None

# Published at GET /swagger.json.
input_sample = {"data": [[5.1, 3.5, 1.4, 0.2]]}
output_sample = {"predictions": ["setosa"], "probabilities": [[0.98, 0.02, 0.0]], "model": "iris:4"}


def init() -> None:
    """Load the pipeline model-init laid out: $AZUREML_MODEL_DIR/model.pkl (one model), or
    <dir>/iris/4/model.pkl when the pod has several models and AZUREML_MODEL_DIR is their parent."""
    global model
    model_dir = Path(os.environ["AZUREML_MODEL_DIR"])
    path = model_dir / "model.pkl"
    if not path.is_file():
        path = model_dir / "iris" / "4" / "model.pkl"
    model = joblib.load(path)
    log.info("loaded %s (classes %s)", path, list(model.classes_))


def _rows(raw_data: str) -> numpy.ndarray | str:
    """The feature matrix, or a sentence saying what is wrong with the request."""
    try:
        body = json.loads(raw_data)
    except ValueError as exc:
        return f"not JSON: {exc}"
    rows = body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows:
        return 'send {"data": [[sepal_length, sepal_width, petal_length, petal_width], ...]}'
    for index, row in enumerate(rows):
        if (
            not isinstance(row, list)
            or len(row) != FEATURES
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            return f"data[{index}]: expected {FEATURES} numbers (cm), got {json.dumps(row)[:80]}"
    return numpy.asarray(rows, dtype=float)


def run(raw_data: str) -> dict[str, Any] | AMLResponse:
    rows = _rows(raw_data)
    if isinstance(rows, str):
        return AMLResponse({"error": rows}, 400)
    probabilities = model.predict_proba(rows)
    labels = model.classes_[probabilities.argmax(axis=1)]
    return {
        "predictions": labels.tolist(),
        "probabilities": probabilities.round(4).tolist(),
        "model": "iris:4",
    }
