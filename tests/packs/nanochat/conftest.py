"""A task packed once per module from the stand-in upstream and a small local corpus, and one trained model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .nckit import FAKE_UPSTREAM, pack, run_in, write_stories


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`labmind pack nanochat --data local:...` of the stand-in upstream (2 s budget, eager). The data root
    sits beside the task, outside /tmp's sandbox mask only when the test's temporary folder does."""
    for name in ("pyarrow", "tiktoken", "rustbpe"):  # the tokenizer step and the shards need them
        pytest.importorskip(name, reason=f"packing needs {name}: pip install 'labmind[nanochat]'")
    base = tmp_path_factory.mktemp("nanochat")
    corpus = write_stories(base / "stories")
    result = pack(FAKE_UPSTREAM, f"local:{corpus}", base / "task", base / "data", "--time-budget", "2",
                  "--any-commit", "--val-percent", "10", "--eager", "--baseline-runs", "2", "--confirm-seeds", "2",
                  "--startup-allowance", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    return base / "task"


@pytest.fixture(scope="module")
def trained(packed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packed task after one run of its train.py (model.pt2 written)."""
    task = tmp_path_factory.mktemp("trained") / "task"
    shutil.copytree(packed, task)
    result = run_in(task, "train.py", env={"SEED": "3"})
    assert result.returncode == 0, result.stdout + result.stderr
    return task
