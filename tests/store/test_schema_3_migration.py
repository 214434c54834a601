"""A schema-3 store (before Judge 2.0) opens under schema 4: its lines' verified point is their incumbent,
its experiments have no judgement yet, and the lab's scale is chosen again from its baseline."""

from __future__ import annotations

import json
import time
from pathlib import Path

from labmind.judge import Scale
from labmind.lab.judging import Referee
from labmind.lab.ledger import Ledger
from labmind.paths import LabPaths
from labmind.store import Store
from labmind.store.schema import SCHEMA_VERSION
from labmind.task import Task

from .old_schema import schema_3_store


def make_schema_3_store(path: Path) -> None:
    conn = schema_3_store(path)
    now = time.time()
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
    assert SCHEMA_VERSION >= 4  # migrated through 4 to the current schema
    path = tmp_path / ".labmind" / "lab.db"
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
    referee = Referee(Ledger(store, task, listener=None), task, LabPaths(tmp_path), host=None)  # type: ignore[arg-type]
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
