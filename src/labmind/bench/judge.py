"""`labmind bench judge`: true progress per run, labmind's judge against a plain ratchet and the previous rule.

Every idea has a known true effect. A scripted brain feeds them one per experiment to the real lab loop
(scheduler, referee, judge, store, git worktrees, subprocess runs); a run prints a value drawn from the
task's noise model for its configuration and seed. The same idea stream and the same noise draws (a value
depends only on the configuration and the seed) are then replayed by two rules that need no lab, given
exactly as many runs as labmind used:

- **ratchet** (autoresearch's rule): one run per idea on a fixed seed, kept if it beats the best value so far;
- **previous** (labmind before Judge 2.0): 3 baseline runs, minimum effect 2 × their sd, one screening run on
  a fresh seed, then 3 confirmation seeds and a one-sided Welch test against the incumbent's runs;
- **perfect** (a ceiling, not a rule anyone can run): one run per idea and it keeps exactly the ideas that truly
  help, with no baseline or verification runs: the most true gain any rule can reach with these runs.

Reported per regime, over repetitions (mean with a 95% t-interval): the true gain of what each rule hands
the user as its result (labmind: its best *verified* experiment; the ratchet: its last keep; previous: its
best improved), the true gain labmind's lines reached (provisional steps included), the claims made and
how many were false (a claim is false when the claimed experiment's true value is not better than what it
was claimed to beat), and runs per verdict.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats

from labmind.brains.base import BrainContext
from labmind.lab.open import open_lab
from labmind.model import ExperimentKind, Idea, PastExperiment, RunStatus
from labmind.observe.live import PlainReporter

TOML = """[task]
name = "judge-bench"
editable = ["ideas.txt", "values.txt"]

[run]
command = "{command}"
timeout = "60s"

[metric]
name = "score"
goal = "minimize"
scale = "{scale}"
"""


@dataclass(frozen=True)
class Regime:
    """A task with a known truth. Gains are in 'better' units: subtracted from the value (linear) or from its
    log (log: a gain of g makes the value exp(-g) times smaller)."""

    name: str
    about: str
    scale: str  # linear | log
    base: float
    sd: float  # per-run noise: absolute (linear) or of the log (log)
    draw: Callable[[random.Random, int], float]  # the k-th idea's true gain
    r: float = 0.0  # seed correlation: the share of the noise variance that the seed fixes
    stall: float = 0.0  # chance that a run stalls (its value multiplied by 5 to 60): a property of the run, not seed

    def true_value(self, gain: float) -> float:
        return self.base * math.exp(-gain) if self.scale == "log" else self.base - gain

    def value(self, rep: int, config: tuple[int, ...], gain: float, seed: int) -> float:
        """One run's value: depends only on (repetition, configuration, seed), so every rule sees the same."""
        shared = random.Random(f"{rep}/seed/{seed}").gauss(0, 1)
        own_rng = random.Random(f"{rep}/{zlib.crc32(repr(config).encode())}/{seed}")
        noise = self.sd * (math.sqrt(self.r) * shared + math.sqrt(1 - self.r) * own_rng.gauss(0, 1))
        return self.base * math.exp(-gain + noise) if self.scale == "log" else self.base - gain + noise

    def better_by(self, value: float, than: float) -> float:
        """How much better `value` is than `than`, on the regime's scale (the metric is minimised)."""
        return math.log(than / value) if self.scale == "log" else than - value

    def stalled(self, value: float, rng: random.Random) -> float:
        """A run's stall, drawn per run (the lab's runs draw theirs in the run command)."""
        return value * rng.uniform(5, 60) if self.stall and rng.random() < self.stall else value

    def command(self) -> str:
        read = 'sed -n \\"$((SEED + 1))p\\" values.txt'
        if not self.stall:
            return read
        # bash's $RANDOM: a stall with probability `stall`, slowing the run 5 to 60 times.
        return (f"{read} | awk -v r=$RANDOM -v f=$RANDOM '{{ if (r < {self.stall} * 32768) "
                f"printf \\\"%s %.9g\\\\n\\\", $1, $2 * (5 + 55 * f / 32768); else print }}'")


def _mixture(p_good: float, good: tuple[float, float], bad_sd: float) -> Callable[[random.Random, int], float]:
    def draw(rng: random.Random, k: int) -> float:
        return rng.uniform(*good) if rng.random() < p_good else -abs(rng.gauss(0, bad_sd))
    return draw


def _speed(rng: random.Random, k: int) -> float:
    if k == 0:
        return math.log(100.0)  # the first idea makes it 100× faster
    return -math.log(rng.uniform(0.97, 0.90)) if rng.random() < 0.3 else -abs(rng.gauss(0, 0.08))


