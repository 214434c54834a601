"""A store filled by a real lab run of examples/tiny-lm, shared by the observatory tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-lm"


def make_tiny_lm_lab(task: Path, *, experiments: int) -> Path:
    """Copy examples/tiny-lm into a fresh git repository and run a real knobs lab on it."""
    shutil.copytree(EXAMPLE, task, ignore=shutil.ignore_patterns(".labmind", "model.npz", "__pycache__"))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"]):
        subprocess.run(["git", *args], cwd=task, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "labmind.cli.main", "run", str(task), "--max-experiments", str(experiments),
                    "--slots", "2", "--plain"], check=True, capture_output=True, timeout=900)
    return task


@pytest.fixture(scope="session")
def tiny_lm_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The task directory of a finished tiny-lm lab (knobs brain, 8 experiments, 2 slots)."""
    return make_tiny_lm_lab(tmp_path_factory.mktemp("observe") / "tiny-lm", experiments=8)
