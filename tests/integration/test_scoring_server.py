"""`inferplane serve` for real: gunicorn on loopback, entry scripts written to a temp app root."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest

GOOD = """
    import json, os, time

    def init():
        # One line per init() call, so the test can count them per worker process.
        with open(os.path.join(os.environ["INIT_LOG"]), "a") as log:
            log.write(f"{os.getpid()}\\n")

    def run(raw_data):
        body = json.loads(raw_data)
        if body.get("fail"):
            raise KeyError("feature_7")
        if body.get("sleep"):
            time.sleep(body["sleep"])
        return {"pid": os.getpid(), "sum": sum(body.get("data", []))}
"""

FAILING_INIT = """
    def load_weights():
        raise FileNotFoundError("/var/azureml-app/azureml-models/iris/3/model.pkl")

    def init():
        load_weights()

    def run(raw_data):
        return raw_data
"""


def app_root(tmp_path: Path, source: str) -> Path:
    root = tmp_path / "app"
    root.mkdir(parents=True, exist_ok=True)
    (root / "score.py").write_text(textwrap.dedent(source))
    return root


def serve_args(root: Path, *extra: str) -> list[str]:
    return ["serve", "--app-root", str(root), "--entry-script", "score.py", "--host", "127.0.0.1", *extra]


@pytest.fixture
def good(tmp_path: Path, start_server):
    init_log = tmp_path / "init.log"
    server = start_server(
        serve_args(app_root(tmp_path, GOOD), "--workers", "2", "--scoring-timeout-ms", "1500"),
        tls=None,
        ready_path="/",
        expect_status=200,
        env={"INIT_LOG": str(init_log)},
    )
    server.init_log = init_log
    # Ready means one worker answers; the other may still be in init().
    deadline = time.monotonic() + 20
    while sum(line.get("message") == "init() done; serving" for line in server.log_lines()) < 2:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    return server


def test_scores_and_calls_init_once_per_worker(good) -> None:
    assert good.session.get(good.url("/")).text == "Healthy"
    pids = set()
    for _ in range(40):
        response = good.session.post(
            good.url("/score"), json={"data": [1, 2, 3]}, headers={"Connection": "close"}
        )
        assert response.status_code == 200
        assert response.json()["sum"] == 6
        pids.add(response.json()["pid"])
    inits = good.init_log.read_text().split()
    assert len(inits) == 2 and len(set(inits)) == 2  # two workers, one init() each
    assert {str(pid) for pid in pids} <= set(inits)
    # Both workers' counts, merged (Prometheus multiprocess mode).
    metrics = good.session.get(good.url("/metrics")).text
    assert 'inferplane_scoring_requests_total{code="200"} 40.0' in metrics


def test_bad_json_is_400_and_run_raising_is_500_with_the_traceback_logged(good) -> None:
    bad = good.session.post(
        good.url("/score"), data=b'{"data": [1,', headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["error"]
    failed = good.session.post(good.url("/score"), json={"fail": True}, headers={"x-request-id": "r-42"})
    assert failed.status_code == 500
    assert failed.headers["x-ms-run-function-failed"] == "True"
    assert failed.json()["error"].startswith("run() failed: KeyError: 'feature_7'")
    line = good.wait_for_log(lambda entry: entry.get("message") == "run() raised")
    assert line["request_id"] == "r-42"
    assert "score.py" in line["exception"] and "KeyError: 'feature_7'" in line["exception"]
    assert "concurrent/futures" not in line["exception"]  # only the script's frames
    # The worker survived the failure.
    assert good.session.post(good.url("/score"), json={"data": [4]}).json()["sum"] == 4


def test_a_slow_run_times_out_while_liveness_keeps_answering(good) -> None:
    answers: dict[str, object] = {}

    def slow() -> None:
        answers["slow"] = good.session.post(good.url("/score"), json={"sleep": 3})

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert good.session.get(good.url("/"), timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0
    thread.join(10)
    slow_answer = answers["slow"]
    assert slow_answer.status_code == 500
    assert slow_answer.json() == {"error": "Scoring timeout after 1500 ms"}


def test_sigterm_stops_it_cleanly_even_while_a_worker_is_still_in_init(tmp_path: Path, start_server) -> None:
    source = """
        import os, time
        def init():
            time.sleep(0 if os.environ.get("FAST") else 30)
        def run(raw_data):
            return 1
    """
    fast = start_server(serve_args(app_root(tmp_path, source)), tls=None, ready_path="/", env={"FAST": "1"})
    started = time.monotonic()
    assert fast.stop() == 0
    slow = start_server(serve_args(app_root(tmp_path / "slow", source)), tls=None, wait=False)
    slow.wait_for_log(lambda entry: entry.get("message") == "calling init()")
    assert slow.stop() == 0
    assert time.monotonic() - started < 10  # not gunicorn's 25 s graceful timeout


def test_init_raising_ends_start_up_with_the_traceback_and_exit_3(tmp_path: Path, start_server) -> None:
    server = start_server(
        serve_args(app_root(tmp_path, FAILING_INIT), "--workers", "2"), tls=None, ready_path="/", wait=False
    )
    code = server.process.wait(timeout=30)
    stderr = server.stderr_path.read_text()
    assert code == 3
    assert "Traceback (most recent call last)" in stderr
    assert "in load_weights" in stderr and "FileNotFoundError" in stderr
    assert "UserScriptInitFailed" in stderr
    assert "Worker failed to boot" in stderr
    # No restart loop: gunicorn booted the two workers once and gave up.
    assert stderr.count("Booting worker") == 2


def test_an_import_error_also_ends_start_up(tmp_path: Path, start_server) -> None:
    server = start_server(
        serve_args(app_root(tmp_path, "import sklearn_that_is_not_there\n")), tls=None, wait=False
    )
    assert server.process.wait(timeout=30) == 3
    assert "UserScriptImportError" in server.stderr_path.read_text()


def test_init_slower_than_the_init_timeout_ends_start_up(tmp_path: Path, start_server) -> None:
    source = "import time\ndef init():\n    time.sleep(60)\ndef run(raw_data):\n    return 1\n"
    server = start_server(serve_args(app_root(tmp_path, source), "--init-timeout", "2"), tls=None, wait=False)
    assert server.process.wait(timeout=30) == 3
    stderr = server.stderr_path.read_text()
    assert "init() still running after 2s" in stderr
    assert "time.sleep(60)" in stderr  # where it was stuck


def test_a_missing_entry_script_is_refused_before_gunicorn_starts(tmp_path: Path, start_server) -> None:
    server = start_server(serve_args(tmp_path), tls=None, wait=False)
    assert server.process.wait(timeout=30) == 2
    assert "UserScriptImportError: entry script" in server.stderr_path.read_text()
