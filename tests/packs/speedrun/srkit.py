"""Helpers for the speedrun pack's tests: the stand-in upstream, a small corpus, packing and running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nanochat.nckit import write_stories  # tests/packs is on sys.path (rootdir import mode)

FAKE_UPSTREAM = Path(__file__).parent / "fake_upstream"
PY = sys.executable


def write_corpus(directory: Path, count: int = 300, seed: int = 0) -> Path:
    """A corpus a CPU tokenizes and trains on in seconds (longer stories than the nanochat pack's tests use)."""
    return write_stories(directory, count, seed, per_story=(20, 60))


def pack(data: str, out: Path, data_dir: Path, *extra: str,
         upstream: Path = FAKE_UPSTREAM) -> subprocess.CompletedProcess[str]:
    """`labmind pack speedrun ...` in a subprocess, as a user runs it."""
    code = "import sys; from labmind.cli.pack import pack_app; sys.argv[0] = 'labmind pack'; pack_app()"
    argv = [PY, "-c", code, "speedrun", "--upstream", str(upstream), "--data", data, "--out", str(out),
            "--data-dir", str(data_dir), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def run_in(task: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command of the task (python train_gpt.py, python labmind_speedrun.py ...) in the task directory."""
    full = {**os.environ, "LABMIND_ATTENTION": "native", **(env or {})}
    return subprocess.run([PY, *argv], cwd=task, capture_output=True, text=True, timeout=300, env=full, check=False)
