"""The shared job store: Redis, for several replicas behind one address.

A running job writes its progress, frames and best image here as it goes, so GetJob and
WatchJob work on any replica, whichever one runs the job. Layout (prefix "dreamrender:"):
job:<id> is a hash of the record's fields; jobs is a sorted set of ids by creation time;
rid:<owner>:<request_id> maps an idempotency key to its job; sizes maps ids to bytes held (the
size cap). Finished jobs get Redis's own expiry (the TTL); `expire` sweeps the indexes after it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time

from dreamrender.errors import describe

from .store import (BLOB_FIELDS, FINAL_STATES, INTERRUPTED, LIST_FIELDS, QUEUED, RECORD_OVERHEAD, RUNNING, JobMissingError,
                    JobRecord, JobTooLargeError, StoreFullError)

log = logging.getLogger(__name__)

_P = "dreamrender:"
_TYPES = {f.name: f.type for f in dataclasses.fields(JobRecord)}
_LIGHT = [n for n in _TYPES if n not in LIST_FIELDS]  # a record without its large bytes


def _encode(value: object) -> bytes | str | int | float:
    if isinstance(value, bool):
        return int(value)
    return value  # type: ignore[return-value]


def _decode(name: str, raw: bytes) -> object:
    kind = _TYPES[name]
    if name in BLOB_FIELDS:
        return raw
    text = raw.decode()
    if kind in ("bool", bool):
        return text not in ("0", "")
    if kind in ("int", int):
        return int(text)
    if kind in ("float", float):
        return float(text)
    return text


_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('HINCRBY', KEYS[1], 'version', 1)
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

_CLAIM = """
if redis.call('HGET', KEYS[1], 'server_id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'server_id', ARGV[2])
  return 1
end
return 0
"""


def _rid_key(owner: str, request_id: str) -> str:
    # Hashed: the owner is already a token hash, but keys should not grow with what callers send.
    return _P + "rid:" + hashlib.sha256(f"{owner}\0{request_id}".encode()).hexdigest()[:32]


class RedisStore:
    """JobStore on a Redis server (`url`: redis://HOST:PORT/DB)."""

    def __init__(self, url: str, *, ttl: float, max_bytes: int) -> None:
        import redis

        self.ttl, self.max_bytes = ttl, max_bytes
        self._r = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
        self._update = self._r.register_script(_UPDATE)
        try:
            self._r.ping()
        except redis.exceptions.RedisError as exc:  # not fatal: attached renders need no store (#28)
            log.warning("the job store %s is unreachable at start (%s); serving renders that need no record, "
                        "and retrying", url.split("@")[-1], describe(exc))

    def _record(self, raw: dict[bytes, bytes]) -> JobRecord | None:
        if not raw:
            return None
        values = {k.decode(): v for k, v in raw.items()}
        return JobRecord(**{k: _decode(k, v) for k, v in values.items() if k in _TYPES})

    def _light(self, ids: list[str]) -> list[JobRecord | None]:
        """Records of `ids` without their large bytes, in one round trip (None: expired)."""
        pipe = self._r.pipeline()
        for i in ids:
            pipe.hmget(_P + "job:" + i, _LIGHT)
        return [None if row[0] is None else JobRecord(**{n: _decode(n, v) for n, v in zip(_LIGHT, row) if v is not None})
                for row in pipe.execute()]

    def create(self, record: JobRecord, *, capped: bool) -> None:
        if capped and self.max_bytes:
            if record.size > self.max_bytes:
                raise JobTooLargeError(record.size, self.max_bytes)
            used = sum(int(v) for v in self._r.hvals(_P + "sizes"))
            if used + record.size > self.max_bytes:
                raise StoreFullError(used, self.max_bytes)
        fields = {f: _encode(getattr(record, f)) for f in _TYPES}
        pipe = self._r.pipeline()
        pipe.hset(_P + "job:" + record.id, mapping=fields)  # type: ignore[arg-type]
        pipe.zadd(_P + "jobs", {record.id: record.created})
        pipe.hset(_P + "sizes", record.id, record.size)
        if record.request_id:
            pipe.set(_rid_key(record.owner, record.request_id), record.id, ex=int(self.ttl))
        pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        return self._record(self._r.hgetall(_P + "job:" + job_id))

    def peek(self, job_id: str) -> tuple[int, str, bool] | None:
        version, state, cancel = self._r.hmget(_P + "job:" + job_id, ["version", "state", "cancel_requested"])
        if version is None:
            return None
        return int(version), state.decode(), cancel not in (b"0", b"")

    def find(self, owner: str, request_id: str) -> JobRecord | None:
        job_id = self._r.get(_rid_key(owner, request_id))
        return self.get(job_id.decode()) if job_id else None

    def update(self, job_id: str, **fields: object) -> None:
        key = _P + "job:" + job_id
        fields["updated"] = time.time()
        ttl = int(self.ttl) if fields.get("state") in FINAL_STATES else 0
        pairs = [x for k, v in fields.items() for x in (k, _encode(v))]
        # One script, so that a record a restarted Redis lost is not re-made from these fields alone
        # (a hash with no id or kind, which no call could read afterwards: #28 D4).
        if not self._update(keys=[key], args=[ttl, *pairs]):
            raise JobMissingError(job_id)
        *blobs, error = self._r.hmget(key, [*BLOB_FIELDS, "error_message"])
        size = sum(len(b or b"") for b in blobs) + len(error or b"") + RECORD_OVERHEAD  # as JobRecord.size
        self._r.hset(_P + "sizes", job_id, size)

    def _ids(self, offset: int, limit: int) -> list[str]:
        return [i.decode() for i in self._r.zrevrange(_P + "jobs", offset, offset + limit - 1)]

    def list(self, owner: str | None, state: str | None, offset: int, limit: int) -> list[JobRecord]:
        out: list[JobRecord] = []
        skipped, start = 0, 0
        while len(out) < limit:  # filtered client-side: a replica's store holds a modest number of jobs
            ids = self._ids(start, 200)
            if not ids:
                break
            start += len(ids)
            for rec in self._light(ids):
                if rec is None:
                    continue  # expired
                if (owner is None or rec.owner == owner) and (state is None or rec.state == state):
                    if skipped < offset:
                        skipped += 1
                    elif len(out) < limit:
                        out.append(rec)
        return out

    def unfinished(self) -> list[JobRecord]:
        return [rec for rec in self._light(list(reversed(self._ids(0, 10_000))))
                if rec is not None and rec.state in (QUEUED, RUNNING, INTERRUPTED)]

    def claim(self, job_id: str, holder: str, server_id: str) -> bool:
        # Compare-and-set in one script: two replicas sweeping at once must not both take a job.
        return bool(self._r.eval(_CLAIM, 1, _P + "job:" + job_id, holder, server_id))

    def beat(self, server_id: str, ttl: float) -> None:
        if ttl > 0:
            self._r.set(_P + "alive:" + server_id, "1", px=int(ttl * 1000))
        else:
            self._r.delete(_P + "alive:" + server_id)

    def alive(self, server_id: str) -> bool:
        return bool(self._r.exists(_P + "alive:" + server_id))

    def expire(self) -> int:
        ids = self._ids(0, 100_000)
        pipe = self._r.pipeline()
        for i in ids:
            pipe.exists(_P + "job:" + i)
        gone = [i for i, there in zip(ids, pipe.execute()) if not there]
        if gone:
            self._r.zrem(_P + "jobs", *gone)
            self._r.hdel(_P + "sizes", *gone)
        return len(gone)

    def close(self) -> None:
        self._r.close()
