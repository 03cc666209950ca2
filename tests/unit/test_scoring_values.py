"""Pure pieces of the scoring server: settings from flags and Azure's variables, result encoding,
JSON Schema from samples."""

from __future__ import annotations

from pathlib import Path

import numpy
import orjson
import pytest

from inferplane.errors import UserError
from scoring.response import AMLResponse, ResultError, encode_result
from scoring.schema import json_schema
from scoring.server import settings_from


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(r): return r\n")
    return tmp_path


def test_azure_variables_set_the_defaults(app_root: Path) -> None:
    env = {
        "AML_APP_ROOT": str(app_root),
        "AZUREML_ENTRY_SCRIPT": "score.py",
        "WORKER_COUNT": "3",
        "WORKER_TIMEOUT": "60",
        "SCORING_TIMEOUT_MS": "2500",
    }
    settings = settings_from(env)
    assert settings.entry_script == app_root / "score.py"
    assert (settings.workers, settings.init_timeout_s, settings.scoring_timeout_ms) == (3, 60, 2500)
    assert (settings.host, settings.port) == ("0.0.0.0", 5001)


def test_flags_win_over_the_environment(app_root: Path) -> None:
    env = {"AZUREML_ENTRY_SCRIPT": "missing.py", "WORKER_COUNT": "3", "INFERPLANE_BIND_HOST": "127.0.0.9"}
    settings = settings_from(env, entry_script="score.py", app_root=str(app_root), workers=2, port=6000)
    assert (settings.workers, settings.port, settings.host) == (2, 6000, "127.0.0.9")


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"WORKER_COUNT": "many"}, {}, "WORKER_COUNT='many': not a whole number"),
        ({}, {"workers": 0}, "--workers: must be at least 1"),
        ({}, {"port": 70000}, "--port 70000: not a port number"),
        ({"SCORING_TIMEOUT_MS": "0"}, {}, "SCORING_TIMEOUT_MS='0': must be at least 1"),
    ],
)
def test_bad_settings_are_refused_by_name(app_root: Path, env: dict, flags: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from(env, entry_script="score.py", app_root=str(app_root), **flags)


def test_plain_results_and_numpy_values_are_json() -> None:
    reply = encode_result({"labels": numpy.array(["a", "b"]), "p": numpy.float32(0.5), "n": numpy.arange(2)})
    assert reply.status == 200
    assert orjson.loads(reply.body) == {"labels": ["a", "b"], "p": 0.5, "n": [0, 1]}


@pytest.mark.parametrize(
    ("response", "status", "content_type", "body"),
    [
        (AMLResponse({"a": 1}, 201), 201, "application/json", b'{"a":1}'),
        (AMLResponse('{"a": 1}', 200, json_str=True), 200, "application/json", b'{"a": 1}'),
        (AMLResponse(b"\x00\x01", 200), 200, "application/octet-stream", b"\x00\x01"),
        (AMLResponse("<b>hi</b>", 200, {"Content-Type": "text/html"}), 200, "text/html", b"<b>hi</b>"),
    ],
)
def test_amlresponse_bodies(response: AMLResponse, status: int, content_type: str, body: bytes) -> None:
    reply = encode_result(response)
    assert (reply.status, dict(reply.headers)["Content-Type"], reply.body) == (status, content_type, body)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (AMLResponse("x", 1000), "status 1000"),
        (AMLResponse("x", 200, {"Bad\nName": "v"}), "not a valid HTTP header"),
        (AMLResponse("x", 200, {"X-A": 1}), "must be str"),
    ],
)
def test_a_malformed_amlresponse_is_named(response: AMLResponse, message: str) -> None:
    with pytest.raises(ResultError, match=message):
        encode_result(response)


def test_json_schema_from_a_sample() -> None:
    assert json_schema({"data": [[1.5, 2]], "name": "x", "ok": True, "none": None}) == {
        "type": "object",
        "properties": {
            "data": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number", "format": "double"}},
            },
            "name": {"type": "string"},
            "ok": {"type": "boolean"},
            "none": {"x-nullable": True},
        },
    }
    assert json_schema(numpy.zeros((1, 2), dtype=numpy.int64))["items"]["items"]["type"] == "integer"
