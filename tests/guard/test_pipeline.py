"""The guard's pipeline on real git snapshots: check_proposal (scope, static) and check_candidate (plausibility,
hold-out), and findings counted by their rule, never by their message."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.cli.guard import guard_figures
from labmind.findings import Finding
from labmind.guard import Clock, Measurement, Pristine, Proposed, check_candidate, check_proposal
from labmind.store import Store
from labmind.task import Task
from labmind.verdicts import Verdict
from labmind.workspace import git as gitops
from labmind.workspace.digests import protected_entries

TASK = Task.model_validate({
    "task": {"name": "tiny", "editable": ["*.py", "*.txt", "*.md", "up"], "protected": ["eval.py"]},
    "run": {"command": "python train.py"},
    "metric": {"name": "loss", "goal": "minimize", "bound": 0.01, "self_time": "train_seconds"},
})


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
                          cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name, text in {"README.md": "top\n", "task/train.py": "import time\nlr = 0.1\n",
                       "task/eval.py": "print('loss: 1')\n", "other/x.py": "x = 1\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    sh(root, "init", "-q", "-b", "main")
    sh(root, "add", "-A")
    sh(root, "commit", "-q", "-m", "init")
    return root


@pytest.fixture
def wt(repo: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "worktrees" / "e1"
    gitops.add_worktree(repo, path, sh(repo, "rev-parse", "HEAD").strip())
    yield path
    gitops.remove_worktree(repo, path)


def proposal(repo: Path, wt: Path) -> tuple[gitops.Snapshot, Proposed]:
    """Snapshot the worktree as the lab does, and the change as the guard sees it."""
    base = sh(repo, "rev-parse", "HEAD").strip()
    snap = gitops.snapshot(wt, base, "change", root=repo)
    return snap, Proposed(wt / "task", "task", snap.changed, lambda rel: gitops.file_at(repo, base, f"task/{rel}"),
                          snap.nested_repos)


def test_symlinks_out_of_the_worktree_are_rejected(repo: Path, wt: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    os.symlink(secret, wt / "task" / "data.txt")
    os.symlink("../README.md", wt / "task" / "inside.md")
    os.symlink("../../../..", wt / "task" / "up")
    snap, change = proposal(repo, wt)
    assert sorted(snap.changed) == ["task/data.txt", "task/inside.md", "task/up"]
    check = check_proposal(TASK, change)
    assert check.verdict == Verdict.REJECTED and check.reason.startswith("symlink_out: data.txt -> ")
    # Checked once, by the guard's rule: one finding per escaping link, none for the link that stays inside.
    assert sorted(f.path for f in check.findings if f.rule == "symlink_out") == ["data.txt", "up"]


def test_non_ascii_symlink_out_is_rejected(repo: Path, wt: Path) -> None:
    os.symlink("/etc/passwd", wt / "task" / "café.py")
    snap, change = proposal(repo, wt)
    assert snap.changed == ["task/café.py"]
    check = check_proposal(TASK, change)
    assert check.verdict == Verdict.REJECTED
    assert [(f.rule, f.path) for f in check.findings] == [("symlink_out", "café.py")]


@pytest.mark.parametrize(("path", "rule", "reason"), [
    ("task/eval.py", "protected", "changed protected file eval.py"),
    ("other/x.py", "outside_task", "changed other/x.py, which is outside the task directory"),
    ("task/labmind.toml", "labmind_files", "changed labmind.toml, which belongs to labmind"),
    ("task/notes.json", "outside_editable", "changed notes.json, which is not editable (editable: *.py, *.txt, "
                                            "*.md, up)"),
])
def test_a_scope_breach_is_named_by_its_rule(repo: Path, wt: Path, path: str, rule: str, reason: str) -> None:
    (wt / path).write_text("changed = 1\n")
    _, change = proposal(repo, wt)
    check = check_proposal(TASK, change)
    assert (check.verdict, check.reason) == (Verdict.REJECTED, reason)
    assert check.findings[0] == Finding(rule, path=path.removeprefix("task/"), evidence=reason)


def test_a_changed_protected_file_outside_git_is_rejected_by_its_digest(repo: Path, wt: Path) -> None:
    digest = {name: "0" * 64 for name in protected_entries(wt / "task", ["eval.py"])}  # not what is there
    (wt / "task" / "train.py").write_text("import time\nlr = 0.2\n")
    _, change = proposal(repo, wt)
    check = check_proposal(TASK, change, Pristine(digest))
    assert check.verdict == Verdict.REJECTED and check.tampered and check.reason == check.tampered
    assert [f.rule for f in check.findings] == ["protected"]


def test_nested_repository_and_no_change(repo: Path, wt: Path) -> None:
    _, change = proposal(repo, wt)
    assert check_proposal(TASK, change).verdict == Verdict.NO_CHANGE
    (wt / "task" / "vendor").mkdir()
    sh(wt / "task" / "vendor", "init", "-q")
    _, change = proposal(repo, wt)
    check = check_proposal(TASK, change)
    assert check.verdict == Verdict.REJECTED and "adds a git repository at task/vendor/" in check.reason
    assert [(f.rule, f.path) for f in check.findings] == [("nested_repo", "task/vendor")]


def test_a_change_that_may_run_keeps_its_flags_with_path_and_line(repo: Path, wt: Path) -> None:
    (wt / "task" / "train.py").write_text("import time\nlr = 0.1\ntime.perf_counter = lambda: 0.0\n")
    _, change = proposal(repo, wt)
    check = check_proposal(TASK, change)
    assert (check.verdict, check.reason) == (None, "")
    assert [(f.rule, f.path, f.line, f.evidence) for f in check.findings] == [
        ("timer_patch", "train.py", 3, "time.perf_counter = lambda: 0.0")]


def test_a_shadowing_file_is_rejected_with_its_rule(repo: Path, wt: Path) -> None:
    (wt / "task" / "json.py").write_text("x = 1\n")
    _, change = proposal(repo, wt)
    check = check_proposal(TASK, change)
    assert check.verdict == Verdict.REJECTED
    assert check.reason.startswith("shadow_module: new file json.py shadows the standard-library module json (")
    assert [f.rule for f in check.findings] == ["shadow_module"]


def test_check_candidate_at_screening_and_at_verification() -> None:
    screening = Measurement((0.5,), (Clock(reported=1.0, measured=30.0),))
    assert [f.rule for f in check_candidate(TASK, screening)] == ["time_mismatch"]
    # One run against one step never says "implausible"; a verified gain far beyond the lab's steps does.
    verified = Measurement((0.005, 0.005), gain=2.0, past_steps=(0.1,), baseline_sd=0.01)
    assert sorted(f.rule for f in check_candidate(TASK, verified)) == [
        "beyond_bound", "implausible_gain", "variance_collapse"]
    assert all(f.path is None and f.line is None and f.evidence for f in check_candidate(TASK, verified))


def test_a_missing_held_out_value_fails_the_holdout_check() -> None:
    held = Task.model_validate({**TASK.model_dump(), "metric": {"name": "loss", "goal": "minimize",
                                                                "holdout": "python eval.py --held-out"}})
    missing = Measurement((0.5, 0.5), gain=0.1, holdout=(((0.5, None), (0.5, 0.6)), ((0.6, 0.7),)))
    assert [f.rule for f in check_candidate(held, missing)] == ["holdout_failed"]
    honest = Measurement((0.5, 0.51), gain=0.1, holdout=(((0.5, 0.6), (0.51, 0.62)), ((0.6, 0.7), (0.61, 0.71))))
    assert check_candidate(held, honest) == []
    assert check_candidate(TASK, missing) == []  # the task has no held-out evaluation


def test_guard_report_counts_rules_not_messages(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "lab.db")

    def rejected(*flags: Finding) -> None:
        exp = store.add_experiment(kind="candidate", line_id=None, parent_id=None, brain="x", base_commit="c0")
        store.update_experiment(exp, status="done", verdict="rejected", reason="any", flags=list(flags),
                                commit_sha="c1")

    rejected(Finding("protected", path="eval.py", evidence="changed protected file eval.py"))
    # The same rule, worded differently (no "protected file" in it): still counted as `protected`.
    rejected(Finding("protected", evidence="the evaluator's digest no longer matches"))
    rejected(Finding("outside_editable", path="notes.md", evidence="changed notes.md, which is protected file-ish"))
    figures = guard_figures(store)
    assert figures["rejections_by_rule"] == {"outside_editable": 1, "protected": 2}
    store.close()
