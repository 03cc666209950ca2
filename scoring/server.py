"""`inferplane serve`: settings from flags and Azure's environment variables, and the gunicorn run.

Each worker imports the entry script and calls init() once, right after the fork (Azure's default:
no preload, so whatever init() starts, threads or GPU contexts, lives in the process that uses it).
When import or init() fails, the worker prints the traceback and exits with gunicorn's "worker failed
to boot" code (3); gunicorn then stops the whole server with that code instead of starting
replacement workers, so the container exits non-zero and Kubernetes shows CrashLoopBackOff with the
traceback in `kubectl logs --previous`. Import and init() together get `--init-timeout` (Azure's
WORKER_TIMEOUT, also gunicorn's heartbeat timeout once serving); past it the worker exits the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from inferplane import serving
from inferplane.errors import UserError
from scoring.app import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_SCORING_TIMEOUT_MS, AppSettings, Scorer, wsgi
from scoring.script import DEFAULT_APP_ROOT, ScriptError, call_init, load, resolve, user_traceback

log = logging.getLogger("inferplane.scoring")

DEFAULT_PORT = 5001
WORKER_BOOT_ERROR = 3  # gunicorn's Arbiter.WORKER_BOOT_ERROR: the master halts instead of respawning
DEFAULT_INIT_TIMEOUT_S = 300  # Azure's WORKER_TIMEOUT
# Set by the demo's kubelet stand-in, which runs every pod on one machine: the address that plays
# the pod's own network namespace. Unset in a real pod, where 0.0.0.0 is the pod's address.
BIND_HOST_ENV = "INFERPLANE_BIND_HOST"


@dataclass(frozen=True)
class ScoreSettings:
    entry_script: Path
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    workers: int = 1
    run_concurrency: int = 1
    init_timeout_s: int = DEFAULT_INIT_TIMEOUT_S
    scoring_timeout_ms: int = DEFAULT_SCORING_TIMEOUT_MS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    log_level: str = "info"


def _number(flag: str, given: int | None, env: Mapping[str, str], name: str, default: int, low: int) -> int:
    """The flag if given, else the environment variable, else the default; at least `low`."""
    value = given
    source = flag
    if value is None and env.get(name, "").strip():
        source = f"{name}={env[name]!r}"
        try:
            value = int(env[name].strip())
        except ValueError:
            raise UserError(f"{source}: not a whole number") from None
    if value is None:
        return default
    if value < low:
        raise UserError(f"{source}: must be at least {low}")
    return value


def settings_from(
    env: Mapping[str, str],
    *,
    entry_script: str | None = None,
    app_root: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    run_concurrency: int | None = None,
    init_timeout_s: int | None = None,
    scoring_timeout_ms: int | None = None,
    max_request_bytes: int | None = None,
    log_level: str = "info",
) -> ScoreSettings:
    """Flags win over Azure's variables (AZUREML_ENTRY_SCRIPT, AML_APP_ROOT, WORKER_COUNT,
    WORKER_TIMEOUT, SCORING_TIMEOUT_MS), which win over the defaults. Checks the script exists."""
    root = Path(app_root or env.get("AML_APP_ROOT") or DEFAULT_APP_ROOT)
    script = resolve(root, entry_script or env.get("AZUREML_ENTRY_SCRIPT"))
    port = DEFAULT_PORT if port is None else port
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: not a port number")
    return ScoreSettings(
        entry_script=script,
        host=host or env.get(BIND_HOST_ENV) or "0.0.0.0",
        port=port,
        workers=_number("--workers", workers, env, "WORKER_COUNT", 1, 1),
        run_concurrency=_number("--run-concurrency", run_concurrency, env, "", 1, 1),
        init_timeout_s=_number(
            "--init-timeout", init_timeout_s, env, "WORKER_TIMEOUT", DEFAULT_INIT_TIMEOUT_S, 1
        ),
        scoring_timeout_ms=_number(
            "--scoring-timeout-ms",
            scoring_timeout_ms,
            env,
            "SCORING_TIMEOUT_MS",
            DEFAULT_SCORING_TIMEOUT_MS,
            1,
        ),
        max_request_bytes=_number(
            "--max-request-bytes", max_request_bytes, env, "", DEFAULT_MAX_REQUEST_BYTES, 1
        ),
        log_level=log_level,
    )


def _fail_boot(exc: ScriptError, script: Path) -> None:
    """Print the user's traceback as Python would, one JSON line saying what failed, and leave with
    the code that makes gunicorn's master stop rather than loop on a script that cannot start."""
    sys.stderr.write(user_traceback(exc.__cause__ or exc, script))
    log.critical(str(exc), extra={"entry_script": str(script), "exit_code": WORKER_BOOT_ERROR})
    sys.stderr.flush()
    sys.exit(WORKER_BOOT_ERROR)


def _limit_init(timeout_s: int, script: Path) -> None:
    """End the worker with the boot-error code when import + init() outlast `timeout_s`.

    gunicorn's own worker timeout does not cover this: it only counts from a worker's first
    heartbeat, which comes after boot, so a hung init() would otherwise hang start-up forever.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        frames = traceback.extract_stack(frame) if frame is not None else traceback.StackSummary()
        first = next((i for i, f in enumerate(frames) if f.filename == str(script)), 0)
        stack = "".join(traceback.format_list(frames[first:]))
        message = (
            f"init() still running after {timeout_s}s (--init-timeout / WORKER_TIMEOUT); it was at:\n{stack}"
        )
        os.write(2, message.encode())
        os._exit(WORKER_BOOT_ERROR)

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(timeout_s)


def start_worker(settings: ScoreSettings, scorer: Scorer) -> None:
    """In each worker after the fork: import the script, call init(), attach it to the scorer.

    A SIGTERM meanwhile ends the worker at once (`inferplane.serving` resets the master's handlers
    before this runs), so a slow init() does not hold up a stop."""
    _limit_init(settings.init_timeout_s, settings.entry_script)
    try:
        script = load(settings.entry_script)
        log.info("calling init()", extra={"entry_script": str(script.path), "pid": os.getpid()})
        call_init(script)
    except ScriptError as exc:
        _fail_boot(exc, settings.entry_script)
        raise  # not reached: _fail_boot exits
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    scorer.attach(script)
    log.info("init() done; serving", extra={"entry_script": str(script.path), "pid": os.getpid()})


def serve(settings: ScoreSettings) -> None:
    app_settings = AppSettings(
        scoring_timeout_ms=settings.scoring_timeout_ms,
        max_request_bytes=settings.max_request_bytes,
        run_concurrency=settings.run_concurrency,
    )

    def build() -> serving.Service:
        scorer = Scorer(app_settings)
        return serving.Service(wsgi(scorer), start=lambda: start_worker(settings, scorer), stop=scorer.close)

    serving.serve(
        build,
        serving.ServerSettings(
            name="scoring",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            timeout=settings.init_timeout_s,
            log_level=settings.log_level,
        ),
    )
