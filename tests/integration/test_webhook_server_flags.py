"""Bad flags to `inferplane webhook`: one line naming the problem and the fix, exit 2, nothing started."""

from __future__ import annotations

import subprocess

import pytest
from conftest import CertPair, ThrowawayCA, free_port

from inferplane.localcluster.process import inferplane_argv


@pytest.fixture
def pair(tls: ThrowawayCA) -> CertPair:
    return tls.issue("webhook-flags")


def run_webhook(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [*inferplane_argv(), "webhook", "--host", "127.0.0.1", "--port", str(free_port()), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_a_missing_certificate_file_is_named(tmp_path, pair):
    result = run_webhook(
        "--tls-cert-file", str(tmp_path / "absent.crt"), "--tls-key-file", str(pair.key_file)
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"inferplane webhook: --tls-cert-file {tmp_path / 'absent.crt'}: no such file; "
        "mount the TLS Secret and point the flag at it"
    ]


def test_a_key_that_does_not_match_the_certificate_is_refused(tls, pair):
    other = tls.issue("webhook-flags-other")
    result = run_webhook("--tls-cert-file", str(pair.cert_file), "--tls-key-file", str(other.key_file))
    assert result.returncode == 2
    assert "do not load as a pair" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_catalog_that_is_not_a_directory_is_named(tmp_path, pair):
    missing = tmp_path / "no-such-catalog"
    result = run_webhook("--tls-cert-file", str(pair.cert_file), "--tls-key-file", str(pair.key_file),
                         "--catalog", str(missing))  # fmt: skip
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_catalog_with_a_broken_file_names_the_file(tmp_path, pair):
    (tmp_path / "bad.yaml").write_text("kind: InstanceType\nmetadata: {name: x\n")
    result = run_webhook("--tls-cert-file", str(pair.cert_file), "--tls-key-file", str(pair.key_file),
                         "--catalog", str(tmp_path))  # fmt: skip
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr


@pytest.mark.parametrize(("flag", "value"), [("--workers", "0"), ("--port", "70000"), ("--threads", "x")])
def test_bad_numbers_are_refused_by_the_parser(pair, flag, value):
    result = run_webhook(
        "--tls-cert-file", str(pair.cert_file), "--tls-key-file", str(pair.key_file), flag, value
    )
    assert result.returncode == 2
    assert flag in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--default-cpu", "lots"],
            'default instance type cpu "lots" must be a quantity above zero, e.g. 600m',
        ),
        (
            ["--default-memory", "0"],
            'default instance type memory "0" must be a quantity above zero, e.g. 1536Mi',
        ),
        (["--node-selector", "pool"], 'node selector "pool" must be KEY=VALUE, e.g. kubernetes.io/os=linux'),
        (["--node-selector", "bad key=x"], 'node selector key "bad key" is not a label key'),
        (["--node-selector", "pool=a b"], "node selector pool=a b has no valid label value"),
        (
            ["--node-selector", "pool=a", "--node-selector", "pool=b"],
            "node selector pool is given twice, as a and b",
        ),
        (
            ["--scheduler-marker-resource", "cpu"],
            'scheduler marker resource "cpu" must be an extended resource',
        ),
    ],
)
def test_bad_injection_settings_are_named_in_one_line(pair, flags, message):
    result = run_webhook("--tls-cert-file", str(pair.cert_file), "--tls-key-file", str(pair.key_file), *flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inferplane webhook: ") and message in lines[0], lines
