"""Checks every request gets before its own: strings of bounded length and repeated fields of bounded
count, at any depth, before anything walks the items (#28 D19: a million terms took 11.8 s to refuse)."""
from __future__ import annotations

from typing import Any

from dreamrender.errors import InvalidArgumentError

__all__ = ["MAX_STRING_CHARS", "MAX_REPEATED", "check_strings"]

# Every string a request carries is a name (model, layer, media type): none is near this long.
MAX_STRING_CHARS = 128
# The most items of each repeated request field (by field name, at any depth); the one place these
# limits are written. `images` (training data) has its operator's own limit (--max-train-images).
MAX_REPEATED = {"terms": 32, "channels": 4096, "styles": 16, "content_layers": 16, "style_layers": 32,
                "presets": 26, "candidates": 32}
_UNIQUE = ("content_layers", "style_layers")  # a layer named twice is a mistake, not a weight


def check_strings(msg: Any, prefix: str = "") -> None:
    """InvalidArgumentError naming the first string field (at any depth) over MAX_STRING_CHARS, or
    the first repeated field over its MAX_REPEATED count (or naming a layer twice)."""
    for fd, value in msg.ListFields():
        path = prefix + fd.name
        if fd.is_repeated and len(value) > MAX_REPEATED.get(fd.name, len(value)):
            raise InvalidArgumentError(path, f"{len(value):,} items", f"at most {MAX_REPEATED[fd.name]}")
        if fd.name in _UNIQUE:
            _check_unique(value, path)
        if fd.message_type is not None:
            if fd.is_repeated:
                for i, item in enumerate(value):
                    check_strings(item, f"{path}[{i}].")
            else:
                check_strings(value, f"{path}.")
        elif fd.type == fd.TYPE_STRING and len(value) > MAX_STRING_CHARS:
            raise InvalidArgumentError(path, f"{len(value)} characters long", f"at most {MAX_STRING_CHARS} characters")


def _check_unique(items: Any, path: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.layer in seen:
            raise InvalidArgumentError(f"{path}[{i}].layer", f"{item.layer!r} is named again (as {path}[{seen[item.layer]}])",
                                       "each layer once, with its weight")
        seen[item.layer] = i
