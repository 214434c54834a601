"""The lab's LLM call log in its store (table llm_calls): every call's role, model, tokens, dollars, latency
and truncated prompt/answer, for audit; and the full answers of successful calls, so a resumed lab re-uses
them instead of buying them again.

Brains call models from worker threads while the lab thread writes experiments, so the log has its own
connection (SQLite in WAL mode serialises the two writers; both live in the one lab process).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from labmind.llm.base import Completion
from labmind.llm.calllog import UNCAPPED_ROLES

#: Columns of llm_calls that a CallRecord fills, by attribute name.
_FIELDS = (
    "at", "spec", "model", "role", "experiment_id", "line_id", "cache_key", "status", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "latency_s", "error", "prompt",
    "response",
)  # fmt: skip


_UNCAPPED = ", ".join(f"'{role}'" for role in sorted(UNCAPPED_ROLES))


class StoreCallLog:
    """labmind.llm's CallLog over a lab store file."""

    def __init__(self, db: Path) -> None:
        self._conn = sqlite3.connect(db, isolation_level=None, timeout=60, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def record(self, rec: Any) -> None:
        values = {name: getattr(rec, name, None) for name in _FIELDS}
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "latency_s"):
            values[name] = values[name] or 0
        values["prompt"] = values["prompt"] or ""
        values["response"] = values["response"] or ""
        completion = getattr(rec, "completion", None)
        if isinstance(completion, Completion):
            completion = completion.to_dict()
        values["completion_json"] = json.dumps(completion) if completion and values["status"] == "ok" else None
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._lock:
            self._conn.execute(f"INSERT INTO llm_calls({cols}) VALUES ({marks})", tuple(values.values()))

    def cached(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT completion_json FROM llm_calls WHERE cache_key = ? AND status = 'ok' "
                "AND completion_json IS NOT NULL ORDER BY id DESC LIMIT 1", (key,)).fetchone()
        if row is None:
            return None
        try:
            return Completion.from_dict(json.loads(row["completion_json"]))
        except (TypeError, ValueError, KeyError):
            return None  # an answer this labmind cannot read back: buy it again rather than fail

    def spent_usd(self) -> float:
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(SUM(cost_usd), 0) AS s FROM llm_calls "
                                     "WHERE status != 'cached'").fetchone()
        return float(row["s"])

    def tokens_of(self, experiment_id: int) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS n FROM llm_calls "
                f"WHERE experiment_id = ? AND status != 'cached' AND role NOT IN ({_UNCAPPED})",
                (experiment_id,)).fetchone()
        return int(row["n"])
