"""Child processes that never outlive their parent, and waiting without sleeping blind.

Every control-plane component, and every server `inferplane demo` runs beside
it, is a long-running process. A leaked etcd or apiserver from a crashed run
would hold memory and confuse the next one, so each child is started in its
own session (Ctrl-C in the terminal reaches only the parent, pytest or the
demo, which then stops the children in order) and is additionally asked by
the kernel to die with its parent (a SIGKILLed parent cannot leak).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
# Loaded in the parent: the pre-exec hook must do as little as possible.
_LIBC = ctypes.CDLL(None, use_errno=True)


def inferplane_argv() -> list[str]:
    """How to run this very inferplane in a child process: the console script beside this
    interpreter (a virtualenv's bin/ need not be on PATH), else the module."""
    script = Path(sys.executable).parent / "inferplane"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "inferplane.cli"]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the parent dies."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessDied(RuntimeError):
    """A component exited while it was expected to be serving."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A server process whose output goes to a log file we can show on failure.

    ``env`` replaces the environment when given (the demo's pods see only what
    their container declares); ``cwd`` is where it starts.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(self.argv) + "\n").encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or before it is started)."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code; subprocess.TimeoutExpired after ``timeout`` seconds."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.wait(timeout)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check_running(self) -> None:
        """Raise with the log tail if the process has exited on its own."""
        if self._proc is not None and not self._stopping and self._proc.poll() is not None:
            raise ProcessDied(
                f"{self.name} exited with code {self._proc.returncode}; last log lines "
                f"({self.log_path}):\n{self.tail()}"
            )

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code. Safe to call twice."""
        proc = self._proc
        self._stopping = True
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace)
        return proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    message: str,
    *,
    interval: float = 0.25,
    watch: Iterable[ManagedProcess] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Exceptions from the predicate count as "not yet" (the object may not
    exist yet), but the last one is reported on timeout so a real error is
    not hidden. If a watched process exits meanwhile, fail at once with its
    log instead of waiting out the timeout.
    """
    watched = list(watch)
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        for proc in watched:
            proc.check_running()
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}{detail}")
        time.sleep(interval)
