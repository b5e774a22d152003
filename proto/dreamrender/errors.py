"""Domain errors shared by the engine, the catalog and the service."""
from __future__ import annotations

from typing import Iterable

__all__ = ["InvalidArgumentError"]


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
        self.field = field
        self.problem = problem
        self.allowed = allowed or ""
        msg = f"{field}: {problem}" + (f" (allowed: {self.allowed})" if self.allowed else "")
        super().__init__(msg)
