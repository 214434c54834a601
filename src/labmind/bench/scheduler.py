"""`labmind bench scheduler`: slot duty cycle of the real scheduler and executor on simulated work.

Runs last R seconds (`sleep`), the brain takes L seconds per proposal, S CPU slots. The same lab code is
measured twice in one process: with proposals prepared ahead of free slots (labmind's scheduler) and as
a sequential propose-then-run loop per slot (autoresearch's shape, where a slot waits for its brain).

With `--executor ray` it measures scale-out instead: labmind's scheduler on the local executor (S CPU slots)
and on a Ray cluster (S slots of one logical GPU each), for each S asked, with the scheduling overhead per
run (slot time not spent running the command) and the lab host's CPU per run.
"""

from __future__ import annotations

import asyncio
import random
import resource
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labmind.brains.base import BrainContext
from labmind.lab.open import open_lab
from labmind.model import ExperimentKind, Idea, PastExperiment, RunPurpose, RunStatus
from labmind.observe.live import PlainReporter
from labmind.store import Store

TOML = """[task]
name = "bench"
editable = ["score.txt"]

[run]
command = "sleep {r} && cat score.txt"
timeout = "{timeout}s"
gpus = {gpus}

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
    executor: str = "local"
    overhead_s: float = 0.0  # per run: slot time held by the lab minus the command's own time
    cpu_per_run_s: float = 0.0  # the lab process's CPU (itself and its children) per run




def _make_task(root: Path, run_s: float, gpus: int = 0) -> None:
    root.mkdir(parents=True)
    (root / "labmind.toml").write_text(TOML.format(r=run_s, timeout=max(60, int(run_s * 20)), gpus=gpus))
    (root / "score.txt").write_text("score: 0.5\n")
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True)


def measure(store: Store, mode: str, slots: int, run_s: float, brain_s: float) -> BenchResult:
    """Duty cycle over the steady state: from the baseline's end to the last run's end."""
    lab = store.lab()
    assert lab is not None and lab.baseline_id is not None
    start = store.experiment(lab.baseline_id).finished_at or 0.0
    runs = [r for r in store.runs() if r.ended_at and r.started_at and r.purpose != RunPurpose.BASELINE]
    end = max(r.ended_at or 0.0 for r in runs)
    busy = sum(max(0.0, min(r.ended_at or 0.0, end) - max(r.started_at or 0.0, start)) for r in runs)
    window = end - start
    done = sum(1 for r in store.experiments() if r.kind == ExperimentKind.CANDIDATE and r.verdict)
    return BenchResult(mode=mode, slots=slots, run_s=run_s, brain_s=brain_s, experiments=done, window_s=window,
                       duty_cycle=busy / (window * slots), experiments_per_hour=done / window * 3600.0)


def bench_once(workdir: Path, *, prefetch: bool, slots: int, run_s: float, brain_s: float, experiments: int,
               sandbox: str, seed: int = 0, executor: str = "local", ray_address: str | None = None) -> BenchResult:
    task_dir = workdir / f"{'prefetch' if prefetch else 'sequential'}-{executor}-{slots}"
    # On Ray each run takes one (logical) GPU, as a GPU task would; locally a CPU slot.
    _make_task(task_dir, run_s, gpus=1 if executor == "ray" else 0)
    given = {"max_experiments": experiments, "sandbox": sandbox, "prefetch": prefetch, "seed": seed,
             "executor": executor, "ray_address": ray_address if executor == "ray" else None}
    opened = open_lab(task_dir, flags={}, given=given, reporter=_Quiet(), gpus=None, slots=slots,
                      brain=SleepBrain(brain_s, seed))
    try:
        cpu_before = _cpu_s()
        stats = asyncio.run(opened.lab.run())
        cpu = _cpu_s() - cpu_before
        mode = "labmind (prefetch)" if prefetch else "sequential"
        result = measure(opened.store, mode, slots, run_s, brain_s)
        runs = [r for r in opened.store.runs() if r.status == RunStatus.DONE and r.ended_at and r.started_at]
        command_s = sum((r.ended_at or 0.0) - (r.started_at or 0.0) for r in runs)
        return BenchResult(**{**result.__dict__, "executor": executor,
                              "overhead_s": max(0.0, stats.busy_s - command_s) / max(1, len(runs)),
                              "cpu_per_run_s": cpu / max(1, len(runs))})
    finally:
        opened.close()


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (git, the runs' shells)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_bench(*, slots: int, run_s: float, brain_s: float, experiments: int, sandbox: str) -> list[BenchResult]:
    with tempfile.TemporaryDirectory(prefix="labmind-bench-") as tmp:
        return [bench_once(Path(tmp), prefetch=p, slots=slots, run_s=run_s, brain_s=brain_s,
                           experiments=experiments, sandbox=sandbox) for p in (True, False)]


def run_scale_bench(*, slot_counts: list[int], run_s: float, brain_s: float, experiments_per_slot: int,
                    sandbox: str, ray_address: str | None) -> list[BenchResult]:
    """labmind's scheduler on the local executor and on Ray, at each slot count (experiments scale with S)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="labmind-bench-") as tmp:
        for slots in slot_counts:
            for executor in ("local", "ray"):
                out.append(bench_once(Path(tmp), prefetch=True, slots=slots, run_s=run_s, brain_s=brain_s,
                                      experiments=experiments_per_slot * slots, sandbox=sandbox, executor=executor,
                                      ray_address=ray_address))
    return out
