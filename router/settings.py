"""The per-deployment knobs a user sets on the pod template, read into one frozen value.

The names mirror Azure ML's `request_settings` / `scale_settings` (azureml-fe) so a user moving over
finds the same meaning under a Kubernetes-style name; the defaults are Azure's v2 defaults. Bad values
are reported with the annotation's name and the pod they came from, never silently replaced: the
discovery layer logs the problem and serves that deployment with the defaults until it is fixed. The
webhook can call `parse_settings` to refuse the same mistakes at apply time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from inferplane.errors import UserError

PREFIX = "ml.example/"
ENDPOINT = PREFIX + "endpoint"
DEPLOYMENT = PREFIX + "deployment"
TRAFFIC = PREFIX + "traffic"
MIRROR = PREFIX + "mirror"
DEFAULT_DEPLOYMENT = PREFIX + "default-deployment"
AUTH = PREFIX + "auth"
CONTAINER = PREFIX + "container"
SCORING_PORT = PREFIX + "scoring-port"
SCORING_PATH = PREFIX + "scoring-path"
MAX_CONCURRENT = PREFIX + "max-concurrent-requests-per-pod"
REQUEST_TIMEOUT_MS = PREFIX + "request-timeout-ms"
MAX_QUEUE_WAIT_MS = PREFIX + "max-queue-wait-ms"
AUTOSCALE_MIN = PREFIX + "autoscale-min-replicas"
AUTOSCALE_MAX = PREFIX + "autoscale-max-replicas"
AUTOSCALE_TARGET = PREFIX + "autoscale-target-utilization"
ENDPOINT_KEYS = PREFIX + "endpoint-keys"

DEFAULT_SCORING_PORT = 5001
DEFAULT_SCORING_PATH = "/score"
# Azure v2 defaults (request_settings); 300 s is the Kubernetes online-endpoint ceiling.
DEFAULT_MAX_CONCURRENT = 1
DEFAULT_REQUEST_TIMEOUT_MS = 5000
MAX_REQUEST_TIMEOUT_MS = 300_000
MAX_MS = MAX_REQUEST_TIMEOUT_MS
DEFAULT_MAX_QUEUE_WAIT_MS = 500
DEFAULT_TARGET_UTILIZATION = 70
MAX_MIRROR_PERCENT = 50

AUTH_KEY = "key"
AUTH_NONE = "none"


@dataclass(frozen=True)
class Autoscale:
    """Concurrency-based autoscaling of one Deployment (azureml-fe `target_utilization`)."""

    min_replicas: int = 1
    max_replicas: int = 1
    target_utilization: int = DEFAULT_TARGET_UTILIZATION  # percent


@dataclass(frozen=True)
class DeploymentSettings:
    traffic: int = 0  # percent of the endpoint's live traffic
    mirror: int = 0  # percent of the endpoint's traffic copied here, answers dropped
    is_default: bool = False
    max_concurrent: int = DEFAULT_MAX_CONCURRENT  # per pod, divided among the live router replicas
    request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS
    max_queue_wait_ms: int = DEFAULT_MAX_QUEUE_WAIT_MS
    scoring_path: str = DEFAULT_SCORING_PATH
    autoscale: Autoscale | None = None  # None: the router never scales this Deployment


def _int(values: Mapping[str, object], key: str, default: int, low: int, high: int) -> int:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip().removesuffix("%"))
    except ValueError:
        raise UserError(f"{key}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise UserError(f"{key}: {value} is outside {low}..{high}")
    return value


def parse_bool(key: str, raw: object) -> bool:
    text = str(raw).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0", ""):
        return False
    raise UserError(f"{key}: {raw!r} is not true or false")


def parse_auth(raw: object) -> str:
    text = str(raw or AUTH_KEY).strip().lower()
    if text not in (AUTH_KEY, AUTH_NONE):
        raise UserError(f"{AUTH}: {raw!r} must be 'key' or 'none'")
    return text


def parse_settings(values: Mapping[str, object]) -> DeploymentSettings:
    """Read a deployment's settings from pod annotations (or a routes file entry using the same keys).

    Autoscaling is off unless `autoscale-max-replicas` is given: the router must never fight a
    user's HPA or a fixed replica count it was not asked to manage.
    """
    autoscale = None
    if values.get(AUTOSCALE_MAX) not in (None, ""):
        low = _int(values, AUTOSCALE_MIN, 1, 1, 1000)
        high = _int(values, AUTOSCALE_MAX, 1, 1, 1000)
        if high < low:
            raise UserError(f"{AUTOSCALE_MAX}: {high} is below {AUTOSCALE_MIN} {low}")
        autoscale = Autoscale(low, high, _int(values, AUTOSCALE_TARGET, DEFAULT_TARGET_UTILIZATION, 1, 100))
    path = str(values.get(SCORING_PATH) or DEFAULT_SCORING_PATH)
    if not path.startswith("/"):
        raise UserError(f"{SCORING_PATH}: {path!r} must start with '/'")
    return DeploymentSettings(
        traffic=_int(values, TRAFFIC, 0, 0, 100),
        mirror=_int(values, MIRROR, 0, 0, MAX_MIRROR_PERCENT),
        is_default=parse_bool(DEFAULT_DEPLOYMENT, values.get(DEFAULT_DEPLOYMENT, "")),
        max_concurrent=_int(values, MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT, 1, 10_000),
        request_timeout_ms=_int(
            values, REQUEST_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, 1, MAX_REQUEST_TIMEOUT_MS
        ),
        max_queue_wait_ms=_int(values, MAX_QUEUE_WAIT_MS, DEFAULT_MAX_QUEUE_WAIT_MS, 0, MAX_MS),
        scoring_path=path,
        autoscale=autoscale,
    )
