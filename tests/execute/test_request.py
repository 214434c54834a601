"""Run requests (base commit + patch) through the local executor, with a real git repository."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from labmind.execute.base import Change, RunRequest, Slot
from labmind.execute.local import LocalExecutor
from labmind.execute.materialise import Checkouts
from labmind.execute.sandbox import Sandbox
from labmind.workspace import git as gitops
from labmind.workspace.digests import digest_entries, protected_entries


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository with a task in `task/`, its first commit and a second one that changes the score and
    adds a binary file."""
    root = tmp_path / "repo"
    (root / "task").mkdir(parents=True)
    (root / "task" / "score.txt").write_text("1.0\n")
    (root / "task" / "guard.py").write_text("print('guard')\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    base = _git(root, "rev-parse", "HEAD")
    (root / "task" / "score.txt").write_text("2.5\n")
    (root / "task" / "blob.bin").write_bytes(bytes(range(256)) * 4)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "change")
    return root, base, _git(root, "rev-parse", "HEAD")


def _request(root: Path, base: str, commit: str, tmp: Path, **kwargs: object) -> RunRequest:
    change = Change(base=base, patch=gitops.binary_diff(root, base, commit), commit=commit,
                    tree=gitops.tree_of(root, commit))
    fields: dict = {"run_id": 7, "change": change, "subdir": "task", "timeout_s": 30.0, "metric": "score",
                    "log_path": tmp / "logs" / "run.log",
                    "command": "echo score: $(cat score.txt); wc -c < blob.bin > size.txt; cat size.txt"}
    fields.update(kwargs)
    return RunRequest(**fields)


def _run(checkouts: Checkouts, request: RunRequest) -> object:
    executor = LocalExecutor([Slot(0)], Sandbox("none"), checkouts, grace_s=0.5, cgroups=None)
    return asyncio.run(executor.run(request, Slot(0)))


def test_runs_the_experiment_commit_and_removes_its_worktrees(repo, tmp_path):
    root, base, commit = repo
    checkouts = Checkouts(root, tmp_path / "worktrees")
    outcome = _run(checkouts, _request(root, base, commit, tmp_path, evaluate="echo score: $(cat score.txt)"))
    assert outcome.status == "ok" and outcome.metric == 2.5
    assert "1024" in (tmp_path / "logs" / "run.log").read_text()
    assert not any((tmp_path / "worktrees").iterdir())  # run and pristine checkouts are gone
    assert "worktree" not in _git(root, "worktree", "list").split("\n", 1)[-1]


def test_a_repository_without_the_commit_applies_the_patch_to_the_base(repo, tmp_path):
    root, base, commit = repo
    # A clone that has only the base commit: what a cluster worker holds.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "--no-local", str(root), str(other)], check=True)
    _git(other, "reset", "-q", "--hard", base)
    _git(other, "update-ref", "-d", "refs/remotes/origin/master")
    _git(other, "update-ref", "-d", "refs/remotes/origin/main")
    _git(other, "reflog", "expire", "--expire=now", "--all")
    _git(other, "gc", "-q", "--prune=now")
    assert not gitops.has_commit(other, commit)
    outcome = _run(Checkouts(other, tmp_path / "wt2"), _request(root, base, commit, tmp_path))
    assert outcome.status == "ok" and outcome.metric == 2.5
    assert "1024" in (tmp_path / "logs" / "run.log").read_text()  # the binary file arrived whole


def test_a_patch_that_does_not_give_the_tree_is_refused(repo, tmp_path):
    root, base, commit = repo
    request = _request(root, base, commit, tmp_path)
    bad = Change(base=base, patch=request.change.patch, commit="0" * 40, tree=gitops.tree_of(root, base))
    with pytest.raises(gitops.GitError, match="did not arrive intact"):
        Checkouts(root, tmp_path / "wt").make(bad, "run-1")


def test_protected_files_changed_by_the_run_are_reported(repo, tmp_path):
    root, base, commit = repo
    digest, _ = digest_entries(protected_entries(root / "task", ["guard.py"]))
    request = _request(root, base, commit, tmp_path, command="echo 'print(1)' > guard.py; echo score: 1",
                       protected=("guard.py",), protected_digest=digest)
    outcome = _run(Checkouts(root, tmp_path / "wt"), request)
    assert outcome.tampered is not None and "guard.py" in outcome.tampered


def test_declared_artifacts_are_brought_back(repo, tmp_path):
    root, base, commit = repo
    back = tmp_path / "back"
    request = _request(root, base, commit, tmp_path, artifacts=("size.txt", "*.bin"), bring_back=back)
    outcome = _run(Checkouts(root, tmp_path / "wt"), request)
    assert outcome.status == "ok"
    assert (back / "size.txt").read_text().strip() == "1024"
    assert (back / "blob.bin").read_bytes() == bytes(range(256)) * 4


def test_an_adopted_worktree_is_used_once(repo, tmp_path):
    root, base, commit = repo
    checkouts = Checkouts(root, tmp_path / "wt")
    ready = tmp_path / "wt" / "proposal"
    gitops.add_worktree(root, ready, commit)
    request = _request(root, base, commit, tmp_path)
    assert checkouts.make(request.change, "run-0", adopt=True) != ready  # nothing adopted yet
    checkouts.adopt(commit, ready)
    assert checkouts.make(request.change, "run-1", adopt=True) == ready
    second = checkouts.make(request.change, "run-2", adopt=True)
    assert second != ready and (second / "task" / "score.txt").read_text() == "2.5\n"
