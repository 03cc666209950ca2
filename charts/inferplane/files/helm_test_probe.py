"""`helm test` probe: is each inferplane server answering, over TLS the cluster trusts?

Runs in the chart's test pod (`python -c <this file> <webhook-url> <ca-file> [<router-url> [<ca-file>]]`)
with the standard library only, so the chart's own image is enough. For the webhook it checks what
the apiserver will rely on: the certificate chains to the CA in the webhook configurations' caBundle
and names the Service, /readyz says the caches are synced, and /mutate-pod answers an AdmissionReview
for a pod without the model annotation by allowing it untouched, echoing the uid. Exit 0 only if
every check passes; each failure prints one line saying what to look at.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

TIMEOUT_SECONDS = 10


def _context(ca_file: str) -> ssl.SSLContext:
    # An empty CA argument means "the certificate is the user's own": check that the server
    # answers, not who signed it (its CA is not ours to know).
    if not ca_file:
        return ssl._create_unverified_context()
    return ssl.create_default_context(cafile=ca_file)


def _get(url: str, context: ssl.SSLContext | None) -> int:
    with urllib.request.urlopen(url, context=context, timeout=TIMEOUT_SECONDS) as answer:
        return int(answer.status)


def review_for_plain_pod(uid: str) -> dict[str, Any]:
    """A pod CREATE review the webhook must let through unchanged (no ml.example/model)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helm-test-probe", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "helm-test-probe",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:default:helm-test"},
            "object": pod,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def check_review_answer(answer: dict[str, Any], uid: str) -> list[str]:
    """What is wrong with the webhook's answer to `review_for_plain_pod`; [] when nothing."""
    response = answer.get("response")
    if answer.get("kind") != "AdmissionReview" or not isinstance(response, dict):
        return [f"/mutate-pod did not answer with an AdmissionReview: {json.dumps(answer)[:200]}"]
    problems = []
    if response.get("uid") != uid:
        problems.append(f"/mutate-pod echoed uid {response.get('uid')!r}, sent {uid!r}")
    if response.get("allowed") is not True:
        problems.append(f"/mutate-pod refused a pod without the model annotation: {response.get('status')}")
    if response.get("patch"):
        problems.append("/mutate-pod patched a pod without the model annotation")
    return problems


def probe_webhook(base_url: str, ca_file: str) -> list[str]:
    context = _context(ca_file)
    try:
        status = _get(f"{base_url}/readyz", context)
    except (urllib.error.URLError, OSError) as exc:
        hint = "is a webhook pod Ready? does its certificate chain to the CA?"
        return [f"webhook {base_url}/readyz: {exc} ({hint})"]
    if status != 200:
        return [f"webhook {base_url}/readyz answered {status}"]
    uid = str(uuid.uuid4())
    request = urllib.request.Request(
        f"{base_url}/mutate-pod?timeout=5s",
        data=json.dumps(review_for_plain_pod(uid)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=TIMEOUT_SECONDS) as answer:
            body = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [f"webhook {base_url}/mutate-pod: {exc}"]
    return check_review_answer(body, uid)


def probe_router(base_url: str, ca_file: str) -> list[str]:
    context = _context(ca_file) if base_url.startswith("https:") else None
    try:
        status = _get(f"{base_url}/readyz", context)
    except (urllib.error.URLError, OSError) as exc:
        return [f"router {base_url}/readyz: {exc}"]
    return [] if status == 200 else [f"router {base_url}/readyz answered {status}"]


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3, 4):
        print("usage: probe <webhook-url|-> <ca-file> [<router-url> [<router-ca-file>]]", file=sys.stderr)
        return 2
    problems: list[str] = []
    if argv[0] != "-":
        problems += probe_webhook(argv[0], argv[1])
    if len(argv) >= 3:
        problems += probe_router(argv[2], argv[3] if len(argv) == 4 else "")
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print("ok: every enabled inferplane server answered")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
