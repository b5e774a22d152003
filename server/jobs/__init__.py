"""Jobs that outlive their call: the job store (SQLite or Redis) and what the server keeps in it."""
from ._guard import GuardedStore
from .store import (CANCELLED, FAILED, FINAL_STATES, INTERRUPTED, QUEUED, RUNNING, STATES, SUCCEEDED, JobEndedError,
                    JobMissingError, JobNotFoundError, JobRecord, JobStore, JobTooLargeError, StoreFullError,
                    StoreOutOfSpaceError, StoreUnavailableError)

__all__ = ["JobRecord", "JobStore", "StoreFullError", "JobTooLargeError", "StoreUnavailableError",
           "StoreOutOfSpaceError", "JobMissingError", "JobNotFoundError", "JobEndedError", "open_store", "QUEUED",
           "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED", "STATES", "FINAL_STATES"]


def open_store(url: str, *, data_dir: str, ttl: float, max_bytes: int) -> JobStore:
    """The store a `--job-store` value names: "sqlite" (in `data_dir`) or "redis://HOST:PORT/DB",
    its faults turned into StoreUnavailableError / StoreOutOfSpaceError (GuardedStore).

    A Redis that cannot be reached at start is not fatal: dreamd serves attached renders and the
    upkeep reconnects with backoff. A SQLite file that cannot be used is: ValueError, one line
    naming the file, what is wrong and what to do."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore

        return GuardedStore(RedisStore(url, ttl=ttl, max_bytes=max_bytes), url.split("@")[-1])  # no password
    if url in ("", "sqlite"):
        from ._sqlite import SqliteStore

        store = SqliteStore(data_dir, ttl=ttl, max_bytes=max_bytes)
        return GuardedStore(store, store.path)  # type: ignore[return-value]
    raise ValueError(f"--job-store: {url!r} is not \"sqlite\" or a redis://HOST:PORT/DB url")
