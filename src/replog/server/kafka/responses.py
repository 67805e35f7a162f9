"""Building kio response objects of any version from one set of values.

Each Kafka API version is its own kio class with the fields that version has; a handler
names the values once and :func:`make` keeps those the version has and fills the rest
with the protocol's neutral values, so one handler serves every version it advertises."""

from __future__ import annotations

import dataclasses
import datetime
import sys
from typing import Any

from kio.schema.errors import ErrorCode

__all__ = ["blank_response", "make", "nested"]

_ZERO_DELTA = datetime.timedelta(0)


def make(cls: type[Any], /, **values: Any) -> Any:
    """An instance of the kio class ``cls`` from ``values``: names it lacks are dropped,
    fields without a value or default get the protocol's neutral value."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = values[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = _neutral(f, ErrorCode.none)
    return cls(**kwargs)


def nested(cls: type[Any], name: str) -> type[Any]:
    """The class named ``name`` in the module of the kio class ``cls`` (the nested
    entities of one API version live beside its request or response)."""
    found: type[Any] = getattr(sys.modules[cls.__module__], name)
    return found


def blank_response(cls: type[Any], error: ErrorCode) -> Any:
    """A response of ``cls`` whose error codes are ``error`` and whose lists are empty:
    what a request the server cannot serve is answered with."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("kafka_type") == "error_code":
            kwargs[f.name] = error
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = _neutral(f, error)
    return cls(**kwargs)


def _neutral(f: dataclasses.Field[Any], error: ErrorCode) -> Any:
    kind = f.metadata.get("kafka_type")
    if str(f.type).startswith("tuple") or kind is None:
        return ()
    if kind == "error_code":
        return error
    if kind in {"timedelta_i32", "timedelta_i64"}:
        return _ZERO_DELTA
    if kind in ("string", "uuid", "records", "datetime_i64", "bytes"):
        return None if "None" in str(f.type) else ""
    if kind == "bool":
        return False
    return 0
