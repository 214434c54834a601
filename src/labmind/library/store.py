"""The library: one SQLite file per user, written by every lab of that user, possibly at the same time.

Concurrency: WAL mode, a long busy timeout, and every write in one `BEGIN IMMEDIATE` transaction, so two lab
processes that record insights at once queue on SQLite's lock instead of failing or losing a row. Recording is
idempotent by the insight's `key` (a resumed lab never writes the same insight twice).

Retrieval: FTS5 with BM25 over title, body, task, family, tags and the diff excerpt, then a ranking that puts
the same task family first, validated before proposed, and down-ranks insights that keep failing where they
are applied (their hit rate, with a prior of one hit in two). Retracted insights are never retrieved.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labmind.library.model import Insight, Kind, Status, dumps

ENV = "LABMIND_LIBRARY"
OFF = "off"

SCHEMA = """
CREATE TABLE IF NOT EXISTS insights (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    family TEXT NOT NULL,
    task TEXT NOT NULL,
    data TEXT NOT NULL,
    applications INTEGER NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS insights_family ON insights(family, status);
CREATE VIRTUAL TABLE IF NOT EXISTS insights_fts USING fts5(title, body, task, family, tags, diff,
    tokenize = 'porter unicode61');
CREATE TABLE IF NOT EXISTS applications (
    insight_id INTEGER NOT NULL REFERENCES insights(id),
    lab_dir TEXT NOT NULL,
    experiment_id INTEGER NOT NULL,
    outcome TEXT NOT NULL,          -- hit | miss
    verdict TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (insight_id, lab_dir, experiment_id)
);
"""

#: Auto-retraction: at least this many applications elsewhere, and a hit rate below 1/2 at 95% confidence.
RETRACT_MIN_APPLICATIONS = 5


class LibraryError(Exception):
    pass


def default_path() -> Path:
    """`$LABMIND_LIBRARY`, else `$XDG_DATA_HOME/labmind/library.db` (~/.local/share/labmind/library.db)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "labmind" / "library.db"


def resolve(spec: str | None) -> Path | None:
    """The library a `--library` option names: a path, `off` (no library), or None (the default)."""
    if spec is None or spec == "":
        env = os.environ.get(ENV)
        if env == OFF:
            return None
        return default_path()
    if spec == OFF:
        return None
    return Path(spec).expanduser().resolve()


@dataclass(frozen=True)
class Hit:
    insight: Insight
    score: float  # higher is more relevant
    why: str  # "same family", "text match", ...


_TERM = re.compile(r"[A-Za-z0-9_]{2,}")


def fts_query(text: str, limit: int = 40) -> str:
    """An FTS5 OR-query of the words in `text` (quoted: user text is never FTS5 syntax)."""
    seen: list[str] = []
    for word in _TERM.findall(text.lower()):
        if word not in seen:
            seen.append(word)
    return " OR ".join(f'"{w}"' for w in seen[:limit])


def _family_match(a: str, b: str) -> int:
    """2: the same family; 1: the same kind of task (`kernel/…` and `kernel/…`); 0: unrelated."""
    if a == b:
        return 2
    return 1 if a.split("/")[0] == b.split("/")[0] and "/" in a and "/" in b else 0


def _wal(conn: sqlite3.Connection, wait_s: float = 60.0) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once, without its busy handler, when another
    process holds the file while this one changes the journal mode (two labs opening a new library at the
    same moment, seen in CI): wait and try again, as the busy timeout would."""
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(0.5, delay * 2)


class Library:
    """Typed access to library.db. Thread-safe within a process; process-safe through SQLite's locks."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly:
            if not path.exists():
                raise LibraryError(f"no library at {path}. Insights are recorded there by `labmind run`; "
                                   f"pass --library PATH to read another one.")
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30,
                                         check_same_thread=False)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
                self._conn.execute("PRAGMA busy_timeout=60000")
                _wal(self._conn)
                self._conn.execute("PRAGMA synchronous=NORMAL")
                # One script, IF NOT EXISTS throughout: two labs creating the library at once queue on its lock.
                self._conn.executescript(SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise LibraryError(f"cannot open the library at {path} ({exc}); pass --library PATH (or set "
                                   f"{ENV}) to use another file, or --library off") from exc
        self._conn.row_factory = sqlite3.Row

    @classmethod
    def open(cls, path: Path | None = None, *, readonly: bool = False) -> Library:
        return cls(path or default_path(), readonly=readonly)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise LibraryError(f"the library at {self.path} was opened read-only")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------------------------

    def record(self, insight: Insight) -> tuple[Insight, bool]:
        """Add an insight unless one with its key exists. Returns the stored insight and whether it is new."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT id FROM insights WHERE key = ?", (insight.key,)).fetchone()
            if row is not None:
                return self._get(int(row["id"])), False
            stored = insight.with_(created_at=insight.created_at or now, updated_at=now, id=None)
            cur = conn.execute(
                "INSERT INTO insights (key, kind, status, family, task, data, applications, hits, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (stored.key, stored.kind.value, stored.status.value, stored.family, stored.task, dumps(stored),
                 stored.applications, stored.hits, stored.created_at, stored.updated_at))
            new_id = int(cur.lastrowid or 0)
            conn.execute("INSERT INTO insights_fts (rowid, title, body, task, family, tags, diff) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (new_id, stored.title, stored.body, stored.task, stored.family.replace("/", " "),
                          " ".join(stored.tags), stored.diff_excerpt))
            return self._get(new_id), True

    def set_status(self, insight_id: int, status: Status, reason: str) -> Insight:
        with self._write() as conn:
            current = self._get(insight_id)
            updated = current.with_(status=status, status_reason=reason, updated_at=time.time())
            conn.execute("UPDATE insights SET status = ?, data = ?, updated_at = ? WHERE id = ?",
                         (status.value, dumps(updated), updated.updated_at, insight_id))
            return self._get(insight_id)

    def apply(self, insight_id: int, *, lab_dir: str, experiment_id: int, verdict: str, hit: bool) -> Insight | None:
        """Record that a judged experiment applied an insight. Once per (insight, lab, experiment). An
        application in another lab that ends `improved` validates a proposed insight; applications that keep
        failing retract it (see `contradicted`). Returns the insight, or None when it does not exist."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM insights WHERE id = ?", (insight_id,)).fetchone() is None:
                return None
            cur = conn.execute("INSERT OR IGNORE INTO applications (insight_id, lab_dir, experiment_id, outcome, "
                               "verdict, at) VALUES (?, ?, ?, ?, ?, ?)",
                               (insight_id, lab_dir, experiment_id, "hit" if hit else "miss", verdict, time.time()))
            current = self._get(insight_id)
            if cur.rowcount == 0:
                return current
            apps, hits = current.applications + 1, current.hits + int(hit)
            status, reason = current.status, current.status_reason
            elsewhere = lab_dir != current.provenance.lab_dir
            if hit and elsewhere and status == Status.PROPOSED:
                status, reason = Status.VALIDATED, f"confirmed again in {lab_dir} (exp {experiment_id} improved)"
            elif status != Status.RETRACTED and contradicted(apps, hits):
                status = Status.RETRACTED
                reason = (f"contradicted: {hits} of {apps} applications improved, a hit rate below 1/2 at 95% "
                          "confidence")
            updated = current.with_(applications=apps, hits=hits, status=status, status_reason=reason,
                                    updated_at=time.time())
            conn.execute("UPDATE insights SET applications = ?, hits = ?, status = ?, data = ?, updated_at = ? "
                         "WHERE id = ?", (apps, hits, status.value, dumps(updated), updated.updated_at, insight_id))
            return self._get(insight_id)

    def import_insight(self, insight: Insight) -> tuple[Insight, bool]:
        """Import (JSONL from another library): kept with its status and record; new id here."""
        return self.record(insight)

    # -- reading -------------------------------------------------------------------------------------------

    def _get(self, insight_id: int) -> Insight:
        row = self._conn.execute("SELECT * FROM insights WHERE id = ?", (insight_id,)).fetchone()
        if row is None:
            raise LibraryError(f"no insight #{insight_id} in {self.path}; `labmind library list` shows them")
        return self._insight(row)

    @staticmethod
    def _insight(row: sqlite3.Row) -> Insight:
        data = json.loads(row["data"])
        return Insight.from_dict(data).with_(id=int(row["id"]), status=Status(row["status"]),
                                             applications=int(row["applications"]), hits=int(row["hits"]))

    def get(self, insight_id: int) -> Insight:
        with self._lock:
            return self._get(insight_id)

    def all(self, *, status: Status | None = None, kind: Kind | None = None, family: str | None = None,
            include_retracted: bool = True) -> list[Insight]:
        sql, args = "SELECT * FROM insights WHERE 1", []
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        elif not include_retracted:
            sql += " AND status != 'retracted'"
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind.value)
        if family is not None:
            sql += " AND family = ?"
            args.append(family)
        with self._lock:
            return [self._insight(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def applications_of(self, insight_id: int) -> list[dict[str, object]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM applications WHERE insight_id = ? ORDER BY at", (insight_id,))
            return [dict(r) for r in rows]

    def search(self, text: str, *, family: str | None = None, limit: int = 10,
               kinds: tuple[Kind, ...] = (Kind.INSIGHT, Kind.DEAD_END)) -> list[Hit]:
        """The most relevant live insights for `text` (BM25), the same family first (see the module doc).
        With a family, its insights are candidates even without a word in common."""
        query = fts_query(text)
        bm25: dict[int, float] = {}
        with self._lock:
            if query:
                for row in self._conn.execute("SELECT rowid, bm25(insights_fts) AS s FROM insights_fts "
                                              "WHERE insights_fts MATCH ? ORDER BY s LIMIT ?",
                                              (query, max(200, 4 * limit))):
                    bm25[int(row["rowid"])] = -float(row["s"])  # bm25() is lower-is-better; flip it
            ids = set(bm25)
            if family:
                top = family.split("/")[0]
                ids |= {int(r["id"]) for r in self._conn.execute(
                    "SELECT id FROM insights WHERE family = ? OR family LIKE ?", (family, f"{top}/%"))}
            found = [self._get(i) for i in sorted(ids)]
        hits = []
        for ins in found:
            if ins.status == Status.RETRACTED or ins.kind not in kinds:
                continue
            fam = _family_match(ins.family, family) if family else 0
            text_score = bm25.get(ins.id or -1, 0.0)
            # The hit rate with a prior of one hit in two: an untested insight counts 1/2, 0 of 4 counts 1/6.
            rate = (ins.hits + 1) / (ins.applications + 2)
            score = 10.0 * fam + (3.0 if ins.status == Status.VALIDATED else 0.0) + text_score + 4.0 * rate
            why = ["same family" if fam == 2 else "related family" if fam == 1 else "",
                   "text match" if ins.id in bm25 else "", ins.status.value]
            hits.append(Hit(ins, score, ", ".join(w for w in why if w)))
        hits.sort(key=lambda h: (-h.score, -(h.insight.id or 0)))
        return hits[:limit]


def contradicted(applications: int, hits: int) -> bool:
    """At least RETRACT_MIN_APPLICATIONS applications and P(≤ hits | p = 1/2) < 0.05 (one-sided binomial)."""
    if applications < RETRACT_MIN_APPLICATIONS:
        return False
    from math import comb

    tail = sum(comb(applications, k) for k in range(hits + 1)) / 2**applications
    return tail < 0.05
