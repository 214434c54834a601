"""`labmind agent submit` checks the worktree with the guard's own check_proposal: an agent hears what the lab
would decide on the snapshot, scope and static rules alike (a shadowing file included)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from brains.brainkit import make_task

from labmind.agent_tools.ops import AgentTools
from labmind.brains.agent_inbox import OfferState
from labmind.guard import Proposed, check_proposal
from labmind.paths import LabPaths
from labmind.store import Store
from labmind.verdicts import Verdict
from labmind.workspace import git as gitops

from .kit import git, git_task, offer

#: Every Python file is editable: a module-shadowing file is in scope, and only the guard's rule refuses it.
TASK = make_task(["*.py"])


@pytest.fixture
def bench(tmp_path: Path) -> tuple[AgentTools, OfferState, Path, str]:
    repo = tmp_path / "repo"
    task_dir = git_task(repo)
    base = git(repo, "rev-parse", "HEAD").strip()
    store = Store.open(LabPaths(task_dir).db)
    store.create_lab(name="toy", task_json=TASK.model_dump_json(), repo_root=str(repo), task_subdir="task",
                     base_commit=base, branch="labmind/toy", settings={})
    store.close()
    worktree = tmp_path / "wt"
    gitops.add_worktree(repo, worktree, base)
    state = OfferState(offer=replace(offer(2, worktree=str(worktree / "task")), base_commit=base), claim=None,
                       submission=None, closed=None)
    return AgentTools(task_dir), state, worktree, base


def test_a_shadowing_file_is_refused_before_submission(bench: tuple[AgentTools, OfferState, Path, str]) -> None:
    b, state, worktree, base = bench
    (worktree / "task" / "train.py").write_text("LR = 0.01\nprint(f'loss: {LR}')\n")
    assert b.preflight(state) == (["train.py"], None)

    (worktree / "task" / "json.py").write_text("def dumps(x):\n    return '{}'\n")
    changed, problem = b.preflight(state)
    assert changed == ["json.py", "train.py"] and problem is not None
    assert problem.startswith("shadow_module: new file json.py shadows the standard-library module json (")
    assert "so labmind would reject experiment 2" in problem and "--force" in problem

    # The lab's own decision on the snapshot of the same worktree: the same verdict, for the same reason.
    repo = Path(subprocess.run(["git", "-C", str(worktree), "rev-parse", "--path-format=absolute",
                                "--git-common-dir"], capture_output=True, text=True, check=True).stdout.strip()).parent
    snap = gitops.snapshot(worktree, base, "exp 2", root=repo)
    lab = check_proposal(TASK, Proposed(worktree / "task", "task", snap.changed,
                                        lambda rel: gitops.file_at(repo, base, f"task/{rel}"), snap.nested_repos))
    assert lab.verdict == Verdict.REJECTED and problem.startswith(lab.reason)


def test_a_protected_file_and_no_change_are_refused(bench: tuple[AgentTools, OfferState, Path, str]) -> None:
    b, state, worktree, _ = bench
    _, problem = b.preflight(state)
    assert problem is not None and "no change against its parent" in problem
    (worktree / "task" / "prepare.py").write_text("DATA = 2\n")
    _, problem = b.preflight(state)
    assert problem is not None and problem.startswith("changed protected file prepare.py, so labmind would reject")
