"""model-init: read every mounted registration, check them all, then lay each model out.

All registrations are parsed before anything is written, so a bad one changes nothing. The directory
contract is in models.layout; this module pairs each registration with its storage mount.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from models.layout import PROGRESS_EVERY, LayoutError, Log, Outcome, lay_out
from models.mounted import find_registrations
from models.registration import InvalidRegistration, Registration, parse_registration_data
from models.values import STATE_DIR


def json_log(stream: TextIO) -> Log:
    """One JSON object a line, flushed at once so `kubectl logs` shows progress as it happens."""

    def write(record: Mapping[str, Any]) -> None:
        stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        stream.flush()

    return write


def load(config: Path, source: Path, *, model: str | None = None) -> list[tuple[Registration, Path]]:
    """Each registration under `config` with the directory its storage is mounted at."""
    mounted = find_registrations(config, model=model)
    single = len(mounted) == 1 and mounted[0].directory == config
    pairs = []
    for item in mounted:
        try:
            reg = parse_registration_data(item.data, name=item.name, version=item.version)
        except InvalidRegistration as exc:
            raise InvalidRegistration(f"{item.directory}: {exc}") from None
        storage = source if single else source / item.name / item.version
        if not storage.is_dir():
            raise LayoutError(
                f"model {reg.model}: its storage is not mounted at {storage} (no such directory)"
            )
        pairs.append((reg, storage))
    _check_code_clashes([reg for reg, _ in pairs])
    return pairs


def _check_code_clashes(regs: list[Registration]) -> None:
    owners: dict[str, str] = {}
    for reg in regs:
        for spec in reg.code:
            if spec.unpack != "none":
                continue
            other = owners.setdefault(spec.container_path, reg.model)
            if other != reg.model:
                raise LayoutError(
                    f"models {other} and {reg.model} both deliver code to {spec.container_path}; "
                    "a pod's models must agree on their code, so keep it in one registration"
                )


def run(
    config: Path,
    source: Path,
    app_root: Path,
    *,
    log: Log,
    model: str | None = None,
    progress_every: int = PROGRESS_EVERY,
) -> list[Outcome]:
    pairs = load(config, source, model=model)
    try:
        app_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LayoutError(f"cannot create the app root {app_root}: {exc}") from None
    outcomes = [
        lay_out(reg, storage, app_root, log=log, progress_every=progress_every) for reg, storage in pairs
    ]
    shutil.rmtree(app_root / STATE_DIR / "staging", ignore_errors=True)
    return outcomes
