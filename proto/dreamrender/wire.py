"""Settings <-> protobuf request fields, derived from the settings dataclasses.

A settings field `octave_scale` travels in the request field of the same name. Enum fields
carry the lower-case tail of the enum value (`DREAM_OBJECTIVE_MEAN_SQUARED` <-> "mean_squared");
the UNSPECIFIED value and unset optional fields mean "the default", which only the settings
class knows.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from google.protobuf.message import Message

from .errors import InvalidArgumentError, quoted
from .settings import setting_fields

__all__ = ["enum_prefix", "enum_number", "enum_name", "enum_names", "fill_request", "read_request"]


def enum_prefix(enum_descriptor: Any) -> str:
    """`DreamObjective` -> `DREAM_OBJECTIVE_`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_descriptor.name).upper() + "_"


def enum_number(enum_type: Any, name: str) -> int | None:
    """"mean_squared" -> the number of DREAM_OBJECTIVE_MEAN_SQUARED; None for no such value (or
    for UNSPECIFIED, which is no choice)."""
    value = enum_type.values_by_name.get(enum_prefix(enum_type) + str(name).upper())
    return value.number if value is not None and value.number else None


def enum_name(enum_type: Any, number: int) -> str | None:
    """The number of DREAM_OBJECTIVE_MEAN_SQUARED -> "mean_squared"; None for UNSPECIFIED or an
    unknown number."""
    value = enum_type.values_by_number.get(number)
    return value.name[len(enum_prefix(enum_type)):].lower() if value is not None and number else None


def enum_names(enum_type: Any) -> list[str]:
    """Every value's name but UNSPECIFIED, in declaration order."""
    return [v.name[len(enum_prefix(enum_type)):].lower() for v in enum_type.values if v.number]


def _encode(msg: Message, name: str, value: Any, path: str) -> None:
    fd = msg.DESCRIPTOR.fields_by_name[name]
    if fd.enum_type is not None:
        number = enum_number(fd.enum_type, value)
        if number is None:
            raise InvalidArgumentError(path, f"{quoted(value)} is not a valid value", enum_names(fd.enum_type))
        setattr(msg, name, number)
    else:
        setattr(msg, name, value)


def fill_request(msg: Message, cls: type, values: Mapping[str, Any], prefix: str = "") -> None:
    """Set the request fields named in `values` (settings field names) on `msg`."""
    known = {f.name: f for f in setting_fields(cls)}
    for name, value in values.items():
        if value is None:
            continue
        if name not in known or name not in msg.DESCRIPTOR.fields_by_name:
            raise TypeError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
        _encode(msg, name, value, prefix + name)


def read_request(msg: Message, cls: type, prefix: str = "") -> dict[str, Any]:
    """The settings (by field name) that `msg` sets; unset fields are left out (defaults apply)."""
    out: dict[str, Any] = {}
    for f in setting_fields(cls):
        fd = msg.DESCRIPTOR.fields_by_name.get(f.name)
        if fd is None:
            continue
        if fd.enum_type is not None:
            number = getattr(msg, f.name)
            if number == 0:
                continue
            name = enum_name(fd.enum_type, number)
            if name is None:
                raise InvalidArgumentError(prefix + f.name, f"unknown enum value {number}", f.metadata["choices"])
            out[f.name] = name
        elif fd.has_presence and msg.HasField(f.name):
            out[f.name] = getattr(msg, f.name)
    return out

