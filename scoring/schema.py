"""An entry script's declared input and output, and the Swagger document made from them.

Azure's scripts declare their interface with the `inference-schema` decorators; the server then
parses the body, hands `run()` keyword arguments and publishes `/swagger.json`. Ours does the same
with two small decorators and plain samples (no parameter-type classes to learn):

    @input_schema("data", [[5.1, 3.5, 1.4, 0.2]], convert=numpy.asarray)
    @output_schema(["setosa"])
    def run(data): ...

A script that keeps `run(raw_data)` may still publish a schema with module-level `input_sample`
and `output_sample`; then only `/swagger.json` changes, never the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from scoring.response import ResultError, to_json

F = TypeVar("F", bound=Callable[..., Any])

_INPUTS = "__inferplane_inputs__"
_OUTPUT = "__inferplane_output__"
_NO_SAMPLE = object()


class BadInput(Exception):
    """The request body does not match the declared inputs (answered 400 with this message)."""


@dataclass(frozen=True)
class Input:
    sample: Any
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Schema:
    """`inputs` set: run() takes keyword arguments from the body's keys. `input_sample` set: the
    whole body's sample, run() takes the raw body."""

    inputs: Mapping[str, Input] = field(default_factory=dict)
    input_sample: Any = _NO_SAMPLE
    output_sample: Any = _NO_SAMPLE

    @property
    def declared(self) -> bool:
        return (
            bool(self.inputs) or self.input_sample is not _NO_SAMPLE or self.output_sample is not _NO_SAMPLE
        )

    def body_sample(self) -> Any:
        if self.inputs:
            return {name: spec.sample for name, spec in self.inputs.items()}
        return None if self.input_sample is _NO_SAMPLE else self.input_sample


def input_schema(name: str, sample: Any, convert: Callable[[Any], Any] | None = None) -> Callable[[F], F]:
    """Declare that `run()` takes `name` from the JSON body, shaped like `sample`; `convert` (for
    example `numpy.asarray`) is applied to the value first. Stack one per argument."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"input_schema name {name!r}: must be a Python identifier (it is run()'s argument)")

    def decorate(func: F) -> F:
        existing = getattr(func, _INPUTS, {})
        if name in existing:
            raise ValueError(f"input_schema {name!r} is declared twice on {func.__name__}")
        # Decorators apply bottom-up; putting this one first keeps the order they are written in.
        setattr(func, _INPUTS, {name: Input(sample, convert), **existing})
        return func

    return decorate


def output_schema(sample: Any) -> Callable[[F], F]:
    """Declare what `run()` returns, shaped like `sample` (published in /swagger.json)."""

    def decorate(func: F) -> F:
        setattr(func, _OUTPUT, sample)
        return func

    return decorate


def schema_of(module: ModuleType, run: Callable[..., Any]) -> Schema:
    """The schema a loaded entry script declares (empty when it declares none)."""
    inputs = dict(getattr(run, _INPUTS, {}))
    output = getattr(run, _OUTPUT, getattr(module, "output_sample", _NO_SAMPLE))
    whole = _NO_SAMPLE if inputs else getattr(module, "input_sample", _NO_SAMPLE)
    return Schema(inputs=inputs, input_sample=whole, output_sample=output)


def bind_inputs(schema: Schema, body: Any) -> dict[str, Any]:
    """run()'s keyword arguments from a parsed JSON body, converted as declared."""
    expected = ", ".join(repr(name) for name in schema.inputs)
    if not isinstance(body, dict):
        raise BadInput(f"send a JSON object with the keys {expected}, not a JSON {_json_type(body)}")
    missing = [name for name in schema.inputs if name not in body]
    if missing:
        raise BadInput(f"missing input {', '.join(repr(m) for m in missing)}; the script takes {expected}")
    unknown = sorted(set(body) - set(schema.inputs))
    if unknown:
        raise BadInput(f"unknown input {', '.join(repr(u) for u in unknown)}; the script takes {expected}")
    kwargs = {}
    for name, spec in schema.inputs.items():
        value = body[name]
        if spec.convert is not None:
            try:
                value = spec.convert(value)
            except (TypeError, ValueError) as exc:
                raise BadInput(f"input {name!r}: {exc}") from None
        kwargs[name] = value
    return kwargs


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def json_schema(sample: Any) -> dict[str, Any]:
    """A JSON Schema that `sample` fits, as Swagger 2.0 spells it (arrays typed by their first item)."""
    import orjson

    try:
        value = orjson.loads(to_json(sample))  # numpy arrays, frames, … as JSON sees them
    except ResultError as exc:
        raise ValueError(f"schema sample: {exc}") from None
    return _schema(value)


def _schema(value: Any) -> dict[str, Any]:
    kind = _json_type(value)
    if kind == "object":
        return {"type": "object", "properties": {str(k): _schema(v) for k, v in value.items()}}
    if kind == "array":
        return {"type": "array", "items": _schema(value[0]) if value else {}}
    if kind == "number":
        return {"type": "number", "format": "double"}
    if kind == "integer":
        return {"type": "integer", "format": "int64"}
    if kind == "null":
        return {"x-nullable": True}
    return {"type": kind}


def swagger(schema: Schema, title: str, version: int = 2) -> dict[str, Any]:
    """The service description served at /swagger.json (Swagger 2.0, or OpenAPI 3.0 with version=3)."""
    body = schema.body_sample()
    input_schema_doc = json_schema(body) if body is not None else {"type": "object"}
    if body is not None:
        input_schema_doc["example"] = body
    has_output = schema.output_sample is not _NO_SAMPLE
    output_schema_doc = json_schema(schema.output_sample) if has_output else {}
    if has_output:
        output_schema_doc["example"] = schema.output_sample
    error = {"type": "object", "properties": {"error": {"type": "string"}}}
    info = {
        "title": title,
        "description": "Scoring service (Azure ML entry-script contract)",
        "version": "1.0",
    }
    liveness = {"description": "Liveness: answers Healthy once init() has run", "responses": {"200": {
        "description": "Healthy"}}}  # fmt: skip
    if version == 3:

        def content(doc: dict[str, Any]) -> dict[str, Any]:
            return {"application/json": {"schema": doc}}

        return {
            "openapi": "3.0.1",
            "info": info,
            "paths": {
                "/": {"get": liveness},
                "/score": {"post": {
                    "requestBody": {"required": True, "content": content(input_schema_doc)},
                    "responses": {
                        "200": {"description": "run()'s answer", "content": content(output_schema_doc)},
                        "400": {"description": "not JSON, or not the inputs", "content": content(error)},
                        "500": {"description": "run() failed", "content": content(error)},
                    },
                }},
            },
        }  # fmt: skip
    return {
        "swagger": "2.0",
        "info": info,
        "schemes": ["http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {
            "/": {"get": liveness},
            "/score": {"post": {
                "parameters": [{"name": "body", "in": "body", "required": True, "schema": input_schema_doc}],
                "responses": {
                    "200": {"description": "run()'s answer", "schema": output_schema_doc},
                    "400": {"description": "not JSON, or not the inputs", "schema": error},
                    "500": {"description": "run() failed", "schema": error},
                },
            }},
        },
    }  # fmt: skip
