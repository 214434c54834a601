"""The store's schema 3, as labmind wrote it before Judge 2.0 (commit 56b6a4f), to test migrations from it.

Old stores are built from this text rather than by dropping columns from the current schema: SQLite cannot drop
a column whose definition is followed by a comment (experiments.judgement_json), and a literal stays exact.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: The whole schema 3, as labmind 56b6a4f wrote it (src/labmind/store/schema.py: SCHEMA, _TABLES_3 included).
SCHEMA_3 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS lab (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    task_json TEXT NOT NULL,
    repo_root TEXT NOT NULL,
    task_subdir TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    branch TEXT NOT NULL,
    created_at REAL NOT NULL,
    baseline_id INTEGER,
    min_effect REAL,
    noise_sd REAL,
    settings_json TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    incumbent_id INTEGER,
    status TEXT NOT NULL DEFAULT 'active',  -- active | retired
    created_at REAL NOT NULL,
    direction TEXT NOT NULL DEFAULT '',     -- what this line explores (the director's words), if anything
    note TEXT NOT NULL DEFAULT ''           -- why it was retired
);

CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    line_id INTEGER REFERENCES lines(id),
    parent_id INTEGER REFERENCES experiments(id),
    kind TEXT NOT NULL,                  -- baseline | candidate
    status TEXT NOT NULL,                -- proposing | testing | done
    brain TEXT NOT NULL DEFAULT '',
    idea_json TEXT NOT NULL DEFAULT '{}',
    base_commit TEXT,
    commit_sha TEXT,
    diff TEXT,
    changed_files TEXT NOT NULL DEFAULT '[]',
    verdict TEXT,
    reason TEXT,
    metric REAL,
    metric_sd REAL,
    ci_low REAL,
    ci_high REAL,
    n_runs INTEGER NOT NULL DEFAULT 0,
    p_value REAL,
    flags TEXT NOT NULL DEFAULT '[]',
    near_miss INTEGER NOT NULL DEFAULT 0,
    gpu_seconds REAL NOT NULL DEFAULT 0,
    brain_seconds REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    analysis TEXT,                        -- the brain's reflection on the result
    directive_json TEXT NOT NULL DEFAULT '{}'  -- why the lab asked for it: {"kind": "repair" | "combine", ...}
);
CREATE INDEX IF NOT EXISTS experiments_line ON experiments(line_id, id);
CREATE INDEX IF NOT EXISTS experiments_status ON experiments(status);
CREATE INDEX IF NOT EXISTS experiments_verdict ON experiments(verdict);

CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    purpose TEXT NOT NULL,               -- baseline | screen | confirm
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,                -- queued | running | done | interrupted
    slot TEXT,
    token TEXT,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    outcome TEXT,                        -- ok | crashed | timed_out | no_metric | bad_metric
    metric REAL,
    self_reported REAL,
    holdout REAL,                        -- the held-out evaluator's value on this run's artifacts
    secondary TEXT NOT NULL DEFAULT '{}',
    flags TEXT NOT NULL DEFAULT '[]',
    log_path TEXT,
    log_tail TEXT,
    sandbox TEXT,
    requeued_from INTEGER
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment_id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    experiment_id INTEGER,
    run_id INTEGER,
    message TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    decision TEXT NOT NULL,              -- accept | reject
    note TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL DEFAULT 'person',
    at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    spec TEXT NOT NULL,
    model TEXT NOT NULL,
    role TEXT NOT NULL,                  -- ideate | implement | repair | reflect | director | audit
    experiment_id INTEGER,
    line_id INTEGER,
    cache_key TEXT NOT NULL,
    status TEXT NOT NULL,                -- ok | error | cached
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    latency_s REAL NOT NULL DEFAULT 0,
    error TEXT,
    prompt TEXT NOT NULL DEFAULT '',     -- truncated, for audit
    response TEXT NOT NULL DEFAULT '',   -- truncated, for audit
    completion_json TEXT                 -- the whole answer of an ok call: resume re-uses it instead of re-buying
);
CREATE INDEX IF NOT EXISTS llm_calls_key ON llm_calls(cache_key);
CREATE INDEX IF NOT EXISTS llm_calls_experiment ON llm_calls(experiment_id);

CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,                  -- explore | combine | retire
    line_id INTEGER,                     -- the line it acts on (the new line, for explore)
    other_line_id INTEGER,               -- combine: the line whose win is merged in
    experiment_id INTEGER,               -- combine: the experiment it created
    reason TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{}'
);
"""



def schema_3_store(path: Path) -> sqlite3.Connection:
    """An empty store at schema 3 (the caller commits and closes the connection)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_3)
    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '3')")
    return conn
