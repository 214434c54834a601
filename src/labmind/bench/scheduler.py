"""`labmind bench scheduler`: slot duty cycle of the real scheduler and executor on simulated work.

Runs last R seconds (`sleep`), the brain takes L seconds per proposal, S CPU slots. The same lab code is
measured twice in one process: with proposals prepared ahead of free slots (labmind's scheduler) and as
a sequential propose-then-run loop per slot (autoresearch's shape, where a slot waits for its brain).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labmind.brains.base import BrainContext, Idea, PastExperiment
from labmind.lab.open import open_lab
from labmind.observe.live import PlainReporter
from labmind.store import Store

TOML = """[task]
name = "bench"
editable = ["score.txt"]

[run]
command = "sleep {r} && cat score.txt"
timeout = "{timeout}s"

[metric]
name = "score"
goal = "maximize"
"""


class SleepBrain:
    """Thinks for `latency` seconds, then writes a score that never beats the baseline (so every
    experiment is exactly one run and the measurement is pure scheduling)."""

    name = "sleep"

    def __init__(self, latency: float, seed: int) -> None:
        self.latency = latency
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def propose(self, ctx: BrainContext) -> Idea:
        time.sleep(self.latency)
        with self.lock:
            value = self.rng.uniform(0.1, 0.4)
        (ctx.task_dir / "score.txt").write_text(f"score: {value:.6f}\n")
        return Idea(title=f"score {value:.3f}")

    def learn(self, result: PastExperiment) -> None:
        return None


class _Quiet(PlainReporter):
    def event(self, kind: str, message: str) -> None:
        return None


@dataclass(frozen=True)
class BenchResult:
    mode: str
    slots: int
    run_s: float
    brain_s: float
    experiments: int
    window_s: float
    duty_cycle: float
    experiments_per_hour: float


def _make_task(root: Path, run_s: float) -> None:
    root.mkdir(parents=True)
    (root / "labmind.toml").write_text(TOML.format(r=run_s, timeout=max(60, int(run_s * 20))))
    (root / "score.txt").write_text("score: 0.5\n")
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True)


def measure(store: Store, mode: str, slots: int, run_s: float, brain_s: float) -> BenchResult:
    """Duty cycle over the steady state: from the baseline's end to the last run's end."""
    lab = store.lab()
    assert lab is not None and lab.baseline_id is not None
    start = store.experiment(lab.baseline_id).finished_at or 0.0
    runs = [r for r in store.runs() if r.ended_at and r.started_at and r.purpose != "baseline"]
    end = max(r.ended_at or 0.0 for r in runs)
    busy = sum(max(0.0, min(r.ended_at or 0.0, end) - max(r.started_at or 0.0, start)) for r in runs)
    window = end - start
    done = sum(1 for r in store.experiments() if r.kind == "candidate" and r.verdict)
    return BenchResult(mode=mode, slots=slots, run_s=run_s, brain_s=brain_s, experiments=done, window_s=window,
                       duty_cycle=busy / (window * slots), experiments_per_hour=done / window * 3600.0)


def bench_once(workdir: Path, *, prefetch: bool, slots: int, run_s: float, brain_s: float, experiments: int,
               sandbox: str, seed: int = 0) -> BenchResult:
    task_dir = workdir / ("prefetch" if prefetch else "sequential")
    _make_task(task_dir, run_s)
    given = {"max_experiments": experiments, "sandbox": sandbox, "prefetch": prefetch, "seed": seed}
    opened = open_lab(task_dir, flags={}, given=given, reporter=_Quiet(), gpus=None, slots=slots,
                      brain=SleepBrain(brain_s, seed))
    try:
        asyncio.run(opened.lab.run())
        return measure(opened.store, "labmind (prefetch)" if prefetch else "sequential", slots, run_s, brain_s)
    finally:
        opened.close()


def run_bench(*, slots: int, run_s: float, brain_s: float, experiments: int, sandbox: str) -> list[BenchResult]:
    with tempfile.TemporaryDirectory(prefix="labmind-bench-") as tmp:
        return [bench_once(Path(tmp), prefetch=p, slots=slots, run_s=run_s, brain_s=brain_s,
                           experiments=experiments, sandbox=sandbox) for p in (True, False)]
