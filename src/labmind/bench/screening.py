"""`labmind bench screening`: how far any screening rule could take labmind past the ratchet, on the judge
bench's own idea streams, with no lab.

labmind claims only what it verified, and a claim costs runs the ratchet never spends: more baseline runs (a
noise estimate) and fresh-seed runs of what it claims. `labmind bench judge` measured that cost at about 5
runs per 60-experiment lab. So at the same number of runs, labmind can beat the ratchet only if its screen
(the per-idea keep/drop decision) gets more true gain per idea than the ratchet's does. This bench answers
whether any rule of these families can, and by how much, by replaying the same idea streams and per-seed
values (`labmind.bench.judge`; stalls are drawn per run) with the screening runs left once the claim is paid
for. Each rule's gain is compared with the ratchet's on the same streams (a paired difference with its CI):

- **margin m** (in noise sd): the ratchet's own rule, kept when better than the incumbent's run by m; a
  negative m keeps near-ties. The best m per regime is picked *with hindsight* (the oracle row), so it is an
  upper bound for any rule that has to pick m from its own lab's data;
- **two-stage (drop, keep)**: one run on the screen seed; dropped when worse by more than `drop` sd, kept
  when better by more than `keep` sd; in between, one more run of the candidate decides on the mean paired
  difference: on a seed the incumbent already ran on, else on a fresh one where the incumbent runs too;
- **fitted margin**: the margin a lab could pick from its own data: every 5 ideas (after 10), the screen
  differences seen so far are deconvolved into an effect distribution (a grid NPMLE with the known noise;
  it takes the incumbent's run as unbiased, though that run was kept for looking good), and the margin
  that does best in a simulation under that fit over the next 60 ideas is used next;
- **perfect**: keeps exactly the ideas that truly help (the ceiling with these runs).

The reference is the ratchet with every run of the lab (screens plus what labmind spends on the claim).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from labmind.bench.judge import REGIMES, Outcome, Regime, ScriptedBrain, run_perfect, run_ratchet

#: Margins tried, in noise sd.
MARGINS = (-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.8)
#: Ideas ahead that the fitted margin's simulations look at.
HORIZON = 60
#: (drop, keep) thresholds of the two-stage screens tried, in noise sd.
TWO_STAGE = ((0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0))


def run_two_stage(regime: Regime, rep: int, brain: ScriptedBrain, budget: int, drop: float, keep: float) -> Outcome:
    """Screen on seed 0; a close call gets one more run, decided on the mean paired difference. The second run
    goes on a seed the incumbent already has a run on (it costs one run), else on a fresh seed where the
    incumbent runs too (two runs). Stalls are drawn per run, so they are not the ratchet's."""
    stalls = random.Random(f"{rep}/stalls/two-stage")

    def run(config: tuple[int, ...], seed: int) -> float:
        return regime.stalled(regime.value(rep, config, brain.gain(config), seed), stalls)

    config: tuple[int, ...] = ()
    incumbent = {0: run(config, 0)}
    runs, k, keeps, false, fresh = 1, 0, 0, 0, 1
    while runs < budget:
        cand = (*config, k)
        k += 1
        values = {0: run(cand, 0)}
        runs += 1
        first = regime.better_by(values[0], incumbent[0])
        if first < -drop * regime.sd:
            continue
        if first <= keep * regime.sd and runs + 2 <= budget:
            known = sorted(s for s in incumbent if s != 0)
            seed = known[0] if known else fresh
            values[seed] = run(cand, seed)
            runs += 1
            if seed not in incumbent:
                incumbent[seed] = run(config, seed)
                runs += 1
                fresh += 1
            if statistics.fmean(regime.better_by(values[s], incumbent[s]) for s in values) <= 0:
                continue
        elif first <= 0:
            continue
        keeps += 1
        false += brain.gain(cand) <= brain.gain(config)
        config, incumbent = cand, values
    return Outcome("two-stage", brain.gain(config), brain.gain(config), keeps, false, runs, k)


