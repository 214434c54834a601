"""A schema-3 store (before Judge 2.0) opens under schema 4: its lines' verified point is their incumbent,
its experiments have no judgement yet, and the lab's scale is chosen again from its baseline."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from labmind.judge import Scale
from labmind.lab.judging import Referee
from labmind.lab.paths import LabPaths
from labmind.store import Store
from labmind.store.schema import SCHEMA_VERSION
from labmind.task import Task

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


def make_schema_3_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_3)
    now = time.time()
    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '3')")
    conn.execute("INSERT INTO lab(id, name, task_json, repo_root, task_subdir, base_commit, branch, created_at, "
                 "baseline_id, min_effect, noise_sd, settings_json) VALUES (1, 'old', '{}', '/repo', '', 'c0', "
                 "'labmind/old', ?, 1, 0.02, 0.01, '{}')", (now,))
    conn.execute("INSERT INTO experiments(id, kind, status, brain, base_commit, commit_sha, metric, metric_sd, n_runs, "
                 "created_at) VALUES (1, 'baseline', 'done', '', 'c0', 'c0', 1.0, 0.01, 3, ?)", (now,))
    conn.execute("INSERT INTO lines(id, name, incumbent_id, created_at) VALUES (1, 'line-1', 2, ?)", (now,))
    conn.execute("INSERT INTO lines(id, name, incumbent_id, created_at) VALUES (2, 'line-2', 1, ?)", (now,))
    conn.execute("INSERT INTO experiments(id, line_id, parent_id, kind, status, brain, base_commit, commit_sha, "
                 "verdict, reason, metric, n_runs, p_value, created_at, directive_json) VALUES (2, 1, 1, "
                 "'candidate', 'done', 'knobs', 'c0', 'c1', 'improved', 'p=0.001 < alpha 0.05', 0.9, 3, 0.001, ?, "
                 "?)", (now, json.dumps({"kind": "repair", "of": 1})))
    for seed, purpose, exp in ((0, "baseline", 1), (1, "baseline", 1), (2, "baseline", 1), (3, "screen", 2),
                               (4, "confirm", 2)):
        conn.execute("INSERT INTO runs(experiment_id, purpose, seed, status, outcome, metric) VALUES "
                     "(?, ?, ?, 'done', 'ok', ?)", (exp, purpose, seed, 1.0 if exp == 1 else 0.9))
    conn.commit()
    conn.close()


def test_schema_3_store_is_migrated_to_4(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 4
    path = tmp_path / ".labmind" / "lab.db"
    path.parent.mkdir()
    make_schema_3_store(path)
    # Read-only, before migration: the new fields read as their defaults.
    reader = Store.open(path, readonly=True)
    assert reader.line(1).verified_id is None and reader.experiment(2).judgement == {}
    assert reader.lab().scale is None  # type: ignore[union-attr]
    reader.close()

    store = Store.open(path)
    version = store._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)
    # Every old incumbent was confirmed (schema 3 had no provisional verdict): it is its line's verified point.
    for line in store.lines():
        assert line.verified_id == line.incumbent_id
    assert [(line.incumbent_id, line.verified_id) for line in store.lines()] == [(2, 2), (1, 1)]
    old = store.experiment(2)
    assert old.judgement == {}
    assert (old.verdict, old.metric, old.n_runs, old.p_value, old.commit_sha) == ("improved", 0.9, 3, 0.001, "c1")
    assert old.directive == {"kind": "repair", "of": 1}
    lab = store.lab()
    assert lab is not None and lab.scale is None and (lab.baseline_id, lab.min_effect, lab.noise_sd) == (1, 0.02, 0.01)
    assert [r.purpose for r in store.runs_of(2)] == ["screen", "confirm"]

    # The referee of a resumed old lab judges it: the scale it never recorded is chosen from its baseline runs.
    task = Task.model_validate({"task": {"name": "old", "editable": ["a.py"]}, "run": {"command": "x"},
                                "metric": {"name": "loss", "goal": "minimize"}})
    referee = Referee(store, task, LabPaths(tmp_path), {r.id: r for r in store.experiments()}, host=None)  # type: ignore[arg-type]
    assert referee.judge is not None and referee.judge.scale is Scale.LOG
    assert referee.panel() == [0, 1, 2] and referee.screen_seed() == 0

    # The new columns are writable and survive a reopen.
    store.update_experiment(2, judgement={"stage": "screen", "effect": 0.1})
    store.update_lab(scale="log")
    new = store.add_line("line-3", 2)
    store.update_line(1, incumbent_id=1)
    store.close()
    store = Store.open(path)
    assert store.experiment(2).judgement == {"stage": "screen", "effect": 0.1}
    assert store.lab().scale == "log"  # type: ignore[union-attr]
    assert store.line(new).verified_id == 2  # a new line starts from a verified point
    assert (store.line(1).incumbent_id, store.line(1).verified_id) == (1, 2)
    store.close()
