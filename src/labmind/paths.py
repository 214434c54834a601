"""Where a lab keeps its files: everything lives under <task>/.labmind/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabPaths:
    task_dir: Path

    @property
    def root(self) -> Path:
        return self.task_dir / ".labmind"

    @property
    def db(self) -> Path:
        return self.root / "lab.db"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    @property
    def compile_cache(self) -> Path:
        """`[run] compile_cache`: written by the baseline's runs only, copied into every other run."""
        return self.root / "compile-cache"

    @property
    def transcripts(self) -> Path:
        return self.root / "transcripts"

    def run_log(self, experiment_id: int, run_id: int) -> Path:
        return self.root / "runs" / f"exp-{experiment_id}" / f"run-{run_id}.log"
