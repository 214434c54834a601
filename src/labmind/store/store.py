"""The lab's store: SQLite in WAL mode, one writer (the lab process), any number of read-only readers.

Every state change is committed before the lab acts on it, so a killed lab resumes from the store alone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labmind.model import ExperimentStatus
from labmind.store import queries
from labmind.store.rows import (
    DecisionRow,
    EventRow,
    ExperimentRow,
    LabRow,
    LineRow,
    RunRow,
    decision_row,
    event_row,
    experiment_row,
    line_row,
    run_row,
)
from labmind.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

_JSON_COLUMNS = {"idea_json", "changed_files", "flags", "secondary", "settings_json", "directive_json", "detail_json",
                 "judgement_json"}
_EXPERIMENT_COLUMNS = {
    "line_id", "parent_id", "status", "brain", "idea_json", "base_commit", "commit_sha", "diff",
    "changed_files", "verdict", "reason", "metric", "metric_sd", "ci_low", "ci_high", "n_runs", "p_value",
    "flags", "near_miss", "slot_seconds", "brain_seconds", "error", "finished_at", "analysis", "directive_json",
    "judgement_json",
}
_RUN_COLUMNS = {
    "status", "slot", "token", "started_at", "ended_at", "exit_code", "outcome", "metric", "self_reported", "holdout",
    "secondary", "flags", "log_path", "log_tail", "sandbox",
}
_LAB_COLUMNS = {"baseline_id", "min_effect", "noise_sd", "settings_json", "scale"}
_LINE_COLUMNS = {"name", "incumbent_id", "status", "direction", "note", "verified_id"}


class StoreError(Exception):
    pass


def _encode(column: str, value: Any) -> Any:
    if column == "flags":
        return json.dumps([f.to_json() for f in value])  # findings, stored as {rule, path, line, evidence}
    return json.dumps(value) if column in _JSON_COLUMNS and not isinstance(value, str) else value


class Store:
    """Typed access to lab.db. Open with `Store.open(path)` (writer) or `Store.open(path, readonly=True)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        if readonly:
            if not path.exists():
                raise StoreError(f"no lab at {path.parent.parent} (no {path}). Start one with `labmind run`.")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10,
                                   check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise StoreError(f"{path} is not a readable labmind store ({exc}). Move it aside to start a new "
                                 "lab, or restore it from a backup.") from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, path, readonly)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            store._check_schema()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{path} is not a readable labmind store ({exc}). Move it aside to start a new lab, "
                             "or restore it from a backup.") from exc
        return store

    @classmethod
    def reading(cls, conn: sqlite3.Connection, path: Path) -> Store:
        """A read-only Store over a connection opened elsewhere (the dashboard's `queries.connect`, one per
        request); closing it stays with whoever opened the connection."""
        return cls(conn, path, readonly=True)

    @property
    def connection(self) -> sqlite3.Connection:
        """For the named read queries of `labmind.store.queries` (never for writes: they go through methods)."""
        return self._conn

    @classmethod
    def peek_lab(cls, path: Path) -> LabRow | None:
        """The lab row of the store at `path`, read-only; None when there is no readable store there."""
        if not path.exists():
            return None
        try:
            store = cls.open(path, readonly=True)
        except StoreError:
            return None
        try:
            return store.lab()
        finally:
            store.close()

    def _check_schema(self) -> None:
        has_meta = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            if self.readonly:
                raise StoreError(f"{self.path} is not a labmind store")
            self._conn.executescript(SCHEMA)
            self._conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            return
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row["value"]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer labmind (schema {version}, this one knows {SCHEMA_VERSION}). "
                "Upgrade labmind to open it.")
        if version < SCHEMA_VERSION and not self.readonly:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        if version < 1:
            raise StoreError(f"{self.path} has unknown schema version {version}")
        for step in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(step + 1),))

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes so they land together or not at all."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _exec(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        return self._conn.execute(sql, params)

    def _update(self, table: str, allowed: set[str], row_id: int | None, fields: dict[str, Any]) -> None:
        bad = set(fields) - allowed
        if bad:
            raise StoreError(f"cannot update {table}.{', '.join(sorted(bad))}")
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = tuple(_encode(k, v) for k, v in fields.items())
        where, params = ("id = ?", (row_id,)) if row_id is not None else ("id = 1", ())
        self._exec(f"UPDATE {table} SET {cols} WHERE {where}", values + params)

    # -- writes ----------------------------------------------------------------------------------

    def create_lab(self, *, name: str, task_json: str, repo_root: str, task_subdir: str, base_commit: str,
                   branch: str, settings: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO lab(id, name, task_json, repo_root, task_subdir, base_commit, branch, created_at, "
            "settings_json) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, task_json, repo_root, task_subdir, base_commit, branch, time.time(), json.dumps(settings)),
        )

    def update_lab(self, **fields: Any) -> None:
        self._update("lab", _LAB_COLUMNS, None, fields)

    def add_line(self, name: str, incumbent_id: int | None, direction: str = "") -> int:
        # A new line starts from a verified point (the baseline or a confirmed best).
        cur = self._exec("INSERT INTO lines(name, incumbent_id, verified_id, created_at, direction) "
                         "VALUES (?, ?, ?, ?, ?)", (name, incumbent_id, incumbent_id, time.time(), direction))
        return int(cur.lastrowid or 0)

    def update_line(self, line_id: int, **fields: Any) -> None:
        self._update("lines", _LINE_COLUMNS, line_id, fields)

    def add_decision(self, kind: str, reason: str, *, line_id: int | None = None, other_line_id: int | None = None,
                     experiment_id: int | None = None, detail: dict[str, Any] | None = None) -> int:
        cur = self._exec(
            "INSERT INTO decisions(at, kind, line_id, other_line_id, experiment_id, reason, detail_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), kind, line_id, other_line_id, experiment_id, reason, json.dumps(detail or {})))
        return int(cur.lastrowid or 0)

    def set_incumbent(self, line_id: int, experiment_id: int) -> None:
        self._exec("UPDATE lines SET incumbent_id = ? WHERE id = ?", (experiment_id, line_id))

    def add_experiment(self, *, kind: str, line_id: int | None, parent_id: int | None, brain: str,
                       base_commit: str | None, status: str = ExperimentStatus.PROPOSING,
                       directive: dict[str, Any] | None = None) -> int:
        cur = self._exec(
            "INSERT INTO experiments(kind, line_id, parent_id, brain, base_commit, status, created_at, "
            "directive_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, line_id, parent_id, brain, base_commit, status, time.time(), json.dumps(directive or {})),
        )
        return int(cur.lastrowid or 0)

    def update_experiment(self, experiment_id: int, **fields: Any) -> None:
        if "idea" in fields:
            fields["idea_json"] = fields.pop("idea").to_dict()
        if "judgement" in fields:
            fields["judgement_json"] = fields.pop("judgement")
        self._update("experiments", _EXPERIMENT_COLUMNS, experiment_id, fields)

    def add_run(self, *, experiment_id: int, purpose: str, seed: int, requeued_from: int | None = None) -> int:
        cur = self._exec(
            "INSERT INTO runs(experiment_id, purpose, seed, status, requeued_from) VALUES (?, ?, ?, 'queued', ?)",
            (experiment_id, purpose, seed, requeued_from),
        )
        return int(cur.lastrowid or 0)

    def update_run(self, run_id: int, **fields: Any) -> None:
        self._update("runs", _RUN_COLUMNS, run_id, fields)

    def event(self, kind: str, message: str, *, experiment_id: int | None = None, run_id: int | None = None) -> None:
        self._exec("INSERT INTO events(at, kind, experiment_id, run_id, message) VALUES (?, ?, ?, ?, ?)",
                   (time.time(), kind, experiment_id, run_id, message))

    def set_meta(self, key: str, value: str) -> None:
        """A small named value beside the tables (e.g. the current session's start and budget)."""
        self._exec("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   (key, value))

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def next_seed(self) -> int:
        """A seed never used before in this lab (fresh seeds for every run, including confirmations)."""
        row = self._conn.execute("SELECT COALESCE(MAX(seed), -1) + 1 AS s FROM runs").fetchone()
        return int(row["s"])

    # -- queries ---------------------------------------------------------------------------------

    def lab(self) -> LabRow | None:
        return queries.lab(self._conn)

    def lines(self) -> list[LineRow]:
        return [line_row(r) for r in self._conn.execute("SELECT * FROM lines ORDER BY id")]

    def line(self, line_id: int) -> LineRow:
        row = self._conn.execute("SELECT * FROM lines WHERE id = ?", (line_id,)).fetchone()
        if row is None:
            raise StoreError(f"no line {line_id}")
        return line_row(row)

    def experiment(self, experiment_id: int) -> ExperimentRow:
        row = self._conn.execute("SELECT * FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        if row is None:
            raise StoreError(f"no experiment {experiment_id} in this lab (see `labmind log`)")
        return experiment_row(row)

    def experiments(self, *, line_id: int | None = None, status: str | None = None, limit: int | None = None,
                    offset: int = 0, newest_first: bool = False) -> list[ExperimentRow]:
        where, params = [], []
        if line_id is not None:
            where.append("line_id = ?")
            params.append(line_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM experiments" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [experiment_row(r) for r in self._conn.execute(sql, params)]

    def count_candidates(self) -> int:
        return queries.candidates(self._conn)

    def counts_by_verdict(self) -> dict[str, int]:
        """Candidates by verdict (`queries.verdict_counts`)."""
        return queries.verdict_counts(self._conn)

    def runs_of(self, experiment_id: int) -> list[RunRow]:
        return [run_row(r) for r in self._conn.execute(
            "SELECT * FROM runs WHERE experiment_id = ? ORDER BY id", (experiment_id,))]

    def runs(self, *, status: str | None = None) -> list[RunRow]:
        if status is None:
            return [run_row(r) for r in self._conn.execute("SELECT * FROM runs ORDER BY id")]
        return [run_row(r) for r in self._conn.execute(
            "SELECT * FROM runs WHERE status = ? ORDER BY id", (status,))]

    def run(self, run_id: int) -> RunRow:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id}")
        return run_row(row)

    def events_of(self, experiment_id: int, kind: str) -> list[EventRow]:
        return [event_row(r) for r in self._conn.execute(
            "SELECT * FROM events WHERE experiment_id = ? AND kind = ? ORDER BY id", (experiment_id, kind))]

    def events(self, *, after_id: int = 0, limit: int = 200) -> list[EventRow]:
        return [event_row(r) for r in self._conn.execute(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]

    def add_review(self, experiment_id: int, decision: str, note: str, reviewer: str = "person") -> int:
        cur = self._exec("INSERT INTO reviews(experiment_id, decision, note, reviewer, at) VALUES (?, ?, ?, ?, ?)",
                         (experiment_id, decision, note, reviewer, time.time()))
        return int(cur.lastrowid or 0)

    def reviews(self, experiment_id: int | None = None) -> list[dict[str, Any]]:
        """People's (and, later, reviewers') decisions on flagged experiments, oldest first."""
        sql, params = "SELECT * FROM reviews", ()
        if experiment_id is not None:
            sql, params = sql + " WHERE experiment_id = ?", (experiment_id,)
        try:
            return [dict(r) for r in self._conn.execute(sql + " ORDER BY id", params)]
        except sqlite3.OperationalError:
            return []  # a store of schema 1 opened read-only: no reviews yet

    def decisions(self) -> list[DecisionRow]:
        try:
            return [decision_row(r) for r in self._conn.execute("SELECT * FROM decisions ORDER BY id")]
        except sqlite3.OperationalError:
            return []  # an older store opened read-only

    def llm_calls(self, *, experiment_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded model calls, oldest first (without the full cached answers)."""
        sql = ("SELECT id, at, spec, model, role, experiment_id, line_id, status, input_tokens, output_tokens, "
               "cache_read_tokens, cache_write_tokens, cost_usd, latency_s, error, prompt, response FROM llm_calls")
        params: list[Any] = []
        if experiment_id is not None:
            sql += " WHERE experiment_id = ?"
            params.append(experiment_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        try:
            return [dict(r) for r in self._conn.execute(sql, params)]
        except sqlite3.OperationalError:
            return []

    def llm_totals(self) -> dict[str, Any]:
        """Calls, tokens and dollars over the lab, by role; cached (re-used on resume) calls cost nothing."""
        try:
            rows = self._conn.execute(
                "SELECT role, COUNT(*) AS calls, SUM(status = 'error') AS errors, SUM(status = 'cached') AS cached, "
                "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
                "SUM(COALESCE(cost_usd, 0)) AS cost_usd, SUM(cost_usd IS NULL AND status = 'ok') AS unpriced "
                "FROM llm_calls GROUP BY role ORDER BY role").fetchall()
        except sqlite3.OperationalError:
            rows = []
        by_role = {r["role"]: {k: r[k] or 0 for k in r.keys() if k != "role"} for r in rows}  # noqa: SIM118
        total = {k: sum(v[k] for v in by_role.values()) for k in
                 ("calls", "errors", "cached", "input_tokens", "output_tokens", "cost_usd", "unpriced")}
        return {"total": total, "by_role": by_role}

    def slot_seconds(self) -> float:
        """Run time on the lab's slots over every finished run (what users see as slot-hours)."""
        return queries.slot_seconds(self._conn)
