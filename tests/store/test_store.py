"""The lab store: typed rows, WAL, read-only readers, schema versions, seeds, transactions and the lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labmind.findings import Finding
from labmind.model import Idea
from labmind.store import LabLock, LabLocked, Store, StoreError
from labmind.store.lock import holder_pid
from labmind.store.schema import SCHEMA_VERSION

from .old_schema import schema_3_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / ".labmind" / "lab.db"


@pytest.fixture
def store(db: Path):
    s = Store.open(db)
    yield s
    s.close()


def make_lab(store: Store) -> None:
    store.create_lab(name="tiny", task_json='{"task": 1}', repo_root="/repo", task_subdir="task",
                     base_commit="abc123", branch="main", settings={"policy": "tree", "slots": [0, 1]})


# -- round trips --------------------------------------------------------------------------------


def test_new_store_is_empty(store: Store) -> None:
    assert store.lab() is None
    assert store.lines() == []
    assert store.experiments() == []
    assert store.runs() == []
    assert store.count_candidates() == 0
    assert store.counts_by_verdict() == {}
    assert store.slot_seconds() == 0.0


def test_lab_round_trip(store: Store) -> None:
    before = time.time()
    make_lab(store)
    lab = store.lab()
    assert lab is not None
    assert (lab.name, lab.task_json, lab.repo_root, lab.task_subdir, lab.base_commit, lab.branch) == (
        "tiny", '{"task": 1}', "/repo", "task", "abc123", "main")
    assert lab.settings == {"policy": "tree", "slots": [0, 1]}
    assert lab.baseline_id is None and lab.min_effect is None and lab.noise_sd is None
    assert before <= lab.created_at <= time.time()
    store.update_lab(baseline_id=1, min_effect=0.02, noise_sd=0.01, settings_json={"policy": "greedy"})
    lab = store.lab()
    assert lab is not None
    assert (lab.baseline_id, lab.min_effect, lab.noise_sd) == (1, 0.02, 0.01)
    assert lab.settings == {"policy": "greedy"}


def test_second_lab_row_is_refused(store: Store) -> None:
    make_lab(store)
    with pytest.raises(sqlite3.IntegrityError):
        make_lab(store)


def test_update_rejects_unknown_columns(store: Store) -> None:
    make_lab(store)
    with pytest.raises(StoreError, match=r"lab\.name"):
        store.update_lab(name="x")
    e = store.add_experiment(kind="candidate", line_id=None, parent_id=None, brain="b", base_commit=None)
    with pytest.raises(StoreError, match=r"experiments\.kind"):
        store.update_experiment(e, kind="baseline")
    r = store.add_run(experiment_id=e, purpose="screen", seed=0)
    with pytest.raises(StoreError, match=r"runs\.seed"):
        store.update_run(r, seed=5)


def test_lines_round_trip(store: Store) -> None:
    a = store.add_line("main", None)
    b = store.add_line("alt", 7)
    assert b == a + 1
    store.set_incumbent(a, 3)
    lines = store.lines()
    assert [(ln.id, ln.name, ln.incumbent_id, ln.status) for ln in lines] == [
        (a, "main", 3, "active"), (b, "alt", 7, "active")]
    assert store.line(b).incumbent_id == 7
    with pytest.raises(StoreError, match="no line 99"):
        store.line(99)


def test_experiment_round_trip_with_json_columns(store: Store) -> None:
    line = store.add_line("main", None)
    base = store.add_experiment(kind="baseline", line_id=line, parent_id=None, brain="", base_commit="c0",
                                status="testing")
    e = store.add_experiment(kind="candidate", line_id=line, parent_id=base, brain="knobs", base_commit="c0")
    row = store.experiment(e)
    assert (row.kind, row.status, row.brain, row.parent_id, row.line_id) == (
        "candidate", "proposing", "knobs", base, line)
    assert row.idea == Idea(title="")
    assert row.changed_files == [] and row.flags == [] and row.near_miss is False
    assert row.n_runs == 0 and row.finished_at is None

    idea = Idea(title="lower lr", hypothesis="less noise", rationale="r", expected_effect="-0.01",
                params={"lr": 0.001, "opt": "adam", "layers": [1, 2]})
    store.update_experiment(e, idea=idea, changed_files=["task/train.py", "task/ü.py"], flags=[Finding("self_report")],
                            verdict="improved", reason="p=0.01", metric=1.25, metric_sd=0.1, ci_low=1.1,
                            ci_high=1.4, n_runs=3, p_value=0.01, near_miss=True, slot_seconds=12.5,
                            brain_seconds=2.0, status="done", finished_at=123.0, commit_sha="c1",
                            diff="--- a\n+++ b\n")
    row = store.experiment(e)
    assert row.idea == idea
    assert row.idea.params == {"lr": 0.001, "opt": "adam", "layers": [1, 2]}
    assert row.changed_files == ["task/train.py", "task/ü.py"]
    assert row.flags == [Finding("self_report")]
    assert row.near_miss is True
    assert (row.verdict, row.metric, row.n_runs, row.p_value, row.status) == (
        "improved", 1.25, 3, 0.01, "done")
    assert (row.commit_sha, row.diff, row.finished_at) == ("c1", "--- a\n+++ b\n", 123.0)
    past = row.past("tail")
    assert (past.id, past.line_id, past.parent_id, past.verdict, past.metric, past.log_tail) == (
        e, line, base, "improved", 1.25, "tail")
    assert past.idea == idea


def test_experiment_queries(store: Store) -> None:
    l1, l2 = store.add_line("a", None), store.add_line("b", None)
    ids = [store.add_experiment(kind="candidate", line_id=ln, parent_id=None, brain="x", base_commit=None)
           for ln in (l1, l2, l1, l1)]
    store.update_experiment(ids[2], status="done")
    assert [e.id for e in store.experiments(line_id=l1)] == [ids[0], ids[2], ids[3]]
    assert [e.id for e in store.experiments(status="done")] == [ids[2]]
    assert [e.id for e in store.experiments(line_id=l1, status="proposing")] == [ids[0], ids[3]]
    assert [e.id for e in store.experiments(newest_first=True, limit=2)] == [ids[3], ids[2]]
    assert [e.id for e in store.experiments(limit=2, offset=1)] == [ids[1], ids[2]]
    with pytest.raises(StoreError, match="no experiment 999"):
        store.experiment(999)


def test_run_round_trip(store: Store) -> None:
    e = store.add_experiment(kind="candidate", line_id=None, parent_id=None, brain="x", base_commit=None)
    r = store.add_run(experiment_id=e, purpose="screen", seed=41)
    run = store.run(r)
    assert (run.experiment_id, run.purpose, run.seed, run.status, run.requeued_from) == (
        e, "screen", 41, "queued", None)
    assert run.secondary == {} and run.flags == [] and run.seconds == 0.0
    store.update_run(r, status="done", slot="gpu0", token="tok", started_at=100.0, ended_at=130.5,
                     exit_code=0, outcome="ok", metric=0.5, self_reported=0.49,
                     secondary={"mem_gb": 3.5, "tok/s": 1e4},
                     flags=[Finding("metric_mismatch")], log_path="/l/1.log", log_tail="done", sandbox="bwrap")
    run = store.run(r)
    assert run.secondary == {"mem_gb": 3.5, "tok/s": 1e4}
    assert run.flags == [Finding("metric_mismatch")]
    assert (run.status, run.slot, run.token, run.exit_code, run.outcome, run.metric, run.self_reported) == (
        "done", "gpu0", "tok", 0, "ok", 0.5, 0.49)
    assert (run.log_path, run.log_tail, run.sandbox) == ("/l/1.log", "done", "bwrap")
    assert run.seconds == pytest.approx(30.5)
    r2 = store.add_run(experiment_id=e, purpose="screen", seed=42, requeued_from=r)
    assert store.run(r2).requeued_from == r
    assert [x.id for x in store.runs_of(e)] == [r, r2]
    assert [x.id for x in store.runs(status="queued")] == [r2]
    assert [x.id for x in store.runs()] == [r, r2]
    assert store.slot_seconds() == pytest.approx(30.5)
    with pytest.raises(StoreError, match="no run 999"):
        store.run(999)


def test_run_needs_existing_experiment(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.add_run(experiment_id=12345, purpose="screen", seed=0)


def test_events(store: Store) -> None:
    e = store.add_experiment(kind="candidate", line_id=None, parent_id=None, brain="x", base_commit=None)
    store.event("start", "lab started")
    store.event("verdict", "improved", experiment_id=e, run_id=None)
    events = store.events()
    assert [(ev.kind, ev.message, ev.experiment_id) for ev in events] == [
        ("start", "lab started", None), ("verdict", "improved", e)]
    assert [ev.id for ev in store.events(after_id=events[0].id)] == [events[1].id]
    assert len(store.events(limit=1)) == 1


# -- seeds and counts ---------------------------------------------------------------------------


def test_next_seed_increases_and_never_repeats(store: Store) -> None:
    e = store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit=None)
    assert store.next_seed() == 0
    seen = []
    for _ in range(6):
        seed = store.next_seed()
        seen.append(seed)
        store.add_run(experiment_id=e, purpose="baseline", seed=seed)
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)
    store.add_run(experiment_id=e, purpose="confirm", seed=100)
    assert store.next_seed() == 101
    assert store.next_seed() not in {r.seed for r in store.runs()}


def test_counts_by_verdict_counts_only_candidates(store: Store) -> None:
    base = store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit=None)
    store.update_experiment(base, verdict="improved")
    for verdict in ("improved", "not_improved", "not_improved", None, "crashed"):
        e = store.add_experiment(kind="candidate", line_id=None, parent_id=None, brain="x", base_commit=None)
        if verdict:
            store.update_experiment(e, verdict=verdict)
    assert store.counts_by_verdict() == {"crashed": 1, "improved": 1, "not_improved": 2}
    assert store.count_candidates() == 5


# -- transactions -------------------------------------------------------------------------------


def test_transaction_commits(store: Store, db: Path) -> None:
    with store.transaction():
        store.add_line("a", None)
        store.add_line("b", None)
    reader = Store.open(db, readonly=True)
    try:
        assert [ln.name for ln in reader.lines()] == ["a", "b"]
    finally:
        reader.close()


def test_transaction_rolls_back_on_exception(store: Store) -> None:
    store.add_line("kept", None)
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.add_line("lost1", None)
        store.add_experiment(kind="candidate", line_id=None, parent_id=None, brain="x", base_commit=None)
        raise RuntimeError("boom")
    assert [ln.name for ln in store.lines()] == ["kept"]
    assert store.experiments() == []
    # the connection is usable again afterwards
    with store.transaction():
        store.add_line("after", None)
    assert [ln.name for ln in store.lines()] == ["kept", "after"]


# -- WAL, readers, schema -----------------------------------------------------------------------


def test_wal_mode(store: Store, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION)
    finally:
        conn.close()


def test_readonly_sees_committed_rows_and_cannot_write(store: Store, db: Path) -> None:
    make_lab(store)
    store.add_line("main", None)
    reader = Store.open(db, readonly=True)
    try:
        assert reader.readonly
        lab = reader.lab()
        assert lab is not None and lab.name == "tiny"
        assert [ln.name for ln in reader.lines()] == ["main"]
        # later commits of the (still open) writer are visible to the reader
        e = store.add_experiment(kind="candidate", line_id=1, parent_id=None, brain="x", base_commit=None)
        assert [x.id for x in reader.experiments()] == [e]
        with pytest.raises(StoreError, match="read-only"):
            reader.add_line("nope", None)
        with pytest.raises(StoreError, match="read-only"):
            reader.update_experiment(e, verdict="improved")
        with pytest.raises(StoreError, match="read-only"):
            reader.event("x", "y")
        with pytest.raises(sqlite3.OperationalError):
            reader._conn.execute("INSERT INTO lines(name, created_at) VALUES ('raw', 0)")
        assert [ln.name for ln in store.lines()] == ["main"]
        assert store.experiment(e).verdict is None
    finally:
        reader.close()


def test_readonly_after_writer_closed(db: Path) -> None:
    writer = Store.open(db)
    writer.add_line("main", None)
    writer.close()
    reader = Store.open(db, readonly=True)
    try:
        assert [ln.name for ln in reader.lines()] == ["main"]
    finally:
        reader.close()


def test_readonly_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="labmind run"):
        Store.open(tmp_path / ".labmind" / "lab.db", readonly=True)


def test_readonly_on_foreign_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not a labmind store"):
        Store.open(path, readonly=True)


def test_reopen_keeps_data(db: Path) -> None:
    s = Store.open(db)
    make_lab(s)
    s.close()
    s = Store.open(db)
    try:
        lab = s.lab()
        assert lab is not None and lab.name == "tiny"
    finally:
        s.close()


@pytest.mark.parametrize("readonly", [False, True])
def test_newer_schema_version_refused(db: Path, readonly: bool) -> None:
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        Store.open(db, readonly=readonly)
    msg = str(info.value)
    assert "newer labmind" in msg
    assert "Upgrade labmind" in msg
    assert str(SCHEMA_VERSION + 1) in msg


# -- the lab lock -------------------------------------------------------------------------------


def test_lock_excludes_second_holder(tmp_path: Path) -> None:
    path = tmp_path / ".labmind" / "lock"
    first = LabLock(path)
    first.acquire()
    try:
        assert path.read_text() == str(os.getpid())
        assert holder_pid(path) == os.getpid()
        with pytest.raises(LabLocked) as info:
            LabLock(path).acquire()
        assert info.value.pid == os.getpid()
        assert f"process {os.getpid()}" in str(info.value)
        assert str(path) in str(info.value)
    finally:
        first.release()
    assert holder_pid(path) is None
    with LabLock(path):
        assert holder_pid(path) == os.getpid()
    assert holder_pid(path) is None


def test_holder_pid_none_when_free(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    assert holder_pid(path) is None  # no file
    path.write_text("12345")  # stale pid from a dead holder
    assert holder_pid(path) is None


def test_lock_release_is_idempotent(tmp_path: Path) -> None:
    lock = LabLock(tmp_path / "lock")
    lock.acquire()
    lock.release()
    lock.release()
    with LabLock(tmp_path / "lock"):
        pass


_HOLDER = """
import sys, time
from pathlib import Path
from labmind.store.lock import LabLock
lock = LabLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_across_processes_and_release_on_kill(tmp_path: Path) -> None:
    path = tmp_path / ".labmind" / "lock"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        assert holder_pid(path) == child.pid
        with pytest.raises(LabLocked) as info:
            LabLock(path).acquire()
        assert info.value.pid == child.pid
        assert f"process {child.pid}" in str(info.value)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()
    assert holder_pid(path) is None
    with LabLock(path):
        assert holder_pid(path) == os.getpid()


