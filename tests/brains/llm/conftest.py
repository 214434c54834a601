"""Fixtures for the implement loop: a real experiment worktree (git worktree add) of a small task repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labmind.brains.llm.check import SandboxedCheck
from labmind.execute.sandbox import Sandbox, resolve_sandbox

from ..brainkit import git

TRAIN = """\
import model

LR = 0.1
STEPS = 10


def main():
    net = model.Net()
    for step in range(STEPS):
        net.update(LR)
    print(f"loss: {net.loss():.4f}")


if __name__ == "__main__":
    main()
"""
MODEL = """\
class Net:
    def __init__(self):
        self.w = 1.0

    def update(self, lr):
        self.w -= lr * self.w

    def loss(self):
        return self.w * self.w
"""
FILES = {
    "train.py": TRAIN,
    "model.py": MODEL,
    "prepare.py": "DATA = [1, 2, 3]\n",
    "README.md": "# toy task\n",
    "data/eval.txt": "secret targets\n",
}
EDITABLE = ["train.py", "model.py", "lib/*.py"]
PROTECTED = ["prepare.py"]
HIDDEN = ["data/*"]


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """The task directory inside an experiment worktree checked out from a committed task repo."""
    root = tmp_path / "repo"
    for name, text in FILES.items():
        (root / "task" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "task" / name).write_text(text)
    (root / ".gitignore").write_text("cache/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    tree = tmp_path / "lab" / "exp-1"
    git(root, "worktree", "add", "-q", "--detach", str(tree), "HEAD")
    return tree / "task"


def make_check(sandbox: object, worktree: Path, **kwargs: object) -> SandboxedCheck:
    """The lab's SandboxedCheck for the `worktree` fixture's task directory: it knows the worktree's top
    directory and its repository, as the llm brain's does (from its BrainContext)."""
    return SandboxedCheck(sandbox, workdir=worktree, worktree_root=worktree.parent,  # type: ignore[arg-type]
                          repo_root=worktree.parent.parent.parent / "repo", **kwargs)  # type: ignore[arg-type]


def changed_files(task_dir: Path) -> list[str]:
    """What git sees changed in the worktree (tracked and untracked), relative to the worktree root."""
    out = git(task_dir, "status", "--porcelain", "--untracked-files=all")
    return sorted(line[3:] for line in out.splitlines())


def _bwrap() -> Sandbox:
    sandbox, warning = resolve_sandbox("auto")
    if sandbox.name != "bwrap":
        if os.environ.get("LABMIND_REQUIRE_BWRAP") == "1":
            pytest.fail(f"LABMIND_REQUIRE_BWRAP=1 but bubblewrap does not work here: {warning}")
        pytest.skip(f"bubblewrap does not work here: {warning}")
    return sandbox


@pytest.fixture(params=[pytest.param("none", id="none"), pytest.param("bwrap", id="bwrap", marks=pytest.mark.sandbox)])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return Sandbox("none") if request.param == "none" else _bwrap()


@pytest.fixture
def bwrap() -> Sandbox:
    return _bwrap()
