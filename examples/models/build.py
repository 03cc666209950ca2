"""Build the example models' files: `python examples/models/build.py [--out DIR]`.

iris:3  outputs/model.json, a nearest-centroid classifier (per-species means of Fisher's iris
        measurements), and src/code.tar.gz holding its stdlib-only score.py. Committed; rebuilt
        byte for byte, so the sha256s pinned in examples/catalog/registrations.yaml stay valid.
iris:4  outputs/model.pkl, a scikit-learn pipeline (standard scaler + logistic regression) trained
        on the iris data set scikit-learn ships (no download), and src/code.tar.gz with its
        score.py. The archive is committed; model.pkl is NOT: a pickle only loads reliably under
        the scikit-learn version that wrote it, so it is trained here, in the environment that will
        serve it (training takes well under a second and is deterministic: fixed solver, no
        randomness used, random_state pinned anyway).

Without --out the files are written in place (examples/models/iris/...). With --out DIR a complete
copy of the storage tree is written there (DIR/iris/3/..., DIR/iris/4/...): what a node directory
or a PersistentVolume behind the registrations must hold, e.g.
    sudo python examples/models/build.py --out /var/lib/inferplane/models
Prints each file's sha256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

IRIS_3 = {
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
    """A tar.gz that is the same bytes every time: fixed times, modes and owners, sorted names."""
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


def train_iris_4() -> tuple[bytes, float]:
    """The pickled pipeline and its accuracy on the training data (a sanity check, not a score)."""
    import joblib
    import numpy
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    labels = numpy.asarray(iris.target_names)[iris.target]  # predict() then answers species names
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(iris.data, labels)
    accuracy = float((model.predict(iris.data) == labels).mean())
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue(), accuracy


def outputs(source: Path) -> dict[Path, bytes]:
    """Every built file, relative to the storage root (iris/<version>/...)."""
    files = {
        Path("iris/3/outputs/model.json"): (json.dumps(IRIS_3, indent=2) + "\n").encode(),
        Path("iris/3/src/code.tar.gz"): pack({"score.py": (source / "iris/3/src/score.py").read_bytes()}),
        Path("iris/4/src/code.tar.gz"): pack({"score.py": (source / "iris/4/src/score.py").read_bytes()}),
    }
    model, accuracy = train_iris_4()
    print(f"iris:4 trained: accuracy on the training data {accuracy:.3f}")
    files[Path("iris/4/outputs/model.pkl")] = model
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write a complete storage tree here instead of in place")
    args = parser.parse_args(argv)
    root = args.out or HERE
    for relative, body in outputs(HERE).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        print(hashlib.sha256(body).hexdigest(), relative)
    if args.out:  # the sources too, so the tree is what the registrations describe
        for version in ("3", "4"):
            shutil.copy2(
                HERE / "iris" / version / "src" / "score.py", root / "iris" / version / "src" / "score.py"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