SCHEMA_2_ADDITIONS = ["DROP TABLE reviews", "ALTER TABLE runs DROP COLUMN holdout"]
SCHEMA_3_ADDITIONS = [
    "DROP TABLE llm_calls", "DROP TABLE decisions", "ALTER TABLE lines DROP COLUMN direction",
    "ALTER TABLE lines DROP COLUMN note", "ALTER TABLE experiments DROP COLUMN analysis",
    "ALTER TABLE experiments DROP COLUMN directive_json",
]


def test_schema_2_store_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    conn = schema_3_store(path)
    conn.execute("INSERT INTO lab(id, name, task_json, repo_root, task_subdir, base_commit, branch, created_at) "
                 "VALUES (1, 'x', '{}', '/', '', 'c', 'b', 0)")
    line = conn.execute("INSERT INTO lines(name, incumbent_id, created_at) VALUES ('line-1', NULL, 0)").lastrowid
    exp = conn.execute("INSERT INTO experiments(kind, line_id, brain, base_commit, status, created_at) "
                       "VALUES ('candidate', ?, 'knobs', 'c', 'proposing', 0)", (line,)).lastrowid
    assert line is not None and exp is not None
    for statement in SCHEMA_3_ADDITIONS:  # what schema 2 did not have
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    reader = Store.open(path, readonly=True)
    old = reader.experiment(exp)
    assert (old.analysis, old.directive, reader.line(line).direction) == (None, {}, "")
    reader.close()
    store = Store.open(path)
    store.update_experiment(exp, analysis="lr too high", directive_json={"kind": "repair", "of": 1})
    store.update_line(line, direction="try warmup", status="retired", note="stagnant")
    store.add_decision("retire", "no gain in 8 experiments", line_id=line)
    row = store.experiment(exp)
    assert (row.analysis, row.directive, row.past().directive) == ("lr too high", {"kind": "repair", "of": 1}, "repair")
    assert (store.line(line).direction, store.line(line).status, store.line(line).note) == (
        "try warmup", "retired", "stagnant")
    assert [(d.kind, d.line_id, d.reason) for d in store.decisions()] == [
        ("retire", line, "no gain in 8 experiments")]


def test_schema_1_store_is_migrated_when_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    conn = schema_3_store(path)
    for statement in SCHEMA_3_ADDITIONS + SCHEMA_2_ADDITIONS:  # what schema 1 did not have
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    reader = Store.open(path, readonly=True)
    assert reader.reviews() == []  # an old store reads fine before migration
    assert reader.decisions() == [] and reader.llm_calls() == []
    reader.close()
    store = Store.open(path)
    assert store._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION)
    store.create_lab(name="x", task_json="{}", repo_root="/", task_subdir="", base_commit="c", branch="b",
                     settings={})
    exp = store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit="c")
    store.add_review(exp, "accept", "looks right")
    assert [(r["experiment_id"], r["decision"], r["note"]) for r in store.reviews()] == [(exp, "accept", "looks right")]
    run = store.add_run(experiment_id=exp, purpose="baseline", seed=0)
    store.update_run(run, holdout=0.5)
    assert store.run(run).holdout == 0.5
