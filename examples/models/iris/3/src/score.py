"""Scoring script for the example iris model, in Azure's entry-script contract: init() once, run() per
request. It needs only the standard library, so any Python image can serve it.

The model is a nearest-centroid classifier over the four iris measurements (cm): sepal length,
sepal width, petal length, petal width.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

_model: dict[str, Any] = {}


def init() -> None:
    """Load model.json from the model directory model-init laid out."""
    model_dir = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    path = model_dir / "model.json"
    if not path.is_file():  # several models: AZUREML_MODEL_DIR is their parent
        path = model_dir / "iris" / "3" / "model.json"
    _model.clear()
    _model.update(json.loads(path.read_text()))


def _predict(row: list[float]) -> str:
    distances = [math.dist(row, centroid) for centroid in _model["centroids"]]
    return _model["classes"][distances.index(min(distances))]


def run(raw_data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """{"data": [[5.1, 3.5, 1.4, 0.2], ...]} -> {"predictions": ["setosa", ...]}."""
    data = json.loads(raw_data) if isinstance(raw_data, str | bytes) else raw_data
    rows = data.get("data") if isinstance(data, dict) else None
    width = len(_model["features"])
    if not isinstance(rows, list) or not all(
        isinstance(row, list) and len(row) == width and all(isinstance(v, int | float) for v in row)
        for row in rows
    ):
        names = ", ".join(_model["features"])
        return {"error": f'send {{"data": [[{names}], ...]}} with {width} numbers a row'}
    return {"predictions": [_predict([float(v) for v in row]) for row in rows]}
