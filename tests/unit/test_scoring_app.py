"""The scoring server's answers, from a real entry script loaded from disk, without a socket."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from scoring.app import AppSettings, Request, Scorer
from scoring.script import ScriptError, call_init, load, resolve

SCRIPT = """
    import json
    from scoring import AMLResponse

    state = {}

    def init():
        state["factor"] = 2

    def run(raw_data):
        body = json.loads(raw_data)
        if body.get("fail"):
            raise ValueError("no rows to score\\nsecond line is not shown")
        if body.get("teapot"):
            return AMLResponse("short and stout", 418, {"X-Kind": "teapot"})
        if body.get("object"):
            return object()
        return {"doubled": [v * state["factor"] for v in body["data"]]}
"""


def make_scorer(tmp_path: Path, source: str = SCRIPT, name: str = "score.py", **settings: int) -> Scorer:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    script = load(resolve(tmp_path, name))
    call_init(script)
    scorer = Scorer(AppSettings(**settings))
    scorer.attach(script)
    return scorer


@pytest.fixture
def scorer(tmp_path: Path) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    made = make_scorer(tmp_path)

    def call(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict[str, str], bytes]:
        request = Request(method, path, "", {k.replace("_", "-"): v for k, v in headers.items()}, body)
        reply, _ = made.handle(request)
        return reply.status, {k.lower(): v for k, v in reply.headers}, reply.body

    yield call
    made.close()


def test_liveness_says_healthy(scorer) -> None:
    status, _, body = scorer("GET", "/")
    assert (status, body) == (200, b"Healthy")


def test_score_returns_what_run_returned_as_json(scorer) -> None:
    status, headers, body = scorer("POST", "/score", b'{"data": [1, 2.5]}')
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body) == {"doubled": [2, 5.0]}
    assert float(headers["x-ms-run-fn-exec-ms"]) >= 0


def test_bad_json_is_a_400_that_says_where(scorer) -> None:
    status, _, body = scorer("POST", "/score", b'{"data": [1, 2')
    assert status == 400
    assert "not valid JSON" in orjson.loads(body)["error"]
    assert "column" in orjson.loads(body)["error"]


def test_empty_body_is_a_400(scorer) -> None:
    status, _, body = scorer("POST", "/score", b"  ")
    assert status == 400 and "empty body" in orjson.loads(body)["error"]


def test_run_raising_is_a_500_with_one_line_and_the_failure_header(scorer) -> None:
    status, headers, body = scorer("POST", "/score", b'{"fail": true}', x_request_id="req-7")
    assert status == 500
    assert headers["x-ms-run-function-failed"] == "True"
    error = orjson.loads(body)["error"]
    assert error.startswith("run() failed: ValueError: no rows to score;")
    assert "second line" not in error and "req-7" in error


def test_amlresponse_sets_status_headers_and_text_body(scorer) -> None:
    status, headers, body = scorer("POST", "/score", b'{"teapot": true}')
    assert (status, body) == (418, b"short and stout")
    assert headers["x-kind"] == "teapot"
    assert headers["content-type"].startswith("text/plain")


def test_a_result_json_cannot_carry_is_a_500_naming_the_type(scorer) -> None:
    status, _, body = scorer("POST", "/score", b'{"object": true}')
    assert status == 500
    assert orjson.loads(body)["error"].startswith("run() returned a value that is not JSON")
    assert "object" in orjson.loads(body)["error"]


def test_request_ids_are_echoed_or_made_up(scorer) -> None:
    _, headers, _ = scorer("GET", "/", x_request_id="abc", x_ms_client_request_id="client-1")
    assert headers["x-request-id"] == headers["x-ms-request-id"] == "abc"
    assert headers["x-ms-client-request-id"] == "client-1"
    _, headers, _ = scorer("GET", "/")
    assert len(headers["x-request-id"]) == 36


def test_a_request_id_over_100_characters_is_a_431(scorer) -> None:
    status, _, _ = scorer("POST", "/score", b"{}", x_request_id="x" * 101)
    assert status == 431


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/score", 405), ("OPTIONS", "/score", 200), ("POST", "/", 405), ("GET", "/nope", 404)],
)
def test_methods_and_paths(scorer, method: str, path: str, status: int) -> None:
    assert scorer(method, path)[0] == status


def test_swagger_without_a_declared_schema_is_a_404_saying_how(scorer) -> None:
    status, _, body = scorer("GET", "/swagger.json")
    assert status == 404 and "input_schema" in orjson.loads(body)["error"]


def test_metrics_count_scoring_answers(scorer) -> None:
    scorer("POST", "/score", b'{"data": [1]}')
    scorer("POST", "/score", b"{")
    _, _, body = scorer("GET", "/metrics")
    text = body.decode()
    assert 'inferplane_scoring_requests_total{code="200"} 1.0' in text
    assert 'inferplane_scoring_requests_total{code="400"} 1.0' in text


DECORATED = """
    from scoring import input_schema, output_schema

    def init():
        pass

    @input_schema("data", [[5.1, 3.5, 1.4, 0.2]], convert=lambda rows: [sum(r) for r in rows])
    @input_schema("scale", 1.0)
    @output_schema([10.2])
    def run(data, scale):
        return [round(total * scale, 6) for total in data]
