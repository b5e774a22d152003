"""Checks every request gets before its own: strings of bounded length, at any depth."""
from __future__ import annotations

from typing import Any

from dreamrender.errors import InvalidArgumentError

__all__ = ["MAX_STRING_CHARS", "check_strings"]

# Every string a request carries is a name (model, layer, media type): none is near this long.
MAX_STRING_CHARS = 128


def check_strings(msg: Any, prefix: str = "") -> None:
    """InvalidArgumentError naming the first string field (at any depth) over MAX_STRING_CHARS."""
    for fd, value in msg.ListFields():
        path = prefix + fd.name
        if fd.message_type is not None:
            if fd.is_repeated:
                for i, item in enumerate(value):
                    check_strings(item, f"{path}[{i}].")
            else:
                check_strings(value, f"{path}.")
        elif fd.type == fd.TYPE_STRING and len(value) > MAX_STRING_CHARS:
            raise InvalidArgumentError(path, f"{len(value)} characters long", f"at most {MAX_STRING_CHARS} characters")
