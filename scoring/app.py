"""The scoring server's requests: `Scorer.handle` answers a parsed request; `wsgi` is the thin shell.

Routes are Azure's (port 5001): `GET /` liveness ("Healthy"), `POST /score`, `GET /swagger.json`,
plus `/metrics`. What a caller can count on:
- a body that is not JSON is a 400 saying where it breaks, before run() sees it;
- run() raising is a 500 with a one-line reason and header `x-ms-run-function-failed: True`, and the
  traceback goes to the log under the request id;
- run() still busy after the scoring timeout is a 500 "Scoring timeout after N ms" (Azure's words);
- every answer echoes `x-request-id` (made up when absent) and Azure's `x-ms-request-id`,
  `x-ms-client-request-id`; a success carries `x-ms-run-fn-exec-ms`.

run() is called on a small per-worker pool (`run_concurrency`, default 1, Azure's one thread), not on
the connection threads, so liveness probes and the timeout answer are never stuck behind a slow
run(), and a script that is not thread-safe never runs twice at once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from inferplane import logs
from inferplane.metrics import Registry
from scoring.response import TEXT_TYPE, Reply, ResultError, encode_result, error_reply, json_reply
from scoring.schema import BadInput, bind_inputs, swagger
from scoring.script import EntryScript, describe_exception, user_traceback

log = logging.getLogger("inferplane.scoring")

MAX_REQUEST_ID = 100  # Azure answers 431 above this
RUN_FAILED = ("x-ms-run-function-failed", "True")
# Azure's limit for a request to a Kubernetes online endpoint (research/azureml.md 2.11).
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024
DEFAULT_SCORING_TIMEOUT_MS = 3_600_000  # Azure's SCORING_TIMEOUT_MS default


@dataclass(frozen=True)
class AppSettings:
    scoring_timeout_ms: int = DEFAULT_SCORING_TIMEOUT_MS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    run_concurrency: int = 1


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] | None = None  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return (self.headers or {}).get(name)


class Scorer:
    """Answers requests for one loaded entry script. Created in the gunicorn master (metrics must be),
    given its script by `attach` in each worker after init() succeeded."""

    def __init__(self, settings: AppSettings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry()
        self._script: EntryScript | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._requests = self.registry.counter(
            "inferplane_scoring_requests_total", "Scoring requests answered, by HTTP code.", ["code"]
        )
        self._run_seconds = self.registry.histogram(
            "inferplane_scoring_run_seconds", "Time run() took, for the calls that finished."
        )
        self._in_flight = self.registry.gauge(
            "inferplane_scoring_in_flight", "Scoring requests waiting for or inside run()."
        )

    def attach(self, script: EntryScript) -> None:
        self._script = script
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.settings.run_concurrency, thread_name_prefix="run"
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- routing -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[Reply, dict[str, Any]]:
        """The reply and the fields for the access log line."""
        ids, problem = _request_ids(request)
        if problem is not None:
            return problem.with_headers(ids), {}
        fields: dict[str, Any] = {"request_id": ids[0][1]}
        reply = self._route(request, fields)
        if request.path == "/score":
            self._requests.labels(str(reply.status)).inc()
        return reply.with_headers(ids), fields

    def _route(self, request: Request, fields: dict[str, Any]) -> Reply:
        method, path = request.method, request.path
        if path == "/":
            if method in ("GET", "HEAD"):
                return Reply(200, (("Content-Type", TEXT_TYPE),), b"Healthy")
            return _not_allowed("GET, HEAD")
        if path == "/score":
            if method == "POST":
                return self._score(request, fields)
            if method == "OPTIONS":
                return Reply(200, (("Allow", "POST, OPTIONS"),), b"")
            return _not_allowed("POST, OPTIONS")
        if path == "/swagger.json":
            return self._swagger(request) if method in ("GET", "HEAD") else _not_allowed("GET, HEAD")
        if path == "/metrics" and method == "GET":
            body, content_type = self.registry.exposition(request.header("accept") or "")
            return Reply(200, (("Content-Type", content_type),), body)
        return error_reply(404, f"no route {path}; this server answers POST /score, GET /, GET /swagger.json")

    def _swagger(self, request: Request) -> Reply:
        script = self._require_script()
        if not script.schema.declared:
            return error_reply(
                404,
                f"{script.path.name} declares no input or output: decorate run() with "
                "scoring.schema.input_schema/output_schema, or set input_sample/output_sample in the script",
            )
        version = (parse_qs(request.query).get("version") or ["2"])[-1]
        if version not in ("2", "3"):
            return error_reply(400, f"swagger version {version!r}: ask for 2 (the default) or 3")
        try:
            doc = swagger(script.schema, script.path.name, int(version))
        except ValueError as exc:
            return error_reply(500, f"{script.path.name}: {exc}")
        return json_reply(200, doc)

    # -- scoring -----------------------------------------------------------------------------------

    def _score(self, request: Request, fields: dict[str, Any]) -> Reply:
        script = self._require_script()
        body = request.body
        if not body.strip():
            return error_reply(400, "empty body; send the JSON the entry script expects")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            fields["outcome"] = "bad-json"
            return error_reply(400, f"the body is not valid JSON: {exc}")
        if script.takes_inputs:
            try:
                kwargs = bind_inputs(script.schema, parsed)
            except BadInput as exc:
                fields["outcome"] = "bad-input"
                return error_reply(400, str(exc))
            call: Callable[[], Any] = lambda: script.run(**kwargs)  # noqa: E731
        else:
            text = body.decode("utf-8")  # valid JSON is valid UTF-8
            call = lambda: script.run(text)  # noqa: E731
        return self._run(call, fields)

    def _run(self, call: Callable[[], Any], fields: dict[str, Any]) -> Reply:
        assert self._pool is not None
        timeout_ms = self.settings.scoring_timeout_ms
        self._in_flight.inc()
        started = time.monotonic()
        try:
            future = self._pool.submit(_timed, call)
            try:
                result, seconds = future.result(timeout=timeout_ms / 1000)
            except concurrent.futures.TimeoutError:
                future.cancel()  # only helps if it had not started; a running run() cannot be stopped
                fields["outcome"] = "timeout"
                log.error("run() did not return in time", extra={"timeout_ms": timeout_ms, **fields})
                return error_reply(500, f"Scoring timeout after {timeout_ms} ms", (RUN_FAILED,))
            except Exception as exc:
                fields["outcome"] = "run-failed"
                trace = user_traceback(exc, self._require_script().path)
                log.error("run() raised", extra={"exception": trace, **fields})
                return error_reply(
                    500, f"run() failed: {describe_exception(exc)}; the traceback is in the server log "
                    f"under request id {fields['request_id']}", (RUN_FAILED,),
                )  # fmt: skip
        finally:
            self._in_flight.dec()
        self._run_seconds.observe(seconds)
        try:
            reply = encode_result(result)
        except ResultError as exc:
            fields["outcome"] = "bad-result"
            log.error("run() returned something we cannot send", extra={"error": str(exc), **fields})
            return error_reply(500, str(exc), (RUN_FAILED,))
        fields["outcome"] = "scored"
        waited_ms = (time.monotonic() - started) * 1000
        return reply.with_headers([("x-ms-run-fn-exec-ms", f"{seconds * 1000:.3f}"),
                                   ("x-inferplane-total-ms", f"{waited_ms:.3f}")])  # fmt: skip

    def _require_script(self) -> EntryScript:
        if self._script is None:  # only if a request could arrive before the worker's init: a bug
            raise RuntimeError("scoring worker has no entry script attached")
        return self._script


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _not_allowed(allow: str) -> Reply:
    return error_reply(405, f"method not allowed; use {allow}", (("Allow", allow),))


def _request_ids(request: Request) -> tuple[list[tuple[str, str]], Reply | None]:
    """The id headers to echo, or a 431 when a caller's id is longer than Azure allows."""
    given = {name: request.header(name) for name in ("x-request-id", "x-ms-client-request-id")}
    for name, value in given.items():
        if value is not None and len(value) > MAX_REQUEST_ID:
            return [], error_reply(431, f"{name} is {len(value)} characters; at most {MAX_REQUEST_ID}")
    request_id = given["x-request-id"] or str(uuid.uuid4())
    ids = [("x-request-id", request_id), ("x-ms-request-id", request_id)]
    if given["x-ms-client-request-id"] is not None:
        ids.append(("x-ms-client-request-id", given["x-ms-client-request-id"]))
    return ids, None


