"""The embedded job store: one SQLite file in the server's data directory.

One connection, serialized by a lock (writes are small and few per second; the render worker,
the event loop's executor and the watchers share it). WAL mode, so a reader never waits for the
writer's fsync, and synchronous=NORMAL: a power cut may lose the last few updates, never the file.
"""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from pathlib import Path

from dreamrender.errors import describe

from .store import (BLOB_FIELDS, FINAL_STATES, INTERRUPTED, LIST_FIELDS, QUEUED, RECORD_OVERHEAD, RUNNING, JobMissingError,
                    JobRecord, JobTooLargeError, StoreFullError)

_FIELDS = [f.name for f in dataclasses.fields(JobRecord)]
_SCHEMA = ("CREATE TABLE IF NOT EXISTS jobs (" + ", ".join(
    f"{name} {'BLOB' if name in BLOB_FIELDS else 'TEXT PRIMARY KEY' if name == 'id' else ''}".strip()
    for name in _FIELDS) + ", size INTEGER)")


class SqliteStore:
    """JobStore on `<data_dir>/jobs.sqlite3`."""

    def __init__(self, data_dir: str, *, ttl: float, max_bytes: int) -> None:
        self.ttl, self.max_bytes = ttl, max_bytes
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.path = os.path.join(data_dir, "jobs.sqlite3")
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._lock = threading.Lock()
            self._setup()
        except sqlite3.Error as exc:  # corrupt, a directory, read-only: one line at start (#28 D16)
            raise ValueError(f"the job store {self.path} cannot be used ({describe(exc)}): move it aside, or start "
                             "with another --data-dir (or --job-store redis://...)") from None

    def _setup(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for name in _FIELDS:  # a store made by an earlier version lacks the newer fields
                if name not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} TEXT DEFAULT ''")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, request_id)")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created)")
            self._db.execute("CREATE TABLE IF NOT EXISTS servers (id TEXT PRIMARY KEY, until REAL)")

    def _row(self, row: tuple | None, names: list[str] = _FIELDS) -> JobRecord | None:
        if row is None:
            return None
        values = dict(zip(names, row))
        values["detached"], values["cancel_requested"] = bool(values["detached"]), bool(values["cancel_requested"])
        return JobRecord(**values)

    def create(self, record: JobRecord, *, capped: bool) -> None:
        with self._lock:
            if capped and self.max_bytes:
                used = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM jobs").fetchone()[0]
                if record.size > self.max_bytes:
                    raise JobTooLargeError(record.size, self.max_bytes)
                if used + record.size > self.max_bytes:
                    raise StoreFullError(used, self.max_bytes)
            values = [getattr(record, name) for name in _FIELDS] + [record.size]
            self._db.execute(f"INSERT INTO jobs ({', '.join(_FIELDS)}, size) VALUES ({', '.join('?' * len(values))})",
                             values)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._row(self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM jobs WHERE id = ?",
                                              (job_id,)).fetchone())

    def peek(self, job_id: str) -> tuple[int, str, bool] | None:
        with self._lock:
            row = self._db.execute("SELECT version, state, cancel_requested FROM jobs WHERE id = ?",
                                   (job_id,)).fetchone()
        return None if row is None else (int(row[0]), row[1], bool(row[2]))

    def find(self, owner: str, request_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM jobs WHERE owner = ? AND request_id = ? "
                                   "ORDER BY created DESC LIMIT 1", (owner, request_id)).fetchone()
        return self._row(row)

    def update(self, job_id: str, **fields: object) -> None:
        fields["updated"] = time.time()
        sets = ", ".join(f"{name} = ?" for name in fields)
        # The size in the same statement (SET sees the old row, so a field being set counts by its
        # new value's length): a second UPDATE rewrote the whole row, a result's blob again with it.
        sized = {**{b: f"LENGTH(COALESCE({b}, ''))" for b in BLOB_FIELDS}, "error_message": "LENGTH(error_message)"}
        sized.update({name: str(len(value or "")) for name, value in fields.items() if name in sized})  # type: ignore[arg-type]
        with self._lock:
            cur = self._db.execute(f"UPDATE jobs SET {sets}, version = version + 1, "
                                   f"size = {' + '.join(sized.values())} + {RECORD_OVERHEAD} WHERE id = ?",
                                   [*fields.values(), job_id])
        if cur.rowcount == 0:
            raise JobMissingError(job_id)

    def list(self, owner: str | None, state: str | None, offset: int, limit: int) -> list[JobRecord]:
        names = [n for n in _FIELDS if n not in LIST_FIELDS]
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        sql = (f"SELECT {', '.join(names)} FROM jobs {'WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY created DESC, id LIMIT ? OFFSET ?")
        with self._lock:
            rows = self._db.execute(sql, [*args, limit, offset]).fetchall()
        return [self._row(r, names) for r in rows]  # type: ignore[misc]

    def unfinished(self) -> list[JobRecord]:
        names = [n for n in _FIELDS if n not in LIST_FIELDS]
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(names)} FROM jobs WHERE state IN (?, ?, ?) ORDER BY created",
                                    (QUEUED, RUNNING, INTERRUPTED)).fetchall()
        return [self._row(r, names) for r in rows]  # type: ignore[misc]

    def claim(self, job_id: str, holder: str, server_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET server_id = ? WHERE id = ? AND server_id = ?",
                                   (server_id, job_id, holder))
        return cur.rowcount == 1

    # Heartbeats in the file too: in a rolling restart the old dreamd still drains its jobs while
    # the new one starts on the same directory, and must not have them taken over meanwhile.
    def beat(self, server_id: str, ttl: float) -> None:
        with self._lock:
            if ttl > 0:
                self._db.execute("INSERT OR REPLACE INTO servers (id, until) VALUES (?, ?)", (server_id, time.time() + ttl))
            else:
                self._db.execute("DELETE FROM servers WHERE id = ?", (server_id,))

    def alive(self, server_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT until FROM servers WHERE id = ?", (server_id,)).fetchone()
        return row is not None and row[0] > time.time()

    def expire(self) -> int:
        cutoff = time.time() - self.ttl
        with self._lock:
            cur = self._db.execute(f"DELETE FROM jobs WHERE updated < ? AND state IN ({', '.join('?' * len(FINAL_STATES))})",
                                   (cutoff, *FINAL_STATES))
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