def deconvolve(diffs: list[float], noise_sd: float, iters: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The effect distribution behind screen differences (effect + the noise of two runs): a grid NPMLE by EM,
    the grid no coarser than half the noise (400 points at most: a 100x first step in a 2%-noise task)."""
    d = np.asarray(diffs)
    low, high = d.min() - noise_sd, d.max() + noise_sd
    points = int(min(400, max(60, math.ceil((high - low) / (noise_sd / 2)))))
    grid = np.linspace(low, high, points)
    weights = np.full(points, 1 / points)
    like = np.exp(-0.5 * ((d[:, None] - grid[None, :]) / noise_sd) ** 2)
    for _ in range(iters):
        weights = weights * (like / (like @ weights + 1e-300)[:, None]).mean(0)
    return grid, weights / weights.sum()


def best_margin(grid: np.ndarray, weights: np.ndarray, sd: float, horizon: int, rng: np.random.Generator,
                sims: int = 300, unit: float | None = None) -> float:
    """The margin (in `unit`s, default `sd`) whose simulated ratchet over `horizon` ideas gains most, effects
    drawn from the fit and each run's noise (what does not cancel on one seed) with sd `sd`."""
    unit = sd if unit is None else unit
    effects = rng.choice(grid, size=(sims, horizon), p=weights)
    noise = rng.normal(0.0, sd, size=(sims, horizon + 1))
    gains = []
    for m in MARGINS:
        best, gain = noise[:, 0].copy(), np.zeros(sims)
        for t in range(horizon):
            seen = gain + effects[:, t] + noise[:, t + 1]
            keep = seen > best + m * unit
            gain = np.where(keep, gain + effects[:, t], gain)
            best = np.where(keep, seen, best)
        gains.append(gain.mean())
    return MARGINS[int(np.argmax(gains))]


def run_fitted_margin(regime: Regime, rep: int, brain: ScriptedBrain, budget: int, warm: int = 10,
                      every: int = 5) -> Outcome:
    """The ratchet with a margin re-chosen from the lab's own screen differences (see the module's doc)."""
    rng = np.random.default_rng(rep)
    stalls = random.Random(f"{rep}/stalls/ratchet")
    sd = regime.sd * math.sqrt(1 - regime.r)  # what does not cancel between two runs on the same seed
    config: tuple[int, ...] = ()
    best = regime.stalled(regime.value(rep, config, 0.0, 0), stalls)
    runs, k, keeps, false, margin = 1, 0, 0, 0, 0.0
    diffs: list[float] = []
    while runs < budget:
        if k >= warm and k % every == 0:
            grid, weights = deconvolve(diffs, sd * math.sqrt(2))
            # Over the rest of the lab, 60 ideas at most (the margin is re-chosen long before that).
            margin = best_margin(grid, weights, sd, min(HORIZON, max(10, budget - runs)), rng, unit=regime.sd)
        cand = (*config, k)
        value = regime.stalled(regime.value(rep, cand, brain.gain(cand), 0), stalls)
        runs, k = runs + 1, k + 1
        diffs.append(regime.better_by(value, best))
        if diffs[-1] > margin * regime.sd:  # margins in the regime's noise sd, as every rule here
            keeps += 1
            false += brain.gain(cand) <= brain.gain(config)
            best, config = value, cand
    return Outcome("fitted margin", brain.gain(config), brain.gain(config), keeps, false, runs, k)


@dataclass
class ScreeningResult:
    regime: str
    runs: int  # the reference ratchet's runs
    screen_runs: int  # the runs left to every other rule
    gains: dict[str, list[float]] = field(default_factory=dict)  # rule -> true gain per repetition

    def summary(self, rule: str) -> dict[str, float]:
        """Mean gain with its 95% CI; its ratio to the ratchet's mean gain, and the paired difference from the
        ratchet's (the same streams: per repetition) with its 95% CI, which is what says whether a rule is ahead."""
        values, reference = self.gains[rule], self.gains["ratchet"]
        t = float(stats.t.ppf(0.975, len(values) - 1))
        diffs = [a - b for a, b in zip(values, reference, strict=True)]
        ref_mean = statistics.fmean(reference)
        return {"gain": statistics.fmean(values), "ci": t * statistics.stdev(values) / math.sqrt(len(values)),
                "n": len(values), "vs_ratchet": statistics.fmean(values) / ref_mean if ref_mean else math.nan,
                "minus_ratchet": statistics.fmean(diffs),
                "minus_ratchet_ci": t * statistics.stdev(diffs) / math.sqrt(len(diffs))}

    def oracle_margin(self) -> float:
        """The margin whose mean gain was highest here: known only with hindsight."""
        return max(MARGINS, key=lambda m: statistics.fmean(self.gains[margin_rule(m)]))


def margin_rule(margin: float) -> str:
    return f"margin {margin:+.1f}"


def run_screening(regime: Regime, *, reps: int, experiments: int, claim_runs: int, first_rep: int = 0
                  ) -> ScreeningResult:
    """Every rule but the reference gets `experiments + 1` runs (the baseline's screen run and one per idea);
    the reference ratchet gets `claim_runs` more, the runs labmind spends on its claim."""
    screen_runs = experiments + 1
    result = ScreeningResult(regime.name, screen_runs + claim_runs, screen_runs)
    rules = ["ratchet", *(margin_rule(m) for m in MARGINS), "fitted margin",
             *(f"two-stage {d:g}/{k:g}" for d, k in TWO_STAGE), "perfect"]
    result.gains = {rule: [] for rule in rules}
    for rep in range(first_rep, first_rep + reps):
        brain = ScriptedBrain(regime, rep, seeds=0)
        result.gains["ratchet"].append(run_ratchet(regime, rep, brain, result.runs).gain)
        for m in MARGINS:
            result.gains[margin_rule(m)].append(run_ratchet(regime, rep, brain, screen_runs, margin=m).gain)
        result.gains["fitted margin"].append(run_fitted_margin(regime, rep, brain, screen_runs).gain)
        for drop, keep in TWO_STAGE:
            outcome = run_two_stage(regime, rep, brain, screen_runs, drop, keep)
            result.gains[f"two-stage {drop:g}/{keep:g}"].append(outcome.gain)
        result.gains["perfect"].append(run_perfect(regime, rep, brain, experiments).gain)
    return result


__all__ = ["MARGINS", "REGIMES", "TWO_STAGE", "ScreeningResult", "margin_rule", "run_fitted_margin", "run_screening",
           "run_two_stage"]
