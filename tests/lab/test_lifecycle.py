"""A lab's life across sessions: check then run, bad options, failed baselines, setup, refs, corrupt stores."""

from __future__ import annotations

import time
from pathlib import Path

from .toy import git, labmind, log, make_toy, status


def test_check_then_run_proposes(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("check", str(task), "--plain")
    assert status(task)["experiments"] == 0 and status(task)["baseline"]["n_runs"] == 3
    labmind("run", str(task), "--max-experiments", "2", "--plain")
    assert status(task)["experiments"] == 2  # check's "no experiments" was for its own session only


def test_invalid_options_leave_the_lab_usable(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    for bad, words in (
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--brain", "nope"], "nope"),
        (["--sandbox", "maybe"], "auto, bwrap or none"),
    ):
        proc = labmind("run", str(task), *bad, "--plain", check=False)
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
    assert labmind("run", str(task), "--lines", "0", "--plain", check=False).returncode == 2  # usage error
    labmind("run", str(task), "--max-experiments", "1", "--plain")
    assert status(task)["experiments"] == 1


def test_failed_baseline_stops_and_a_rerun_is_refused_without_proposing(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "train.py").write_text("LR = 0.1\nraise SystemExit('data missing')\n")
    git(task, "commit", "-qam", "broken")
    proc = labmind("run", str(task), "--plain", check=False)
    assert proc.returncode == 1 and "the baseline itself failed" in proc.stderr
    again = labmind("run", str(task), "--plain", check=False, timeout=60)
    assert again.returncode == 1 and "baseline failed" in again.stderr and "start a new lab" in again.stderr
    assert status(task)["experiments"] <= 2  # at most the proposals prefetched during the first baseline
    assert all(r["verdict"] is None for r in log(task) if r["kind"] == "candidate")


def test_setup_runs_once_per_digest(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    counter = tmp_path / "setup-count"
    text = (
        (task / "labmind.toml")
        .read_text()
        .replace('protected = ["guard.txt"]', f'protected = ["guard.txt"]\nsetup = "echo x >> {counter}"')
    )
    (task / "labmind.toml").write_text(text)
    git(task, "commit", "-qam", "setup")
    labmind("check", str(task), "--plain")
    labmind("run", str(task), "--max-experiments", "1", "--plain")
    labmind("resume", str(task), "--max-experiments", "2", "--plain")
    assert counter.read_text() == "x\n"


def test_refs_are_rebuilt_from_the_store(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("run", str(task), "--brain", "command:python brains/write.py good", "--max-experiments", "1", "--plain")
    best = status(task)["best"]
    assert best["confirmed"]
    assert git(task, "rev-parse", f"refs/labmind/toy/exp/{best['experiment']}").strip() == best["commit"]
    git(task, "update-ref", "-d", "refs/heads/labmind/toy")  # as if killed between verdict and ref update
    labmind("resume", str(task), "--plain")
    assert git(task, "rev-parse", "labmind/toy").strip() == best["commit"]


def test_corrupt_store_gives_a_clear_error(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / ".labmind").mkdir()
    (task / ".labmind" / "lab.db").write_bytes(b"this is not sqlite" * 100)
    for verb in (["status", str(task)], ["run", str(task), "--plain"]):
        proc = labmind(*verb, check=False)
        assert proc.returncode == 1 and "not a readable labmind store" in proc.stderr, proc.stderr


def test_a_spent_budget_does_not_wait_for_slow_proposals(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "brains" / "slow.py").write_text("import time\ntime.sleep(120)\n")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "a brain that thinks for two minutes")
    started = time.monotonic()
    labmind("run", str(task), "--brain", "command:python brains/slow.py", "--budget", "8s", "--sandbox", "none",
            "--plain", timeout=100)
    # Ended at the budget, not when the brain would have finished (it was waited on no longer than needed).
    assert time.monotonic() - started < 60
    events = labmind("status", str(task), "--json").stdout
    assert status(task)["baseline"]["n_runs"] == 3 and '"state": "stopped"' in events.replace("\n", " ")
    rows = log(task)
    assert all(r["status"] in ("proposing", "done") for r in rows)  # the unfinished proposal waits for resume
