"""Helpers for the speedrun pack's tests: the stand-in upstream, a small corpus, packing and running."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

FAKE_UPSTREAM = Path(__file__).parent / "fake_upstream"
PY = sys.executable


def write_corpus(directory: Path, count: int = 300, seed: int = 0) -> Path:
    """`count` small text files of a few hundred words: a corpus a CPU tokenizes and trains on in seconds."""
    rng = random.Random(seed)
    words = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "fast", "slow", "red", "blue", "big", "small",
             "and", "then", "it", "was", "very", "happy", "sad", "tree", "house", "bird", "sang", "under", "over"]
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + "."
                 for _ in range(rng.randint(20, 60))]
        (directory / f"story_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return directory


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
