"""A schema-4 store (flags as "rule: evidence" strings) opens under schema 5 with its flags as findings
{rule, path, line, evidence}; read-only, before any writer migrated it, its strings read the same way."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from labmind.findings import Finding
from labmind.store import Store
from labmind.store.schema import MIGRATIONS

from .old_schema import schema_3_store

OLD_FLAGS = ["timer_patch: train.py:12: time.time = fake", "metric_repeated",
             "beyond_bound: loss 0.1 beats the declared bound 0.2, which no honest run can reach"]
EXPECTED = [Finding("timer_patch", evidence="train.py:12: time.time = fake"), Finding("metric_repeated"),
            Finding("beyond_bound", evidence="loss 0.1 beats the declared bound 0.2, which no honest run can reach")]


def make_schema_4_store(path: Path) -> None:
    conn = schema_3_store(path)
    for statement in MIGRATIONS[3].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    now = time.time()
    conn.execute("INSERT INTO lab(id, name, task_json, repo_root, task_subdir, base_commit, branch, created_at) "
                 "VALUES (1, 'old', '{}', '/repo', '', 'c0', 'labmind/old', ?)", (now,))
    conn.execute("INSERT INTO experiments(id, kind, status, brain, base_commit, created_at, flags) VALUES "
                 "(1, 'candidate', 'done', 'knobs', 'c0', ?, ?)", (now, json.dumps(OLD_FLAGS)))
    conn.execute("INSERT INTO experiments(id, kind, status, brain, base_commit, created_at) VALUES "
                 "(2, 'candidate', 'done', 'knobs', 'c0', ?)", (now,))
    conn.execute("INSERT INTO runs(experiment_id, purpose, seed, status, flags) VALUES (1, 'screen', 0, 'done', ?)",
                 (json.dumps(["slot_lost: the node died"]),))
    conn.commit()
    conn.close()


def test_schema_4_flags_become_findings(tmp_path: Path) -> None:
    path = tmp_path / ".labmind" / "lab.db"
    make_schema_4_store(path)
    reader = Store.open(path, readonly=True)  # not migrated: the strings are read as findings all the same
    assert reader.experiment(1).flags == EXPECTED
    reader.close()

    store = Store.open(path)
    assert store.experiment(1).flags == EXPECTED
    assert store.experiment(2).flags == []
    assert store.runs_of(1)[0].flags == [Finding("slot_lost", evidence="the node died")]
    # Stored as objects, as every --json output shows them.
    raw = sqlite3.connect(path).execute("SELECT flags FROM experiments WHERE id = 1").fetchone()[0]
    assert json.loads(raw)[0] == {"rule": "timer_patch", "path": None, "line": None,
                                  "evidence": "train.py:12: time.time = fake"}
    # A finding's text is what the old string said.
    assert [f.text() for f in store.experiment(1).flags] == OLD_FLAGS
    store.close()


def test_finding_json_round_trip() -> None:
    found = Finding("shadow_module", path="json.py", evidence="new file json.py shadows the standard-library module "
                    "json", family="scope", severity="reject", explanation="x")
    assert Finding.from_json(found.to_json()) == found
    assert found.to_json() == {"rule": "shadow_module", "path": "json.py", "line": None,
                               "evidence": "new file json.py shadows the standard-library module json"}
    assert found.text() == "shadow_module: new file json.py shadows the standard-library module json"
    assert Finding("timer_patch", path="train.py", line=3, evidence="t = 0").text() == "timer_patch: train.py:3: t = 0"
