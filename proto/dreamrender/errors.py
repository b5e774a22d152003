"""Domain errors shared by the engine, the catalog and the service."""
from __future__ import annotations

import re
from typing import Iterable

__all__ = ["InvalidArgumentError", "ResourceLimitError", "NotFoundError", "quoted", "describe"]

# How much of a caller's string an error message repeats: a 4,000-character layer name echoed
# whole pushed the status past the client's metadata limit, hiding the field violation.
QUOTE_CHARS = 48


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """repr(value), cut to `limit` characters with the full length said when it is longer."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, (str, bytes)) else f"{len(text)} characters as text"
    return f"{text[:limit]}... ({size})"


def describe(exc: BaseException, limit: int = 200) -> str:
    """An exception as an error message quotes it: its type and text, cut to `limit`, without the
    object addresses some messages carry (`<_io.BytesIO object at 0x7f...>`)."""
    return re.sub(r" at 0x[0-9a-f]+", "", f"{type(exc).__name__}: {exc}")[:limit]


class InvalidArgumentError(ValueError):
    """A request field has a value the service cannot use.

    `field` is the request field's path (e.g. "terms[0].layer"); `allowed` describes the
    values that would be accepted. The service maps this to INVALID_ARGUMENT with a
    google.rpc.BadRequest field violation.
    """

    def __init__(self, field: str, problem: str, allowed: str | Iterable[str] | None = None) -> None:
        if allowed is not None and not isinstance(allowed, str):
            items = list(allowed)
            shown = ", ".join(items[:40]) + (f", ... ({len(items)} in all)" if len(items) > 40 else "")
            allowed = f"one of: {shown}"
        self.field = field[:200]
        self.problem = problem if len(problem) <= 400 else problem[:400] + "..."  # a guard; callers quote()
        self.allowed = allowed or ""
        msg = f"{self.field}: {self.problem}" + (f" (allowed: {self.allowed})" if self.allowed else "")
        super().__init__(msg)


class ResourceLimitError(InvalidArgumentError):
    """A valid request that needs more than the server grants one job (memory): RESOURCE_EXHAUSTED,
    with the field to change named as for INVALID_ARGUMENT. Retrying will not help; asking for
    less will."""


class NotFoundError(InvalidArgumentError):
    """A request names something that does not exist for this caller (a generator): NOT_FOUND,
    with the field named and what does exist listed, as for INVALID_ARGUMENT. Another token's
    generator is reported the same way, so its existence is not given away."""

    def __init__(self, field: str, problem: str, existing: Iterable[str]) -> None:
        names = list(existing)
        super().__init__(field, problem, f"one of the existing: {', '.join(names)}" if names else "none exists yet")