REGIMES = {
    "small": Regime("small", "many small effects: 20% of ideas gain 0.5–2σ, the rest lose |N(0, 1σ)|", "linear",
                    10.0, 1.0, _mixture(0.2, (0.5, 2.0), 1.0)),
    "medium": Regime("medium", "medium effects: 20% gain 2–4σ, the rest lose |N(0, 2σ)|", "linear", 10.0, 1.0,
                     _mixture(0.2, (2.0, 4.0), 2.0)),
    "large": Regime("large", "large effects: 20% gain 4–10σ, the rest lose |N(0, 4σ)|", "linear", 10.0, 1.0,
                    _mixture(0.2, (4.0, 10.0), 4.0)),
    "speed": Regime("speed", "a kernel time: the first idea is 100× faster, then 30% of ideas 3–10% faster, the "
                             "rest slower by |N(0, 8%)|; 2% timing noise", "log", 30.0, 0.02, _speed),
    "heavy": Regime("heavy", "the speed task with heavy tails: 10% of runs (not seeds) stall 5–60× slower", "log",
                    30.0, 0.02,
                    _speed, stall=0.10),
    "correlated": Regime("correlated", "small effects, but the seed fixes 90% of the noise (r = 0.9)", "linear",
                         10.0, 1.0, _mixture(0.2, (0.5, 2.0), 1.0), r=0.9),
}


# -- labmind, through the real lab loop ----------------------------------------------------------------


class ScriptedBrain:
    """Applies the k-th idea of the stream to the parent's configuration and writes that configuration's value
    for every seed (the run prints the line of its seed)."""

    name = "scripted"

    def __init__(self, regime: Regime, rep: int, seeds: int) -> None:
        self.regime, self.rep, self.seeds = regime, rep, seeds
        self.rng = random.Random(f"{rep}/ideas")
        self.effects: list[float] = []
        self.configs: dict[int, tuple[int, ...]] = {}  # experiment id -> idea ids applied
        self.lock = threading.Lock()

    def effect(self, k: int) -> float:
        while len(self.effects) <= k:
            self.effects.append(self.regime.draw(self.rng, len(self.effects)))
        return self.effects[k]

    def gain(self, config: tuple[int, ...]) -> float:
        return sum(self.effect(k) for k in config)

    def propose(self, ctx: BrainContext) -> Idea:
        text = (ctx.task_dir / "ideas.txt").read_text().split()
        parent = tuple(int(t) for t in text)
        with self.lock:
            k = len(self.configs)
            config = (*parent, k)
            self.configs[ctx.experiment_id] = config
            gain = self.gain(config)
        (ctx.task_dir / "ideas.txt").write_text(" ".join(map(str, config)) + "\n")
        values = [self.regime.value(self.rep, config, gain, s) for s in range(self.seeds)]
        (ctx.task_dir / "values.txt").write_text("".join(f"score: {v:.9g}\n" for v in values))
        return Idea(title=f"idea {k}", hypothesis=f"true gain {self.effect(k):+.3g}")

    def learn(self, result: PastExperiment) -> None:
        return None


class _Quiet(PlainReporter):
    def event(self, kind: str, message: str) -> None:
        return None


@dataclass
class Outcome:
    rule: str
    gain: float  # true gain of the result handed to the user (labmind: its best verified experiment)
    reached: float  # true gain of the best point it reached, claimed or not (labmind: its best line head)
    claims: int
    false_claims: int
    runs: int
    verdicts: int


def _make_task(root: Path, regime: Regime, rep: int, seeds: int) -> None:
    root.mkdir(parents=True)
    (root / "labmind.toml").write_text(TOML.format(scale=regime.scale, command=regime.command()))
    (root / "ideas.txt").write_text("\n")
    values = [regime.value(rep, (), 0.0, s) for s in range(seeds)]
    (root / "values.txt").write_text("".join(f"score: {v:.9g}\n" for v in values))
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True)


def run_labmind(workdir: Path, regime: Regime, rep: int, experiments: int) -> tuple[Outcome, ScriptedBrain]:
    seeds = 6 * experiments + 60
    task = workdir / f"{regime.name}-{rep}"
    _make_task(task, regime, rep, seeds)
    brain = ScriptedBrain(regime, rep, seeds)
    # No insight library: the bench's labs must neither fill the user's library nor learn from one another.
    given = {"max_experiments": experiments, "sandbox": "none", "seed": rep, "lookahead": 0, "library": "off"}
    opened = open_lab(task, flags={}, given=given, reporter=_Quiet(), gpus=None, slots=1, brain=brain)
    try:
        asyncio.run(opened.lab.run())
        store = opened.store
        rows = {r.id: r for r in store.experiments()}
        runs = sum(1 for r in store.runs() if r.status == RunStatus.DONE)
        verdicts = sum(1 for r in rows.values() if r.kind == ExperimentKind.CANDIDATE and r.verdict)
        best = opened.lab.ledger.best()

        def gain_of(exp_id: int) -> float:
            return brain.gain(brain.configs.get(exp_id, ()))

        claims = [r for r in rows.values() if r.verdict == "improved"]
        false = sum(1 for r in claims
                    if gain_of(r.id) <= gain_of(int(r.judgement.get("verify", {}).get("anchor", r.parent_id or 0))))
        gain = gain_of(best.id) if best is not None and best.kind == ExperimentKind.CANDIDATE else 0.0
        heads = [gain_of(line.incumbent_id) for line in store.lines() if line.incumbent_id in brain.configs]
        return Outcome("labmind", gain, max([gain, *heads]), len(claims), false, runs, verdicts), brain
    finally:
        opened.close()


