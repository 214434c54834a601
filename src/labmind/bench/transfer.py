"""`labmind bench transfer`: does the insight library help later tasks of a family? Library on vs off.

A *family* of CPU tasks with known true values and real shared structure: every task is a `train.py` with the
knobs LR, WIDTH and DECAY, and a loss whose optimum in LR is nearly the same across the family (the shared
trick: "raise the learning rate about tenfold"), while the best WIDTH and DECAY differ from task to task (what
does not transfer). A run prints the task's true loss times log-normal noise (2%) drawn from its seed.

A *campaign* runs the family's tasks one after the other through the real lab loop (knobs brain, referee,
judge, store, git worktrees, subprocess runs), each with the same experiment budget and brain seed. It runs
twice per repetition on the same tasks and seeds: with one library shared by its tasks (insights recorded on
task 1 are offered to task 2, and so on; the knobs brain warm-starts from them) and with `--library off`.

Reported per task position and over tasks 2..K (task 1 starts with an empty library either way), as means with
95% t-intervals over repetitions and the paired difference on − off:

- **true gain**: log(true loss of the baseline / true loss of the lab's best *verified* experiment) — what the
  lab hands its user, measured against the truth, not the noisy estimate;
- **experiments to a real improvement**: the first candidate (in proposal order) whose true loss is 10% below
  the baseline's; a lab that never gets there counts as budget + 1 (censored, and said so);
- **insight hit rate**: of the library insights applied (warm starts), how many ended `improved`.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats

from labmind.lab.open import open_lab
from labmind.library import Library
from labmind.model import ExperimentKind
from labmind.observe.live import PlainReporter

FAMILY = "bench/transfer"
BASE = {"LR": 0.003, "WIDTH": 8, "DECAY": 0.5}
NOISE = 0.02
REAL = 0.10  # a "real improvement": true loss at least 10% below the baseline's

TOML = """[task]
name = "{name}"
editable = ["train.py"]
family = "{family}"

[run]
command = "python train.py"
timeout = "60s"

[metric]
name = "loss"
goal = "minimize"
"""

TRAIN = """import math, os, random

LR = {LR}
WIDTH = {WIDTH}
DECAY = {DECAY}

# This task's optimum (fixed when the task was made): LR is shared across the family, the rest is not.
_BEST = ({lr!r}, {w!r}, {d!r})
seed = int(os.environ.get("SEED", "0"))
true = (1 + 0.5 * (math.log10(LR) - math.log10(_BEST[0])) ** 2 + 0.1 * (math.log2(WIDTH) - _BEST[1]) ** 2
        + 0.2 * math.log(DECAY / _BEST[2]) ** 2)
