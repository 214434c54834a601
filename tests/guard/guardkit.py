"""Tiny tasks and changes for guard tests: write the new tree, keep the parent's text in a dict."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from labmind.guard import Finding, check_change
from labmind.task.model import Task

TASK = Task.model_validate(
    {
        "task": {
            "name": "tiny",
            "editable": ["train.py", "model.py", "*.py", "*.sh", "*.yaml", "*.cu", "pkg/**"],
            "protected": ["evaluate.py", "data/val.bin", "harness/"],
        },
        "run": {"command": "python train.py"},
        "metric": {"name": "val_bpb", "goal": "minimize"},
    }
)

#: Files every tiny task has, unchanged by the tests' changes.
FIXED = {
    "evaluate.py": "THRESHOLD = 0.5\n\ndef compute(pred, ref):\n    return abs(pred - ref)\n",
    "data/val.bin": "not really binary\n",
    "harness/__init__.py": "",
    "harness/check.py": "def check(x):\n    return x\n",
}

BASE_TRAIN = """\
import time

import numpy as np
import torch

LR = 0.01
HIDDEN = 128


def main():
    start = time.time()
    x = torch.randn(8, HIDDEN)
    loss = float(x.pow(2).mean()) * LR
    print(f"elapsed {time.time() - start:.2f}")
    return loss


if __name__ == "__main__":
    main()
"""


def check(
    root: Path,
    new: dict[str, str],
    old: dict[str, str] | None = None,
    *,
    task: Task = TASK,
    allow: Collection[str] = (),
) -> list[Finding]:
    """Writes FIXED plus `new` under root/task (a git worktree root at root), and checks the change old -> new."""
    old = {"train.py": BASE_TRAIN} if old is None else old
    (root / ".git").mkdir(exist_ok=True)
    task_dir = root / "task"
    for rel, text in {**FIXED, **old, **new}.items():
        if rel in old and rel not in new:
            continue  # deleted by the change
        file = task_dir / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    changed = sorted(p for p in {*old, *new} if old.get(p) != new.get(p))
    return check_change(task, task_dir, lambda p: old.get(p, FIXED.get(p)), changed, allow=allow)


def train_with(extra: str, *, imports: str = "") -> str:
    """BASE_TRAIN with `imports` at the top and `extra` at module level before main()."""
    head, tail = BASE_TRAIN.split("\n\n\ndef main", 1)
    return f"{imports}{head}\n{extra}\n\n\ndef main{tail}"


def rules_of(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]
