"""Jobs that outlive their call: the job store (SQLite or Redis) and what the server keeps in it."""
from .store import (CANCELLED, FAILED, FINAL_STATES, INTERRUPTED, QUEUED, RUNNING, STATES, SUCCEEDED, JobEndedError, JobNotFoundError,
                    JobRecord, JobStore, StoreFullError, open_store)

__all__ = ["JobRecord", "JobStore", "StoreFullError", "JobNotFoundError", "JobEndedError", "open_store", "QUEUED", "RUNNING",
           "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED", "STATES", "FINAL_STATES"]
