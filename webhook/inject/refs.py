"""Read the `ml.example/*` annotations a user wrote, refusing what cannot be meant.

Every message quotes what was written and shows a correct spelling, because the person reading it
is looking at a Deployment, not at this code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from webhook.inject import keys
from webhook.inject.names import DNS_LABEL
from webhook.inject.problems import FieldDenied, annotation_field, quote

# A label value: what the registration's ml.example/model-name and -version labels can hold.
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_RULE = "1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


@dataclass(frozen=True, order=True)
class ModelRef:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


@functools.lru_cache(maxsize=4096)  # the same annotation arrives with every replica
def parse_models(value: str) -> tuple[ModelRef, ...]:
    """`iris:3, resnet:1` -> (iris:3, resnet:1) in the order written."""
    field = annotation_field(keys.MODEL)
    entries = [entry.strip() for entry in value.split(",")]
    if not any(entries):
        raise FieldDenied(field, f"annotation {keys.MODEL} is empty; set it to name:version, e.g. iris:3")
    refs: list[ModelRef] = []
    for entry in entries:
        if not entry:
            raise FieldDenied(
                field, f"annotation {keys.MODEL} {quote(value)} has an empty entry; remove the comma"
            )
        name, sep, version = (part.strip() for part in entry.partition(":"))
        if not sep or not version:
            raise FieldDenied(
                field, f"model {quote(entry)} has no version; write name:version, e.g. {name}:1"
            )
        for what, text in (("name", name), ("version", version)):
            if len(text) > 63 or not LABEL_VALUE.match(text):
                raise FieldDenied(
                    field, f"model {what} {quote(text)} in {quote(entry)} must be {_LABEL_RULE}"
                )
        ref = ModelRef(name, version)
        if ref in refs:
            raise FieldDenied(field, f"model {ref} is listed twice in {keys.MODEL}; list it once")
        refs.append(ref)
    return tuple(refs)


def check_routing(annotations: Mapping[str, str]) -> list[str]:
    """The router's annotations must be readable, or traffic goes somewhere nobody meant; warnings."""
    endpoint = annotations.get(keys.ENDPOINT)
    if endpoint is not None and (len(endpoint) > 63 or not DNS_LABEL.match(endpoint)):
        raise FieldDenied(
            annotation_field(keys.ENDPOINT),
            f"endpoint {quote(endpoint)} must be a DNS label: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit, e.g. iris",
        )
    for key in (keys.TRAFFIC, keys.MIRROR):
        text = annotations.get(key)
        if text is None:
            continue
        if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) > 100:
            raise FieldDenied(
                annotation_field(key),
                f"annotation {key} {quote(text)} must be a whole percentage 0-100, e.g. 90",
            )
    return [
        f"annotation {key} has no effect without {keys.ENDPOINT}; add the endpoint it splits"
        for key in (keys.TRAFFIC, keys.MIRROR)
        if key in annotations and endpoint is None
    ]


_KNOWN = ", ".join(key.removeprefix(keys.PREFIX) for key in keys.USER_ANNOTATIONS)
_READ = frozenset((*keys.USER_ANNOTATIONS, *keys.OWN_ANNOTATIONS))


def unknown_annotations(annotations: Mapping[str, str]) -> list[str]:
    """Warnings for `ml.example/...` keys nobody reads: almost always a typo."""
    unknown = [key for key in annotations if key.startswith(keys.PREFIX) and key not in _READ]
    return [f"unknown annotation {key}; inferplane reads {_KNOWN}" for key in sorted(unknown)]