# -- the rules that need no lab ------------------------------------------------------------------------


def run_ratchet(regime: Regime, rep: int, brain: ScriptedBrain, budget: int, seed: int = 0,
                margin: float = 0.0) -> Outcome:
    """One run per idea on a fixed seed; keep when it beats the best value so far. `margin` (in the regime's
    noise sd, on its scale): keep only when better by that much; a negative margin keeps near-ties too."""
    stalls = random.Random(f"{rep}/stalls/ratchet")
    config: tuple[int, ...] = ()
    best = regime.stalled(regime.value(rep, config, 0.0, seed), stalls)
    runs, k, keeps, false = 1, 0, 0, 0
    while runs < budget:
        cand = (*config, k)
        value = regime.stalled(regime.value(rep, cand, brain.gain(cand), seed), stalls)
        runs += 1
        if regime.better_by(value, best) > margin * regime.sd:
            keeps += 1
            false += brain.gain(cand) <= brain.gain(config)
            best, config = value, cand
        k += 1
    return Outcome("ratchet", brain.gain(config), brain.gain(config), keeps, false, runs, k)


def run_perfect(regime: Regime, rep: int, brain: ScriptedBrain, budget: int) -> Outcome:
    """Knows the truth: every run tries one idea and keeps it exactly when it truly helps."""
    config: tuple[int, ...] = ()
    for k in range(budget):
        if brain.effect(k) > 0:
            config = (*config, k)
    return Outcome("perfect", brain.gain(config), brain.gain(config), len(config), 0, budget, budget)


def _welch_greater(a: list[float], b: list[float]) -> float:
    """One-sided p that mean(a) > mean(b) (values in 'higher is better' units)."""
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return 0.0 if statistics.fmean(a) > statistics.fmean(b) else 1.0
    p = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return 1.0 if math.isnan(p) else p


def run_previous(regime: Regime, rep: int, brain: ScriptedBrain, budget: int) -> Outcome:
    """labmind's rule before Judge 2.0, on the metric's own (linear) units."""
    seed = 0
    stalls = random.Random(f"{rep}/stalls/previous")

    def draw(config: tuple[int, ...]) -> float:
        nonlocal seed
        value = regime.stalled(regime.value(rep, config, brain.gain(config), seed), stalls)
        seed += 1
        return -value  # higher is better

    config: tuple[int, ...] = ()
    inc = [draw(config) for _ in range(3)]
    min_effect = max(2 * statistics.stdev(inc), 1e-9 * max(1.0, abs(statistics.fmean(inc))))
    runs, k, claims, false, verdicts = 3, 0, 0, 0, 0
    while runs < budget:
        cand = (*config, k)
        k += 1
        verdicts += 1
        screen = draw(cand)
        runs += 1
        if screen - statistics.fmean(inc) <= min_effect or runs + 3 > budget:
            continue
        confirm = [draw(cand) for _ in range(3)]
        runs += 3
        if _welch_greater(confirm, inc) < 0.05 and statistics.fmean(confirm) > statistics.fmean(inc):
            claims += 1
            false += brain.gain(cand) <= brain.gain(config)
            config, inc = cand, confirm
    return Outcome("previous", brain.gain(config), brain.gain(config), claims, false, runs, verdicts)


# -- the whole bench -------------------------------------------------------------------------------------


@dataclass
class RegimeResult:
    regime: str
    about: str
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)

    def summary(self, rule: str) -> dict[str, float]:
        rows = self.outcomes[rule]
        gains = [o.gain for o in rows]
        mean = statistics.fmean(gains)
        half = (float(stats.t.ppf(0.975, len(gains) - 1)) * statistics.stdev(gains) / math.sqrt(len(gains))
                if len(gains) > 1 else math.nan)
        claims = sum(o.claims for o in rows)
        false = sum(o.false_claims for o in rows)
        return {"gain": mean, "ci": half, "reached": statistics.fmean(o.reached for o in rows), "n": len(rows),
                "runs": statistics.fmean(o.runs for o in rows),
                "claims": claims / len(rows), "false_claims": false / len(rows),
                "false_share": false / claims if claims else 0.0,
                "runs_per_verdict": sum(o.runs for o in rows) / max(1, sum(o.verdicts for o in rows))}


def run_regime(regime: Regime, *, reps: int, experiments: int, first_rep: int = 0) -> RegimeResult:
    result = RegimeResult(regime.name, regime.about, {"labmind": [], "ratchet": [], "previous": [], "perfect": []})
    with tempfile.TemporaryDirectory(prefix="labmind-judge-bench-") as tmp:
        for rep in range(first_rep, first_rep + reps):
            mine, brain = run_labmind(Path(tmp), regime, rep, experiments)
            result.outcomes["labmind"].append(mine)
            result.outcomes["ratchet"].append(run_ratchet(regime, rep, brain, mine.runs))
            result.outcomes["previous"].append(run_previous(regime, rep, brain, mine.runs))
            result.outcomes["perfect"].append(run_perfect(regime, rep, brain, mine.runs))
    return result
