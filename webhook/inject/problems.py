"""The two ways a pod can fail injection, each carrying the field a person should look at.

The webhook answers with the message alone; `inferplane lint` prefixes the field
(`spec.template.metadata.annotations[ml.example/model]: ...`), so both are kept apart here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from inferplane.errors import Denied, UserError


class FieldDenied(Denied):
    """A denial tied to a field of the pod (relative to the pod: `metadata.annotations[...]`)."""

    def __init__(self, field: str, message: str, *, reference: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        # True for an unknown model or instance type or an invalid registration: what
        # /validate-workload may only warn about (config.unknown_reference = "warn").
        self.reference = reference


class Malformed(UserError):
    """The object is not shaped like a Pod where injection reads it (a list where a map belongs...).

    The apiserver never sends such a pod, so the webhook answers HTTP 400; the CLI exits 2.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@contextmanager
def at_field(field: str) -> Iterator[None]:
    """Tie a plain `Denied` from a lookup (the catalog, the instance-type resolver) to `field`."""
    try:
        yield
    except FieldDenied:
        raise
    except Denied as exc:
        raise FieldDenied(field, str(exc), reference=True) from exc


def annotation_field(key: str) -> str:
    return f"metadata.annotations[{key}]"


def quote(text: object) -> str:
    """`"iris:4"`: double quotes, as kubectl and the rest of inferplane quote names; a hostile name
    cannot break the sentence out of its quotes."""
    return json.dumps(str(text), ensure_ascii=False)
