"""The job store's faults as domain errors (#28): an unreachable or corrupt store is UNAVAILABLE and
a full one RESOURCE_EXHAUSTED, both naming the store, never INTERNAL with a driver's class name."""
from __future__ import annotations

import functools
import sqlite3
from typing import Any, Callable

from dreamrender.errors import describe

from .store import StoreFullError, StoreOutOfSpaceError, StoreUnavailableError

__all__ = ["GuardedStore"]


def _redis_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(unreachable, out of memory) exception types of redis-py, when it is installed."""
    try:
        from redis import exceptions as rx
    except ImportError:
        return (), ()
    return (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError), (rx.OutOfMemoryError,)


class GuardedStore:
    """A JobStore whose every call turns the backend's faults into StoreUnavailableError or
    StoreOutOfSpaceError; everything else (our own StoreFullError, lookups) passes through."""

    def __init__(self, store: Any, name: str) -> None:
        self._store, self.name = store, name
        self._down, self._oom = _redis_errors()

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._store, attr)
        return self._guard(value) if callable(value) else value

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except StoreFullError:
                raise
            except self._oom as exc:
                raise StoreOutOfSpaceError(self.name, describe(exc)) from None
            except self._down as exc:
                raise StoreUnavailableError(self.name, describe(exc)) from None
            except sqlite3.OperationalError as exc:
                if "full" in str(exc):
                    raise StoreOutOfSpaceError(self.name, describe(exc)) from None
                raise StoreUnavailableError(self.name, describe(exc)) from None
            except sqlite3.DatabaseError as exc:  # a corrupt file: "database disk image is malformed"
                raise StoreUnavailableError(self.name, f"{describe(exc)} (move the file aside to start afresh)") from None
        return call
