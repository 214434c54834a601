"""The lab's durable state (SQLite, WAL, one writer)."""

from labmind.store.lock import LabLock, LabLocked
from labmind.store.rows import EventRow, ExperimentRow, LabRow, LineRow, RunRow
from labmind.store.store import Store, StoreError

__all__ = ["EventRow", "ExperimentRow", "LabLock", "LabLocked", "LabRow", "LineRow", "RunRow", "Store",
           "StoreError"]