print(f"loss: {{true * math.exp(random.Random(seed * 7919 + {salt}).gauss(0, {noise})):.6f}}")
"""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    lr: float  # the optimum's LR
    w: float  # its log2(WIDTH)
    d: float  # its DECAY
    salt: int

    def true_loss(self, cfg: dict[str, float]) -> float:
        lr, width, decay = float(cfg["LR"]), float(cfg["WIDTH"]), float(cfg["DECAY"])
        return (1 + 0.5 * (math.log10(lr) - math.log10(self.lr)) ** 2 + 0.1 * (math.log2(width) - self.w) ** 2
                + 0.2 * math.log(decay / self.d) ** 2)


def family(rep: int, k: int) -> list[TaskSpec]:
    """The rep-th draw of a K-task family: a shared LR optimum (10^-1.9 … 10^-1.5, jittered ±0.05 decades per
    task) and per-task WIDTH and DECAY optima."""
    rng = random.Random(f"transfer/{rep}")
    shared = rng.uniform(-1.9, -1.5)
    return [TaskSpec(f"transfer-{i + 1}", 10 ** (shared + rng.gauss(0, 0.05)), rng.uniform(1.5, 4.5),
                     math.exp(rng.uniform(math.log(0.1), math.log(2.0))), rng.randrange(1 << 20)) for i in range(k)]


def make_task(root: Path, spec: TaskSpec) -> Path:
    task = root / spec.name
    task.mkdir(parents=True)
    (task / "labmind.toml").write_text(TOML.format(name=spec.name, family=FAMILY))
    (task / "train.py").write_text(TRAIN.format(**BASE, lr=spec.lr, w=spec.w, d=spec.d, salt=spec.salt, noise=NOISE))
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=task, check=True)
    return task


class _Quiet(PlainReporter):
    def event(self, kind: str, message: str) -> None:
        return None


@dataclass
class TaskOutcome:
    task: int  # position in the campaign, 1-based
    gain: float  # true log gain of the best verified experiment (0 when none)
    first_real: int  # experiments to the first true 10% improvement (budget + 1 when none)
    reached: bool
    applied: int  # settled applications of library insights (warm starts) in this task's lab
    applied_hits: int  # of which ended improved (alone, or as a step of a verified stack)
    insights_recorded: int


def run_task(root: Path, spec: TaskSpec, position: int, *, experiments: int, seed: int,
             library: Path | None) -> TaskOutcome:
    task = make_task(root, spec)
    given = {"max_experiments": experiments, "sandbox": "none", "seed": seed, "lines": 1, "lookahead": 0,
             "library": str(library) if library else "off"}
    opened = open_lab(task, flags={}, given=given, reporter=_Quiet(), gpus=None, slots=1)
    try:
        asyncio.run(opened.lab.run())
        rows = sorted(opened.store.experiments(), key=lambda r: r.id)
        best = opened.lab.ledger.best()
    finally:
        opened.close()
    base_true = spec.true_loss(BASE)

    def config(row) -> dict[str, float]:
        params = row.idea.params
        return {n: params.get(n, BASE[n]) for n in BASE} if params.get("_brain") == "knobs" else dict(BASE)

    cands = [r for r in rows if r.kind == ExperimentKind.CANDIDATE]
    found = best is not None and best.kind == ExperimentKind.CANDIDATE
    gain = math.log(base_true / spec.true_loss(config(best))) if found else 0.0
    first = next((i for i, r in enumerate(cands, 1) if spec.true_loss(config(r)) <= (1 - REAL) * base_true),
                 experiments + 1)
    recorded = applications = hits = 0
    if library is not None and library.exists():
        with Library(library, readonly=True) as lib:
            everything = lib.all()
            recorded = sum(1 for i in everything if i.provenance.lab_dir == str(task))
            # The library's own record: an application is settled when its experiment (or the stack it is
            # part of) got its final verdict.
            for ins in everything:
                for app in lib.applications_of(ins.id or 0):
                    if app["lab_dir"] == str(task):
                        applications += 1
                        hits += app["outcome"] == "hit"
    return TaskOutcome(position, gain, first, first <= experiments, applications, hits, recorded)


def run_campaign(root: Path, specs: list[TaskSpec], *, experiments: int, seed: int,
                 library: Path | None) -> list[TaskOutcome]:
    return [run_task(root, spec, i, experiments=experiments, seed=seed, library=library)
            for i, spec in enumerate(specs, 1)]


@dataclass
class Interval:
    mean: float
    half: float  # 95% t half-width (nan with n < 2)
    n: int

    def text(self, digits: int = 3) -> str:
        spread = f" ± {self.half:.{digits}g}" if math.isfinite(self.half) else ""
        return f"{self.mean:.{digits}g}{spread} (95% CI, n={self.n})"


def interval(values: list[float]) -> Interval:
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, math.nan, n)
    return Interval(mean, float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(values) / math.sqrt(n), n)


@dataclass
class TransferResult:
    tasks: int
    experiments: int
    reps: int
    on: list[list[TaskOutcome]] = field(default_factory=list)  # per repetition, per task
    off: list[list[TaskOutcome]] = field(default_factory=list)

    def _values(self, arm: list[list[TaskOutcome]], what: str, positions: range) -> list[float]:
        """Per repetition: the mean over the given task positions."""
        return [statistics.fmean(float(getattr(c[p - 1], what)) for p in positions) for c in arm]

    def summary(self) -> dict[str, object]:
        later = range(2, self.tasks + 1)
        out: dict[str, object] = {"tasks": self.tasks, "experiments": self.experiments, "reps": self.reps,
                                  "family": FAMILY, "per_task": []}
        for p in range(1, self.tasks + 1):
            one = range(p, p + 1)
            row: dict[str, object] = {"task": p}
            for what in ("gain", "first_real", "reached"):
                on, off = self._values(self.on, what, one), self._values(self.off, what, one)
                row[what] = {"on": interval(on).__dict__, "off": interval(off).__dict__,
                             "diff": interval([a - b for a, b in zip(on, off, strict=True)]).__dict__}
            out["per_task"].append(row)  # type: ignore[union-attr]
        overall: dict[str, object] = {}
        for what in ("gain", "first_real", "reached"):
            on, off = self._values(self.on, what, later), self._values(self.off, what, later)
            overall[what] = {"on": interval(on).__dict__, "off": interval(off).__dict__,
                             "diff": interval([a - b for a, b in zip(on, off, strict=True)]).__dict__}
        applied = sum(t.applied for c in self.on for t in c)
        hits = sum(t.applied_hits for c in self.on for t in c)
        overall["applied"] = applied
        overall["applied_hits"] = hits
        overall["hit_rate"] = hits / applied if applied else None
        overall["insights_recorded"] = statistics.fmean(sum(t.insights_recorded for t in c) for c in self.on)
        out["later_tasks"] = overall
        return out


def run_bench(*, tasks: int, experiments: int, reps: int, first_rep: int = 0,
              progress=None) -> TransferResult:  # type: ignore[no-untyped-def]
    result = TransferResult(tasks, experiments, reps)
    with tempfile.TemporaryDirectory(prefix="labmind-transfer-bench-") as tmp:
        for rep in range(first_rep, first_rep + reps):
            specs = family(rep, tasks)
            on_root, off_root = Path(tmp) / f"rep{rep}-on", Path(tmp) / f"rep{rep}-off"
            on = run_campaign(on_root, specs, experiments=experiments, seed=rep, library=on_root / "library.db")
            off = run_campaign(off_root, specs, experiments=experiments, seed=rep, library=None)
            result.on.append(on)
            result.off.append(off)
            if progress is not None:
                progress(rep, on, off)
    return result
