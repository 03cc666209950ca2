"""Rebuild the example iris model's files byte for byte: `python examples/models/build.py`.

Writes iris/3/outputs/model.json (a nearest-centroid classifier whose centroids are the per-species
means of Fisher's iris measurements) and iris/3/src/code.tar.gz (score.py, packed reproducibly: fixed
times and owners, so the sha256 pinned in examples/catalog/registrations.yaml stays valid), then
prints each file's sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "iris" / "3"

MODEL = {
    "kind": "nearest-centroid",
    "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "classes": ["setosa", "versicolor", "virginica"],
    "centroids": [
        [5.006, 3.428, 1.462, 0.246],
        [5.936, 2.770, 4.260, 1.326],
        [6.588, 2.974, 5.552, 2.026],
    ],
}


def pack(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, body in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def main() -> None:
    outputs = {
        HERE / "outputs" / "model.json": (json.dumps(MODEL, indent=2) + "\n").encode(),
        HERE / "src" / "code.tar.gz": pack({"score.py": (HERE / "src" / "score.py").read_bytes()}),
    }
    for path, body in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        print(hashlib.sha256(body).hexdigest(), path.relative_to(HERE))


if __name__ == "__main__":
    main()
