"""What the extender told kube-scheduler about each pod, kept so the demo can say why a pod went where.

The demo's scheduler reaches the extender through this pass-through on loopback: every call is
forwarded unchanged and the answer returned unchanged; `/filter` and `/prioritize` answers are also
kept per pod (the last ones win, as for the scheduler). Nothing is decided here.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Decision:
    """The extender's word on one pod: nodes it let through, nodes it refused (with the reason),
    and the scores it gave."""

    passed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)


def _pod_key(request: dict[str, Any]) -> str:
    lowered = {str(k).lower(): v for k, v in request.items()}
    meta = (lowered.get("pod") or {}).get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def record(decisions: dict[str, Decision], verb: str, request: dict[str, Any], answer: Any) -> None:
    """Fold one extender exchange into `decisions` (pure apart from the dict it updates)."""
    decision = decisions.setdefault(_pod_key(request), Decision())
    if verb == "filter" and isinstance(answer, dict):
        lowered = {str(k).lower(): v for k, v in answer.items()}
        decision.passed = list(lowered.get("nodenames") or [])
        decision.refused = {
            **(lowered.get("failednodes") or {}),
            **(lowered.get("failedandunresolvablenodes") or {}),
        }
    elif verb == "prioritize" and isinstance(answer, list):
        decision.scores = {str(item.get("Host")): int(item.get("Score", 0)) for item in answer}


class DecisionRecorder:
    """A loopback HTTP pass-through to the extender at `upstream` (http://host:port)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.decisions: dict[str, Decision] = {}
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                forward = urllib.request.Request(
                    recorder.upstream + self.path,
                    data=body,
                    method="POST",
                    headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
                )
                try:
                    with urllib.request.urlopen(forward, timeout=10) as response:
                        status, answer = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, answer = exc.code, exc.read()
                except OSError as exc:
                    status, answer = 502, json.dumps({"Error": f"extender unreachable: {exc}"}).encode()
                verb = self.path.strip("/").split("?")[0]
                if status == 200 and verb in ("filter", "prioritize"):
                    try:
                        with recorder._lock:
                            record(recorder.decisions, verb, json.loads(body), json.loads(answer))
                    except ValueError:
                        pass  # not JSON: nothing to keep; the scheduler gets it as it is
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="decisions", daemon=True)

    def start(self) -> DecisionRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def decision(self, namespace: str, name: str) -> Decision | None:
        with self._lock:
            return self.decisions.get(f"{namespace}/{name}")
