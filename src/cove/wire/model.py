"""A small typed-dataclass base for wire models.

Pydantic would do this, but the agent runs inside every sandbox on Debian's
Python and must start in milliseconds with a few MB of memory, so the models
shared by agent, server and SDK are plain dataclasses checked here. A field's
wire name is its camelCase form unless `field(metadata={"wire": ...})` says
otherwise. Validation errors are `BadRequest`s that name the field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Self, TypeVar, Union

from cove.wire.errors import BadRequest

T = TypeVar("T", bound="WireModel")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is dict:
        return "an object of strings"
    if origin is list:
        return "an array"
    return "an object"


def _check(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check(value, inner, where)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer literal past any float
                number = math.inf
            if not math.isfinite(number):
                raise BadRequest(f"field '{where}' must be a finite number")
            return number
    elif tp is str:
        if isinstance(value, str):
            return _text(value, where)
    elif origin is dict:
        if isinstance(value, dict):
            _, vtype = typing.get_args(tp)
            return {
                _text(k, where): _check(v, vtype, f"{where}.{k}")
                for k, v in value.items()
                if isinstance(k, str)
            }
    elif origin is list:
        if isinstance(value, list):
            (itype,) = typing.get_args(tp)
            return [_check(v, itype, f"{where}[{i}]") for i, v in enumerate(value)]
    elif isinstance(tp, type) and issubclass(tp, WireModel):
        return tp.from_wire(value, where)
    got = "null" if value is None else type(value).__name__
    raise BadRequest(f"field '{where}' must be {_type_name(tp)}, got {got}")


def _text(value: str, where: str) -> str:
    """`value` if it is real Unicode text: JSON's \\ud800 escapes can carry lone
    surrogates, which no file, argv or environment can take (UTF-8 refuses them)."""
    if value.isascii():  # the common case, without a copy
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"field '{where}' holds a lone surrogate, not Unicode text") from None
    return value


_FIELDS: dict[type, list[tuple[dataclasses.Field[Any], str, Any]]] = {}


def _fields(cls: type) -> list[tuple[dataclasses.Field[Any], str, Any]]:
    """(field, wire name, type) per field; computed once per class."""
    cached = _FIELDS.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = [
            (f, f.metadata.get("wire", camel(f.name)), hints[f.name])
            for f in dataclasses.fields(cls)
            if f.init
        ]
        _FIELDS[cls] = cached
    return cached


class WireModel:
    """Mixin for `@dataclass` wire models: checked parsing and camelCase output."""

    @classmethod
    def from_wire(cls, data: Any, where: str = "body") -> Self:
        if not isinstance(data, dict):
            raise BadRequest(f"{where} must be a JSON object")
        kwargs: dict[str, Any] = {}
        for f, wire, tp in _fields(cls):
            value = data.get(wire, data.get(f.name))
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if value is None:
                if required:
                    raise BadRequest(f"field '{wire}' is required")
                continue
            kwargs[f.name] = _check(value, tp, wire)
        return cls(**kwargs)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, wire, _ in _fields(type(self)):
            out[wire] = _dump(getattr(self, f.name))
        return out


def _dump(value: Any) -> Any:
    if isinstance(value, WireModel):
        return value.to_wire()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value
