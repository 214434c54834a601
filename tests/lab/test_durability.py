"""kill -9 at any moment loses no finished work; resume re-queues interrupted runs exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from .toy import LABMIND, labmind, log, make_toy, status
from .toy import lab_db as _db
from .toy import wait_for as _wait_for


def _start(task: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LABMIND, "run", str(task), "--plain", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _token_processes(tokens: list[str]) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if any(f"LABMIND_RUN_TOKEN={t}".encode() in env for t in tokens):
            found.append(int(pid))
    return found


def test_kill_9_then_resume_loses_nothing(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task", sleep=1.5)
    proc = _start(task, "--max-experiments", "6", "--slots", "2", "--sandbox", "none")

    def mid_flight() -> bool:
        db = _db(task)
        done = db.execute(
            "SELECT COUNT(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id "
            "WHERE r.status = 'done' AND e.kind = 'candidate'"
        ).fetchone()[0]
        running = db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
        return done >= 1 and running >= 1

    _wait_for(mid_flight)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # Captured after the kill: nothing can change these rows any more.
    db = _db(task)
    before_done = {
        r["id"]: (r["metric"], r["seed"], r["ended_at"]) for r in db.execute("SELECT * FROM runs WHERE status = 'done'")
    }
    running = {
        r["id"]: (r["experiment_id"], r["seed"], r["purpose"], r["token"])
        for r in db.execute("SELECT * FROM runs WHERE status = 'running'")
    }
    proposals = {
        r["id"]: r["commit_sha"]
        for r in db.execute("SELECT * FROM experiments WHERE kind = 'candidate' AND commit_sha IS NOT NULL")
    }
    assert running, "the kill must interrupt at least one run"
    assert status(task)["state"] == "stopped"

    labmind("resume", str(task), "--plain", "--sandbox", "none")

    db = _db(task)
    after = {r["id"]: dict(r) for r in db.execute("SELECT * FROM runs")}
    for run_id, (metric, seed, ended) in before_done.items():
        assert after[run_id]["status"] == "done"
        assert (after[run_id]["metric"], after[run_id]["seed"], after[run_id]["ended_at"]) == (metric, seed, ended)
    for run_id, (exp_id, seed, purpose, _token) in running.items():
        assert after[run_id]["status"] == "interrupted"
        requeued = [r for r in after.values() if r["requeued_from"] == run_id]
        assert len(requeued) == 1, "each interrupted run is re-queued exactly once"
        assert (requeued[0]["experiment_id"], requeued[0]["seed"], requeued[0]["purpose"]) == (exp_id, seed, purpose)
        assert requeued[0]["status"] == "done"
    assert not _token_processes([t for (_, _, _, t) in running.values() if t])
    # Proposals made before the kill were reused, not made again.
    for exp_id, commit in proposals.items():
        row = db.execute("SELECT commit_sha FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        assert row["commit_sha"] == commit
    rows = log(task)
    candidates = [r for r in rows if r["kind"] == "candidate"]
    assert len(candidates) == 6
    assert all(r["status"] in ("done", "failed") for r in candidates)
    assert all(r["verdict"] for r in candidates if r["status"] == "done")


def test_second_run_on_the_same_lab_is_refused_then_stop_works(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task", sleep=2.0)
    proc = _start(task, "--slots", "1", "--sandbox", "none")
    _wait_for(lambda: _db(task).execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] >= 1)
    second = labmind("run", str(task), "--plain", check=False)
    assert second.returncode == 1
    assert f"already being run by process {proc.pid}" in second.stderr
    assert status(task)["state"] == "running" and status(task)["pid"] == proc.pid
    stopped = labmind("stop", str(task))
    assert "stopped lab process" in stopped.stdout
    assert proc.wait(timeout=60) == 0
    assert status(task)["state"] == "stopped"
    # The run it interrupted is picked up again by resume.
    db = _db(task)
    assert db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] >= 1
    labmind("resume", str(task), "--plain", "--sandbox", "none", "--max-experiments", "0")
    db = _db(task)
    assert db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0
    assert status(task)["baseline"]["n_runs"] == 3
