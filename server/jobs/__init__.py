"""Jobs that outlive their call: the job store (SQLite or Redis) and what the server keeps in it."""
from .store import (CANCELLED, FAILED, FINAL_STATES, INTERRUPTED, QUEUED, RUNNING, STATES, SUCCEEDED, JobEndedError,
                    JobNotFoundError, JobRecord, JobStore, JobTooLargeError, StoreFullError)

__all__ = ["JobRecord", "JobStore", "StoreFullError", "JobTooLargeError", "JobNotFoundError", "JobEndedError", "open_store", "QUEUED",
           "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED", "STATES", "FINAL_STATES"]


def open_store(url: str, *, data_dir: str, ttl: float, max_bytes: int) -> JobStore:
    """The store a `--job-store` value names: "sqlite" (in `data_dir`) or "redis://HOST:PORT/DB"."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore

        return RedisStore(url, ttl=ttl, max_bytes=max_bytes)
    if url in ("", "sqlite"):
        from ._sqlite import SqliteStore

        return SqliteStore(data_dir, ttl=ttl, max_bytes=max_bytes)
    raise ValueError(f"--job-store: {url!r} is not \"sqlite\" or a redis://HOST:PORT/DB url")
