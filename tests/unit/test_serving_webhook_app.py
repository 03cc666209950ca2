"""webhook.server.WebhookApp in process: every refusal is a clear 4xx/5xx that changes nothing, and
answers carry the review uid to the access log. (The same app over HTTPS under gunicorn:
tests/integration/test_webhook_server.py.)"""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from werkzeug.test import Client, EnvironBuilder

from inferplane.errors import BadRequest
from inferplane.logs import ACCESS_FIELDS_KEY
from webhook.catalog import Catalog
from webhook.config import InjectionConfig
from webhook.handlers import Answer
from webhook.server import MAX_BODY, WebhookApp, sync_wait

REVIEW = orjson.dumps({"request": {"uid": "u-1"}})


def echo(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    uid = orjson.loads(body)["request"]["uid"]
    return Answer(orjson.dumps({"response": {"uid": uid, "allowed": True}}), uid, "allowed")


def refuse(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    raise BadRequest("request.object is not a Pod")


def crash(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    raise KeyError("secret-looking detail")


def make_app(ready: bool = True, **handlers) -> WebhookApp:
    event = threading.Event()
    if ready:
        event.set()
    return WebhookApp(Catalog(), InjectionConfig(), event, handlers=handlers or {"mutate-pod": echo})


def post(app: WebhookApp, path: str = "/mutate-pod", body: bytes = REVIEW, **kwargs):
    kwargs.setdefault("content_type", "application/json")
    return Client(app).post(path, data=body, **kwargs)


def test_a_review_is_answered_and_its_uid_reaches_the_access_log():
    app = make_app()
    environ = EnvironBuilder(path="/mutate-pod", method="POST", data=REVIEW,
                             content_type="application/json; charset=utf-8").get_environ()  # fmt: skip
    captured = {}
    body = b"".join(app(environ, lambda status, headers: captured.update(status=status, headers=headers)))
    assert captured["status"] == "200 OK"
    assert ("Content-Type", "application/json") in captured["headers"]
    assert orjson.loads(body) == {"response": {"uid": "u-1", "allowed": True}}
    assert environ[ACCESS_FIELDS_KEY] == {"uid": "u-1", "outcome": "allowed"}


def test_the_query_string_does_not_change_the_route():
    assert post(make_app(), "/mutate-pod?timeout=5s").status_code == 200


@pytest.mark.parametrize(
    ("request_kwargs", "code", "fragment"),
    [
        ({"content_type": "text/plain"}, 415, "Content-Type must be application/json, not 'text/plain'"),
        ({"content_type": ""}, 415, "not 'missing'"),
        ({"path": "/mutate-pods"}, 404, "no such endpoint /mutate-pods; POST reviews to /mutate-pod"),
    ],
)
def test_transport_problems_are_refused_with_the_reason(request_kwargs, code, fragment):
    response = post(make_app(), **request_kwargs)
    assert response.status_code == code
    assert fragment in response.get_json()["message"]


def call(app: WebhookApp, environ: dict) -> tuple[str, bytes]:
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0], body


class Unreadable:
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("a body declared too large must not be read")


def test_a_body_declared_too_large_is_refused_unread():
    environ = EnvironBuilder(path="/mutate-pod", method="POST", content_type="application/json").get_environ()
    environ["CONTENT_LENGTH"] = str(MAX_BODY + 1)
    environ["wsgi.input"] = Unreadable()
    status, body = call(make_app(), environ)
    assert status == "413 Request Entity Too Large"
    assert "over 7340032 bytes" in orjson.loads(body)["message"]


def test_a_chunked_body_over_the_limit_is_refused():
    environ = EnvironBuilder(path="/mutate-pod", method="POST", data=b"x" * (MAX_BODY + 10),
                             content_type="application/json").get_environ()  # fmt: skip
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    assert call(make_app(), environ)[0] == "413 Request Entity Too Large"


def test_a_body_shorter_than_declared_is_a_400():
    environ = EnvironBuilder(
        path="/mutate-pod", method="POST", data=REVIEW, content_type="application/json"
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(len(REVIEW) + 5)
    status, body = call(make_app(), environ)
    assert status == "400 Bad Request"
    assert orjson.loads(body)["message"] == f"body ended after {len(REVIEW)} of {len(REVIEW) + 5} bytes"


def test_wrong_methods_say_which_one_to_use():
    client = Client(make_app())
    review = client.get("/mutate-pod")
    assert review.status_code == 405 and review.headers["Allow"] == "POST"
    page = client.post("/healthz")
    assert page.status_code == 405 and page.headers["Allow"] == "GET, HEAD"


def test_bad_request_from_the_handler_is_a_400_with_its_sentence():
    response = post(make_app(**{"mutate-pod": refuse}))
    assert response.status_code == 400
    assert response.get_json() == {"code": 400, "message": "request.object is not a Pod"}


def test_a_handler_bug_is_a_500_that_does_not_leak_the_detail(caplog):
    response = post(make_app(**{"mutate-pod": crash}))
    assert response.status_code == 500
    assert "secret-looking" not in response.get_data(as_text=True)
    assert "KeyError" in caplog.records[-1].exc_text


def test_an_unsynced_catalog_answers_503_within_the_apiservers_timeout():
    app = make_app(ready=False)
    began = time.monotonic()
    response = post(app, "/mutate-pod?timeout=1s")
    assert time.monotonic() - began < 0.5
    assert response.status_code == 503
    assert Client(app).get("/readyz").status_code == 503
    app.ready.set()
    assert post(app).status_code == 200
    assert Client(app).get("/readyz").get_json() == {"ready": True, "caches": {}}


def test_a_review_waits_for_a_sync_that_lands_meanwhile():
    app = make_app(ready=False)
    threading.Timer(0.2, app.ready.set).start()
    assert post(app, "/mutate-pod?timeout=10s").status_code == 200


@pytest.mark.parametrize(
    ("param", "expected"), [(None, 5.0), ("10s", 5.0), ("3s", 2.0), ("1s", 0.0), ("junk", 5.0)]
)
def test_sync_wait_leaves_a_second_of_the_apiservers_timeout(param, expected):
    assert sync_wait(param) == expected


def test_metrics_count_by_webhook_code_and_outcome():
    app = make_app(**{"mutate-pod": echo, "validate-workload": refuse})
    post(app)
    post(app, "/validate-workload")
    post(app, content_type="text/plain")
    text = Client(app).get("/metrics").get_data(as_text=True)
    assert 'inferplane_webhook_requests_total{code="200",outcome="allowed",webhook="mutate-pod"} 1.0' in text
    assert (
        'inferplane_webhook_requests_total{code="400",outcome="bad_request",webhook="validate-workload"} 1.0'
        in text
    )
    assert 'code="415",outcome="unsupported_media_type",webhook="mutate-pod"} 1.0' in text
    assert 'inferplane_webhook_latency_seconds_count{webhook="mutate-pod"} 2.0' in text
    assert "process_cpu_seconds_total" in text
