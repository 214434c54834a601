"""The record of every model call, and the log that keeps them (the lab's store implements it in SQLite).

Contract for every CallLog, so that budgets survive resume and nothing is counted twice:
- `record` appends; records are never changed afterwards.
- `cached(key)` returns the Completion of the latest record with that key and status "ok", else None.
- `spent_usd()` sums `cost_usd` over all records (None counts 0); `tokens_of(e)` sums input + output tokens
  over the records of experiment `e`. Only "ok" records carry tokens or cost: "cached" records are written
  with zeros (nothing was bought), "error" records too (the provider reported no usage).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from labmind.llm.base import Completion

CallStatus = Literal["ok", "error", "cached"]
TEXT_LIMIT = 8000  # characters kept of a call's prompt and response text


@dataclass(frozen=True)
class CallRecord:
    at: float  # unix time the call started
    spec: str
    model: str
    role: str
    experiment_id: int | None
    line_id: int | None
    cache_key: str
    status: CallStatus
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    error: str = ""
    prompt: str = ""  # system + messages, readable, at most TEXT_LIMIT characters
    response: str = ""  # text + tool calls, readable, at most TEXT_LIMIT characters
    completion: dict[str, Any] | None = field(default=None)  # Completion.to_dict(), for "ok" records

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Roles whose calls do not count against an experiment's token cap (they still cost dollars): reviewing and
#: reflecting on an experiment are not part of making it, and a cap spent by its implementation must not
#: leave it unaudited or without its lesson.
UNCAPPED_ROLES = frozenset({"audit", "reflect"})


class CallLog(Protocol):
    def record(self, rec: CallRecord) -> None: ...

    def cached(self, key: str) -> Completion | None: ...

    def spent_usd(self) -> float: ...

    def tokens_of(self, experiment_id: int) -> int: ...


class MemoryCallLog:
    """A CallLog in memory: the default for scripts and tests (nothing survives the process)."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._ok_by_key: dict[str, CallRecord] = {}
        self._lock = threading.Lock()

    def record(self, rec: CallRecord) -> None:
        with self._lock:
            self._records.append(rec)
            if rec.status == "ok" and rec.completion is not None:
                self._ok_by_key[rec.cache_key] = rec

    def cached(self, key: str) -> Completion | None:
        with self._lock:
            rec = self._ok_by_key.get(key)
        return Completion.from_dict(rec.completion) if rec and rec.completion is not None else None

    def spent_usd(self) -> float:
        with self._lock:
            return sum(r.cost_usd or 0.0 for r in self._records)

    def tokens_of(self, experiment_id: int) -> int:
        with self._lock:
            return sum(r.input_tokens + r.output_tokens for r in self._records
                       if r.experiment_id == experiment_id and r.role not in UNCAPPED_ROLES)

    @property
    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)
