"""Find, import and initialise the user's entry script (`score.py`: `init()` once, `run()` per request).

The failures carry Azure's names (UserScriptImportError, UserScriptFunctionNotFound,
UserScriptInitFailed) so a person who knows Azure's troubleshooting page recognises them, and each
says which file and what to do.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from inferplane.errors import UserError
from scoring.schema import Schema, schema_of

DEFAULT_APP_ROOT = "/var/azureml-app"
MODULE_NAME = "score"


class ScriptError(UserError):
    """The entry script cannot be served; the message starts with Azure's error name."""


@dataclass(frozen=True)
class EntryScript:
    path: Path
    module: ModuleType
    init: Callable[[], Any]
    run: Callable[..., Any]
    schema: Schema

    @property
    def takes_inputs(self) -> bool:
        """run() is called with keyword arguments from the body (input_schema), not the raw body."""
        return bool(self.schema.inputs)


def resolve(app_root: Path, entry_script: str | None) -> Path:
    """The entry script's path: absolute as given, else relative to the app root."""
    if not entry_script:
        raise ScriptError(
            "no entry script: set AZUREML_ENTRY_SCRIPT (the webhook does when the model's registration "
            "names one) or pass --entry-script FILE"
        )
    path = Path(entry_script)
    if not path.is_absolute():
        path = app_root / path
    if not path.is_file():
        where = (
            ""
            if Path(entry_script).is_absolute()
            else f" (app root {app_root}, from AML_APP_ROOT or --app-root)"
        )
        raise ScriptError(f"UserScriptImportError: entry script {path}: no such file{where}")
    if path.suffix != ".py":
        raise ScriptError(f"UserScriptImportError: entry script {path}: not a .py file")
    return path


def load(path: Path) -> EntryScript:
    """Import the script and check it has `init()` and `run(...)`; init() is not called here.

    Its folder goes first on sys.path, so it can import modules shipped beside it, as in Azure.
    No bytecode is written: under Pod Security `restricted` the app root is read-only.
    """
    sys.dont_write_bytecode = True
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"UserScriptImportError: {path}: Python cannot load it as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # classes defined in the script stay picklable
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(MODULE_NAME, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ScriptError(
            f"UserScriptImportError: importing {path} raised {describe_exception(exc)}"
        ) from exc
    functions = {}
    for name in ("init", "run"):
        func = getattr(module, name, None)
        if not callable(func):
            raise ScriptError(
                f"UserScriptFunctionNotFound: {path} defines no {name}() function; an entry script needs "
                "init() (called once at start) and run(raw_data) (called per request)"
            )
        functions[name] = func
    try:
        inspect.signature(functions["init"]).bind()
    except TypeError:
        raise ScriptError(
            f"UserScriptFunctionNotFound: {path}: init() must be callable with no arguments"
        ) from None
    except ValueError:  # no signature to read (a builtin): let the call itself decide
        pass
    try:
        schema = schema_of(module, functions["run"])
    except ValueError as exc:
        raise ScriptError(f"{path}: {exc}") from None
    return EntryScript(path, module, functions["init"], functions["run"], schema)


def call_init(script: EntryScript) -> None:
    """Run init(); any exception becomes UserScriptInitFailed, chained to the original."""
    try:
        script.init()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ScriptError(
            f"UserScriptInitFailed: init() in {script.path} raised {describe_exception(exc)}"
        ) from exc


def describe_exception(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters of it: enough to act on, short
    enough for a response body or a one-line log."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def user_traceback(exc: BaseException, script: Path) -> str:
    """The traceback from the entry script's first frame on: our own frames (the loader, the run
    pool) say nothing to the script's author. All frames when none is in the script."""
    tb = exc.__traceback__
    target = str(script)
    while tb is not None and tb.tb_frame.f_code.co_filename != target:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
