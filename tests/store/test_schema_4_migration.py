"""A schema-4 store (experiments.gpu_seconds) opens under schema 5, where the column is named as users see it:
slot_seconds. Read-only readers of a store not migrated yet (`labmind status`, the dashboard) read it too."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from labmind.paths import LabPaths
from labmind.store import Store, queries
from labmind.store.schema import MIGRATIONS

from .old_schema import schema_3_store


def make_schema_4_store(path: Path) -> None:
    """Schema 3 as labmind wrote it, brought to 4 by its own migration step (as labmind 4 did)."""
    conn = schema_3_store(path)
    conn.executescript(MIGRATIONS[3])
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    now = time.time()
    conn.execute("INSERT INTO lab(id, name, task_json, repo_root, task_subdir, base_commit, branch, created_at, "
                 "settings_json) VALUES (1, 'old', '{}', '/repo', '', 'c0', 'labmind/old', ?, '{}')", (now,))
    conn.execute("INSERT INTO experiments(id, kind, status, brain, metric, n_runs, gpu_seconds, created_at, "
                 "idea_json) VALUES (1, 'baseline', 'done', '', 1.0, 3, 42.5, ?, '{\"title\": \"base\"}')", (now,))
    conn.commit()
    conn.close()


def test_schema_4_store_renames_gpu_seconds_to_slot_seconds(tmp_path: Path) -> None:
    path = LabPaths(tmp_path).db
    make_schema_4_store(path)
    reader = Store.open(path, readonly=True)
    assert reader.experiment(1).slot_seconds == 42.5  # read-only: not migrated, read from the old column
    _, rows = queries.experiments_page(reader.connection, limit=10, offset=0)
    assert [r["slot_seconds"] for r in rows] == [42.5]
    reader.close()

    store = Store.open(path)
    columns = {r[1] for r in store.connection.execute("PRAGMA table_info(experiments)")}
    assert "slot_seconds" in columns and "gpu_seconds" not in columns
    assert store.experiment(1).slot_seconds == 42.5
    store.update_experiment(1, slot_seconds=50.0)
    assert store.experiment(1).slot_seconds == 50.0
    store.close()
    raw = sqlite3.connect(path)
    assert int(raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) >= 5
    raw.close()