"""


def test_declared_inputs_become_keyword_arguments(tmp_path: Path) -> None:
    scorer = make_scorer(tmp_path, DECORATED)
    reply, _ = scorer.handle(Request("POST", "/score", body=b'{"data": [[1, 2], [3, 4]], "scale": 0.5}'))
    assert (reply.status, orjson.loads(reply.body)) == (200, [1.5, 3.5])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": [[1]]}', "missing input 'scale'"),
        (b'{"data": [[1]], "scale": 1, "extra": 2}', "unknown input 'extra'"),
        (b"[1, 2]", "not a JSON array"),
        (b'{"data": 5, "scale": 1}', "input 'data'"),
    ],
)
def test_a_body_that_does_not_fit_the_inputs_is_a_400(tmp_path: Path, body: bytes, message: str) -> None:
    scorer = make_scorer(tmp_path, DECORATED)
    reply, _ = scorer.handle(Request("POST", "/score", body=body))
    assert reply.status == 400
    assert message in orjson.loads(reply.body)["error"]


def test_swagger_describes_the_declared_inputs_and_output(tmp_path: Path) -> None:
    scorer = make_scorer(tmp_path, DECORATED)
    reply, _ = scorer.handle(Request("GET", "/swagger.json"))
    doc = orjson.loads(reply.body)
    assert doc["swagger"] == "2.0"
    body = doc["paths"]["/score"]["post"]["parameters"][0]["schema"]
    assert list(body["properties"]) == ["data", "scale"]
    assert body["properties"]["data"]["items"]["items"] == {"type": "number", "format": "double"}
    assert body["example"] == {"data": [[5.1, 3.5, 1.4, 0.2]], "scale": 1.0}
    assert doc["paths"]["/score"]["post"]["responses"]["200"]["schema"]["example"] == [10.2]
    v3, _ = scorer.handle(Request("GET", "/swagger.json", "version=3"))
    assert orjson.loads(v3.body)["openapi"].startswith("3.")
    bad, _ = scorer.handle(Request("GET", "/swagger.json", "version=9"))
    assert bad.status == 400


def test_module_level_samples_publish_a_schema_but_keep_the_raw_call(tmp_path: Path) -> None:
    source = (
        textwrap.dedent(SCRIPT) + '\ninput_sample = {"data": [1, 2]}\noutput_sample = {"doubled": [2, 4]}\n'
    )
    scorer = make_scorer(tmp_path, source)
    reply, _ = scorer.handle(Request("GET", "/swagger.json"))
    doc = orjson.loads(reply.body)
    assert doc["paths"]["/score"]["post"]["parameters"][0]["schema"]["example"] == {"data": [1, 2]}
    scored, _ = scorer.handle(Request("POST", "/score", body=b'{"data": [3]}'))
    assert orjson.loads(scored.body) == {"doubled": [6]}


def test_run_slower_than_the_scoring_timeout_is_a_500_with_azures_words(tmp_path: Path) -> None:
    source = """
        import time
        def init():
            pass
        def run(raw_data):
            time.sleep(0.5)
            return "late"
    """
    scorer = make_scorer(tmp_path, source, scoring_timeout_ms=50)
    reply, fields = scorer.handle(Request("POST", "/score", body=b"{}"))
    assert reply.status == 500
    assert orjson.loads(reply.body) == {"error": "Scoring timeout after 50 ms"}
    assert fields["outcome"] == "timeout"
    scorer.close()


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def run(raw_data):\n    return 1\n", "UserScriptFunctionNotFound: .* no init\\(\\)"),
        ("def init():\n    pass\n", "UserScriptFunctionNotFound: .* no run\\(\\)"),
        ("def init(model):\n    pass\ndef run(raw_data):\n    pass\n", "init\\(\\) must be callable"),
        ("import no_such_module_here\n", "UserScriptImportError: .*ModuleNotFoundError"),
        ("def init(:\n", "UserScriptImportError: .*SyntaxError"),
    ],
)
def test_scripts_that_cannot_be_served_are_refused_with_azures_error_names(
    tmp_path: Path, source: str, error: str
) -> None:
    (tmp_path / "score.py").write_text(source)
    with pytest.raises(ScriptError, match=error):
        load(tmp_path / "score.py")


def test_init_raising_is_userscriptinitfailed_chained_to_the_cause(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(
        "def init():\n    raise OSError('model.pkl: missing')\ndef run(r):\n    pass\n"
    )
    script = load(tmp_path / "score.py")
    with pytest.raises(ScriptError, match=r"UserScriptInitFailed: .*OSError: model\.pkl: missing") as caught:
        call_init(script)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_missing_entry_script_names_the_app_root(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=f"no such file \\(app root {tmp_path}"):
        resolve(tmp_path, "score.py")
    with pytest.raises(ScriptError, match="set AZUREML_ENTRY_SCRIPT"):
        resolve(tmp_path, None)