# -- the WSGI shell ---------------------------------------------------------------------------------


class TooLarge(Exception):
    pass


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        size = int(length)
        if size > limit:
            raise TooLarge
        return stream.read(size)
    data = stream.read(limit + 1)  # chunked: gunicorn's input stops at the end of the body
    if len(data) > limit:
        raise TooLarge
    return data


def wsgi(scorer: Scorer) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """The WSGI callable gunicorn runs: environ in, `Scorer.handle` out."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}  # fmt: skip
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        method = environ["REQUEST_METHOD"]
        fields: dict[str, Any] = {}
        try:
            body = _read_body(environ, scorer.settings.max_request_bytes) if method == "POST" else b""
        except TooLarge:
            limit = scorer.settings.max_request_bytes
            reply = error_reply(413, f"the body is over {limit} bytes (--max-request-bytes)")
        except ValueError:
            reply = error_reply(400, "Content-Length is not a number")
        else:
            request = Request(method, environ.get("PATH_INFO") or "/", environ.get("QUERY_STRING", ""),
                              headers, body)  # fmt: skip
            reply, fields = scorer.handle(request)
        environ[logs.ACCESS_FIELDS_KEY] = fields
        start_response(f"{reply.status} {_reason(reply.status)}", list(reply.headers))
        return [] if method == "HEAD" else [reply.body]

    return app


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
