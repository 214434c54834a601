"""The referee: every experiment's next step from its rows, verdicts, provisional keeps and verified claims.

A composed part of the lab (not a mixin): it owns the judge and reads and writes the store; the lab hands
it a small `Host` for what happens around a verdict (notes, the brain's learning, git refs).

The protocol (README "How a gain is judged"):

1. Baseline: `baseline_runs` seeds. Their seeds are the lab's *screening panel*. The scale (log or linear)
   and the noise are measured; a baseline whose runs disagree with no majority gets more runs.
2. Screening: one run on the panel's first seed, compared with the line's incumbent on the same seed (the
   incumbent gets a `reference` run there if it has none). Better by the minimum effect: `kept`, and the
   line builds on it. A run far outside the noise (a stall) is re-run once on the same seed.
3. Verification: a line's provisional head is compared with its last verified point on seeds fresh to the
   head (first the ones the verified point already has runs on, so the pairs cost it nothing; then new ones),
   paired when the lab's measured seed correlation favours it, two seeds at the first look and one more per
   look, up to `confirm_seeds` seeds (twice that at the close), one-sided at the LOND level of the lab's j-th
   claim. It starts when the line has run `verify_every` experiments since its last verification, and for
   every unverified head when the lab stops proposing. A flagged would-be gain is verified the same way
   before a person is asked to review it.
4. Claimed: the head is `improved` and becomes the line's verified point. Shown not better (P(better) < 5%):
   the head and its provisional steps become `not_improved`/`inconclusive` and the line goes back to its
   verified point. Undecided: nothing is claimed and the line keeps building on its head.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Protocol

from labmind.findings import Finding, merged, rules_of
from labmind.guard.candidate import Clock, Measurement, check_candidate
from labmind.guard.holding import holding
from labmind.judge import Judge, Noise, Scale, choose_scale, estimate, summarize
from labmind.judge.gate import baseline_problem
from labmind.judge.robust import robust_location
from labmind.lab import promotion
from labmind.lab.diagnose import baseline_failed_message, crash_cause, holdout_problem
from labmind.lab.ledger import Ledger
from labmind.lab.verification import UNSELECTED, Verifier
from labmind.model import ExperimentKind, ExperimentStatus, RunPurpose, RunStatus
from labmind.paths import LabPaths
from labmind.scale import from_scale, to_scale
from labmind.store import ExperimentRow, RunRow
from labmind.task import Task
from labmind.verdicts import MEANING, Verdict

PROTECTED_FLAG = "protected_modified"
#: Experiments a line runs between two verifications of its head (the lab's end verifies every head).
VERIFY_EVERY = 40
#: Screens needed before an off-scale screening result counts as a possible stall, and how far off it must be.
STALL_HISTORY = 8
STALL_MADS = 10.0


class Host(Protocol):
    """What the referee needs from the lab around it (notes and rows go through the lab's `Ledger`)."""

    def verdict_given(self, exp: ExperimentRow, promoted: bool, previous: str | None) -> None:
        """`previous`: the verdict it had before (a provisional `kept` that verification decided), if any."""

    def baseline_measured(self, exp: ExperimentRow) -> None: ...

    def experiments_left(self) -> int | None:
        """Candidate experiments still to come in this session, when a limit says so (None: no limit)."""


@dataclass(frozen=True)
class Failure:
    verdict: Verdict
    reason: str


def odd_one_out(values: list[float]) -> bool:
    """Runs split into groups far apart compared with how close the nearest two are: with three or four runs
    and no noise estimate this may be a stall (or two), or chance (about one set of three Gaussian runs in
    twelve has a gap ratio above 20), so it asks for runs, never excludes one."""
    if not 3 <= len(values) < 5:
        return False
    ordered = sorted(values)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return min(gaps) > 0 and max(gaps) > 20 * min(gaps)


class Referee:
    """The experiment state machine: `advance` takes an experiment's next step from its rows alone. Its second
    stage, verification, is the composed `Verifier`."""

    def __init__(self, ledger: Ledger, task: Task, paths: LabPaths, host: Host) -> None:
        self.ledger, self.task, self.paths, self.host = ledger, task, paths, host
        self.store, self.rows = ledger.store, ledger.rows
        self.fatal: str | None = None
        self.verify_every = VERIFY_EVERY
        self.verifier = Verifier(self)
        self._open_judge()

    @property
    def judge(self) -> Judge | None:
        return self.ledger.judge

    @judge.setter
    def judge(self, judge: Judge | None) -> None:
        self.ledger.judge = judge

    # -- reading the store -------------------------------------------------------------------------

    def refresh(self, exp_id: int) -> ExperimentRow:
        return self.ledger.refresh(exp_id)

    def _open_judge(self) -> None:
        lab = self.store.lab()
        if lab is None or lab.baseline_id is None:
            return
        base = self.store.experiment(lab.baseline_id)
        if base.status != ExperimentStatus.DONE or base.verdict is not None:
            return
        scale = Scale(lab.scale) if lab.scale else self._choose_scale(base.id)[0]  # labs before schema 4
        self.judge = Judge(self.task, scale, self.task.noise.parsed_min_effect())

    def _choose_scale(self, baseline_id: int) -> tuple[Scale, str]:
        values = [v for v in self.values_by_seed(baseline_id).values()]
        return choose_scale(self.task.metric.scale, values)

    def ok_runs(self, exp_id: int) -> list[RunRow]:
        return [r for r in self.store.runs_of(exp_id) if r.status == RunStatus.DONE and r.outcome == "ok"
                and r.metric is not None]

    def values_by_seed(self, exp_id: int, purposes: tuple[str, ...] | None = None) -> dict[int, float]:
        return {r.seed: float(r.metric) for r in self.ok_runs(exp_id)
                if r.metric is not None and (purposes is None or r.purpose in purposes)}

    def panel(self) -> list[int]:
        """The screening seeds: the baseline's, in order."""
        lab = self.store.lab()
        if lab is None or lab.baseline_id is None:
            return []
        return [r.seed for r in self.store.runs_of(lab.baseline_id) if r.purpose == RunPurpose.BASELINE
                and r.requeued_from is None]

    def screen_seed(self, attempt: int = 0) -> int:
        seeds = self.panel()
        return seeds[attempt] if attempt < len(seeds) else self.store.next_seed()

    def noise(self) -> Noise:
        """The lab's noise on the judge's scale, from every experiment with several unselected runs; the seed
        correlation from experiments that share seeds with their parent and from verifications."""
        assert self.judge is not None
        scaled: dict[int, dict[int, float]] = {}
        for run in self.store.runs(status=RunStatus.DONE):
            # Screening runs were chosen for looking good: their spread around the others is not noise.
            if run.outcome == "ok" and run.metric is not None and run.purpose in UNSELECTED:
                try:
                    scaled.setdefault(run.experiment_id, {})[run.seed] = self.judge.scaled(run.metric)
                except ValueError:
                    continue
        pairs = []
        for row in self.rows.values():
            mine = scaled.get(row.id, {})
            if row.parent_id is not None and row.parent_id in scaled:
                pairs.append((scaled[row.parent_id], mine))
            anchor = row.judgement.get("verify", {}).get("anchor")
            if anchor is not None and anchor in scaled and anchor != row.parent_id:
                pairs.append((scaled[anchor], mine))
        return estimate(list(scaled.values()), pairs)

    # -- the state machine ---------------------------------------------------------------------------

    def advance(self, exp_id: int) -> None:
        """Take an experiment's next step from what the store says about it. Never raises on a recorded value:
        numbers that cannot be judged become a `bad_metric` verdict."""
        exp = self.refresh(exp_id)
        try:
            if exp.kind == ExperimentKind.BASELINE and exp.status == ExperimentStatus.TESTING:
                self.step_baseline(exp)
            elif exp.status == ExperimentStatus.TESTING:
                self.step_screen(exp)
            self.verifier.step_verifications(exp_id)
            self.step_waiting(exp_id)
        except (ArithmeticError, ValueError) as exc:
            self.unjudgeable(exp_id, exc)

    def unjudgeable(self, exp_id: int, exc: Exception) -> None:
        exp = self.refresh(exp_id)
        reason = f"{self.task.metric.name} could not be judged: {exc}"
        if exp.kind == ExperimentKind.BASELINE:
            self.fatal = (f"the baseline's values cannot be judged ({exc}). Fix the task, commit, and start afresh "
                          f"with `labmind run --fresh {self.paths.task_dir}`.")
            self.ledger.note("error", self.fatal, experiment_id=exp_id)
            return
        if exp.status == ExperimentStatus.TESTING or exp.verdict == Verdict.KEPT:
            # A value off the judge's scale can still be a cheat's (a loss of 0 under a declared bound): the
            # guard's bound check then holds it for a person's review instead of a plain bad_metric.
            values = [float(r.metric) for r in self.ok_runs(exp_id) if r.metric is not None]
            flags = check_candidate(self.task, Measurement(tuple(v for v in values if math.isfinite(v))))
            if flags:
                flags = merged(exp.flags, flags)
                rules = len(rules_of(flags))
                self.finish(exp_id, Verdict.FLAGGED, f"{reason}, and {rules} integrity check(s) hold it for a "
                                                     "person's review (`labmind show`)", flags=flags)
            else:
                self.finish(exp_id, Verdict.BAD_METRIC, reason)
            line = self.store.line(exp.line_id or 0) if exp.line_id else None
            if line is not None and line.incumbent_id == exp_id:
                self.rebase(line.id, f"exp {exp_id} could not be judged")

    def step_waiting(self, exp_id: int) -> None:
        """Candidates waiting for a reference run of this experiment take their step."""
        for row in list(self.rows.values()):
            if row.status == ExperimentStatus.TESTING and row.kind == ExperimentKind.CANDIDATE and row.id != exp_id:
                line = self.store.line(row.line_id or 0)
                if line.incumbent_id == exp_id or row.parent_id == exp_id:
                    self.step_screen(self.refresh(row.id))

    # -- baseline ------------------------------------------------------------------------------------

    def step_baseline(self, exp: ExperimentRow) -> None:
        runs = self.store.runs_of(exp.id)
        done = [r for r in runs if r.status == RunStatus.DONE]
        # The first failed run decides (the others would fail the same way, a hanging one only after its timeout).
        failed = next((r for r in done if r.outcome != "ok"), None)
        if failed is not None:
            failure = self.failure(failed)
            self.finish(exp.id, failure.verdict, failure.reason)
            self.fatal = baseline_failed_message(failure.reason, failed, self.paths.root)
            return
        held = self.task.metric.holdout
        problem = next((p for r in done if held and (p := holdout_problem(r, self.task.metric.name, held))), None)
        if problem is not None:
            # Checked at the baseline: later, a silent evaluator would flag every candidate holdout_failed.
            self.finish(exp.id, Verdict.NO_METRIC, problem.split(". Expected")[0])
            self.fatal = (f"{problem} Fix the evaluator, commit, and start afresh with "
                          f"`labmind run --fresh {self.paths.task_dir}`.")
            return
        if any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs):
            return
        metric = self.task.metric
        gate = metric.parsed_gate()
        missed = baseline_problem([r.secondary.get(gate[0]) for r in done] if gate else [], gate, metric.gate or "")
        if missed is not None:
            self.finish(exp.id, Verdict.NO_METRIC if missed.no_value else Verdict.NOT_IMPROVED, missed.reason)
            self.fatal = (f"{missed.message}; then commit and start afresh with "
                          f"`labmind run --fresh {self.paths.task_dir}`.")
            return
        values = [float(r.metric) for r in done if r.metric is not None]
        scale, why = choose_scale(self.task.metric.scale, values)
        scaled = [to_scale(scale, v) for v in values]
        loc = robust_location(scaled)
        if (not loc.agreed or odd_one_out(scaled)) and len(values) < max(5, 2 * self.task.noise.baseline_runs):
            # Too few runs to tell a stall from noise (there is no lab noise yet): more runs, so that a strict
            # majority can outvote it.
            self.store.add_run(experiment_id=exp.id, purpose=RunPurpose.BASELINE, seed=self.store.next_seed())
            self.ledger.note("noise", f"the baseline's runs disagree ({', '.join(f'{v:.6g}' for v in values)}); "
                                    "adding a run", experiment_id=exp.id)
            return
        # The printed values themselves (a round trip through the log scale would turn 42 into 42.00000000000001).
        kept = [v for v, sv in zip(values, scaled, strict=True) if sv not in loc.outliers]
        s = summarize(kept)
        min_effect = self.task.noise.parsed_min_effect()
        shown_min = min_effect.in_units(s.mean, self.task.sign)
        reason = (f"baseline {self.task.metric.name} {s.mean:.6g} ± {s.sd:.3g} (sd, n={s.n}); judged on a {why}; "
                  f"minimum effect {min_effect.text()}")
        if loc.outliers:
            reason += "; outliers left out: " + ", ".join(f"{from_scale(scale, v):.6g}" for v in loc.outliers)
        with self.store.transaction():
            self.store.update_lab(min_effect=shown_min, noise_sd=s.sd, scale=scale.value)
            self.store.update_experiment(exp.id, status=ExperimentStatus.DONE, metric=s.mean, metric_sd=s.sd,
                                         ci_low=s.ci_low, ci_high=s.ci_high, n_runs=s.n, finished_at=time.time(),
                                         reason=reason)
        self.refresh(exp.id)
        self.judge = Judge(self.task, scale, min_effect)
        self.ledger.note("noise", reason, experiment_id=exp.id)
        self.host.baseline_measured(self.rows[exp.id])
        for row in list(self.rows.values()):
            if row.kind == ExperimentKind.CANDIDATE and row.status == ExperimentStatus.TESTING:
                self.advance(row.id)

    # -- screening -----------------------------------------------------------------------------------

    def step_screen(self, exp: ExperimentRow) -> None:
        if self.judge is None:
            return  # judged once the baseline has measured the noise
        if exp.judgement.get("verify", {}).get("state") == "running":
            return  # a flagged would-be gain under verification (`step_verification` takes it on)
        runs = self.store.runs_of(exp.id)
        if any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs):
            return
        done = [r for r in runs if r.status == RunStatus.DONE]
        for run in done:
            hard = [f for f in run.flags if f.rule == PROTECTED_FLAG]
            if hard:
                self.finish(exp.id, Verdict.REJECTED, hard[0].evidence, flags=merged(exp.flags, hard))
                return
        failed = next((r for r in done if r.outcome != "ok"), None)
        if failed is not None:
            failure = self.failure(failed)
            self.finish(exp.id, failure.verdict, failure.reason)
            return
        screens = [r for r in done if r.purpose == RunPurpose.SCREEN]
        if not screens:
            self.store.add_run(experiment_id=exp.id, purpose=RunPurpose.SCREEN, seed=self.screen_seed())
            return
        line = self.store.line(exp.line_id or 0)
        head = line.incumbent_id
        assert head is not None
        reference = self.reference_values(head, [r.seed for r in screens])
        if reference is None:
            return  # a reference run of the incumbent is queued
        noise = self.noise()
        values = [(r.seed, float(r.metric)) for r in screens if r.metric is not None]
        # The guard's candidate checks come first, so the judge decides once. Every flag stays on record; only
        # those that hold a gain in this task go to the judge (guard.holding).
        last = screens[-1]
        plausible = check_candidate(self.task, Measurement(
            (values[-1][1],), (Clock(last.secondary.get(self.task.metric.self_time or ""), last.seconds),)))
        flags = merged(*(r.flags for r in done), exp.flags, plausible)
        screen = self.judge.screen(values, reference, screens[-1].secondary, noise, holding(self.task, flags),
                                   self.stall_below(), self.reruns_pay())
        effect = screen.effect
        judgement = {"stage": "screen", "reference": head, "effect": effect, "scale": self.judge.scale.value,
                     "runs": len(values), "seed": values[-1][0]}
        if screen.action == "rerun":
            # The same seed: a stall belongs to a run, not to a seed, and the incumbent's value there is known.
            self.store.add_run(experiment_id=exp.id, purpose=RunPurpose.SCREEN, seed=screens[0].seed)
            self.ledger.note("screen", f"exp {exp.id}: {screen.reason}", experiment_id=exp.id)
            return
        if screen.action == "flag":
            # A person's time is worth a verification: a flagged would-be gain is verified on fresh seeds first,
            # and only a verified one is held for review. It never moves its line.
            self.store.update_experiment(exp.id, flags=flags, judgement=judgement)
            self.refresh(exp.id)
            self.verifier.start_verification(exp.id, head, closing=False, why="integrity checks flagged it")
            return
        verdict = Verdict.KEPT if screen.action == "keep" else Verdict.NOT_IMPROVED
        self.finish(exp.id, verdict, screen.reason, values=[values[-1][1]], flags=flags or None,
                    near_miss=screen.near_miss, judgement=judgement, promote=verdict == Verdict.KEPT)
        self.verifier.maybe_verify(line.id)

    def reruns_pay(self) -> bool:
        """Whether re-running screens that fell far outside the lab's noise still finds stalls. A re-run that
        recovers at least half of what its first run lost found one; one that reproduces it re-ran a bad idea
        (or the lab's noise estimate is too small). Once three re-runs in four reproduced, that rule stops
        spending runs; the self-calibrating `stall_below` still catches runs off every other screen's scale."""
        assert self.judge is not None
        found = reproduced = 0
        for row in self.rows.values():
            effect = row.judgement.get("effect")
            if row.judgement.get("stage") != "screen" or int(row.judgement.get("runs", 1)) < 2 or effect is None:
                continue
            screens = [float(r.metric) for r in self.ok_runs(row.id) if r.purpose == RunPurpose.SCREEN]
            if len(screens) < 2:
                continue
            recovered = self.judge.sign * (self.judge.scaled(screens[-1]) - self.judge.scaled(screens[0]))
            first_effect = float(effect) - recovered  # the first run's effect against the same reference value
            if recovered > 0.5 * max(0.0, -first_effect):
                found += 1
            else:
                reproduced += 1
        return not (reproduced >= 3 and reproduced >= 3 * found)

    def stall_below(self) -> float | None:
        """A screening effect below the median of the lab's screening effects by more than STALL_MADS robust
        spreads: no idea is that bad so rarely, a stall is. None until STALL_HISTORY screens exist."""
        effects = [float(r.judgement["effect"]) for r in self.rows.values()
                   if r.judgement.get("stage") == "screen" and r.judgement.get("effect") is not None]
        if len(effects) < STALL_HISTORY:
            return None
        med = statistics.median(effects)
        spread = 1.4826 * statistics.median(abs(e - med) for e in effects)
        return med - STALL_MADS * spread if spread > 0 else None

    def reference_values(self, exp_id: int, seeds: list[int]) -> dict[int, float] | None:
        """The incumbent's metric on `seeds`; queues a `reference` run for a seed it lacks. A seed whose
        reference run failed falls back to the incumbent's robust mean (unpaired)."""
        have = self.values_by_seed(exp_id)
        runs = self.store.runs_of(exp_id)
        missing = [s for s in seeds if s not in have]
        if not missing:
            return {s: have[s] for s in seeds}
        waiting = False
        for seed in missing:
            tried = [r for r in runs if r.seed == seed and r.purpose == RunPurpose.REFERENCE]
            if any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in tried):
                waiting = True
            elif not tried:
                self.store.add_run(experiment_id=exp_id, purpose=RunPurpose.REFERENCE, seed=seed)
                self.ledger.note("reference", f"exp {exp_id} runs on seed {seed} so candidates can be compared with "
                                            "it on the same seed", experiment_id=exp_id)
                waiting = True
        if waiting:
            return None
        fallback = robust_location(list(have.values())).value if have else math.nan
        if math.isnan(fallback):
            raise ValueError(f"exp {exp_id} has no successful run to compare with")
        return {s: have.get(s, fallback) for s in seeds}

    # -- verdicts ------------------------------------------------------------------------------------

    def failure(self, run: RunRow) -> Failure:
        verdict = Verdict(run.outcome)
        detail = {
            Verdict.CRASHED: f"exit code {run.exit_code}",
            Verdict.TIMED_OUT: f"killed after the {self.task.run.timeout:g}s timeout",
            Verdict.NO_METRIC: f"no `{self.task.metric.name}` line in its output",
            Verdict.BAD_METRIC: f"{self.task.metric.name} was not a finite number",
        }[verdict]
        last = (run.log_tail or "").strip().splitlines()[-1:] or [""]
        reason = f"{run.purpose} run {run.id} (seed {run.seed}): {MEANING[verdict]} ({detail})"
        cause = crash_cause(run) if verdict == Verdict.CRASHED else None
        if cause:
            reason += f"; error: {cause[:200]}"
        elif last[0]:
            reason += f"; last output: {last[0][:200]}"
        return Failure(verdict, reason)

    def finish(self, exp_id: int, verdict: Verdict, reason: str, *, values: list[float] | None = None,
               p_value: float | None = None, flags: list[Finding] | None = None, near_miss: bool = False,
               promote: bool = False, verified: bool = False, judgement: dict[str, Any] | None = None,
               quiet: bool = False) -> None:
        """Record a verdict. `promote`: the experiment becomes its line's incumbent (provisionally, for `kept`);
        `verified`: it also becomes the line's verified point. Both in the same transaction as the verdict."""
        fields: dict[str, Any] = dict(status=ExperimentStatus.DONE, verdict=verdict.value, reason=reason,
                                      p_value=p_value, near_miss=int(near_miss), finished_at=time.time())
        if values:
            s = summarize(values)
            fields.update(metric=s.mean, metric_sd=s.sd, ci_low=s.ci_low, ci_high=s.ci_high, n_runs=s.n)
            if s.n < 2:  # one run has no spread: none recorded, rather than an sd of 0 and a CI of zero width
                fields.update(metric_sd=None, ci_low=None, ci_high=None)
        if flags:
            fields["flags"] = flags
        if judgement is not None:
            fields["judgement"] = {**self.rows[exp_id].judgement, **judgement}
        line_id, previous = self.rows[exp_id].line_id, self.rows[exp_id].verdict
        with self.store.transaction():
            self.store.update_experiment(exp_id, **fields)
            # A claim leaves a line that already builds on it where it is (steps kept during its verification).
            if (promote or verified) and line_id is not None:
                promotion.promote(self.store, line_id, exp_id, verified=verified, move_head=not (
                    verified and self.ledger.descends(self.store.line(line_id).incumbent_id, exp_id)))
        exp = self.refresh(exp_id)
        if not quiet:
            self.ledger.note("verdict", f"exp {exp_id} {verdict.value}: {reason}", experiment_id=exp_id)
        self.host.verdict_given(exp, promoted=verified, previous=previous)
        # Any verdict may settle the line's other provisional steps: a promotion moves its head, and a step that
        # no live experiment builds on any more (this one was the last) is superseded if its line left it.
        if line_id is not None and (promote or verified or not quiet):
            self.supersede(line_id)

    def rebase(self, line_id: int, why: str) -> None:
        line = self.store.line(line_id)
        if line.verified_id is None or line.incumbent_id == line.verified_id:
            return
        self.store.set_incumbent(line_id, line.verified_id)
        self.ledger.note("rebase", f"line {line_id} goes back to its last verified point, exp {line.verified_id} "
                                 f"({why})")
        self.supersede(line_id)

    def supersede(self, line_id: int) -> None:
        """Keep the line's provisional steps in step with its head. A `kept` step that the head does not build on
        (a sibling proposed from the same point beat it on the screening seed and took its place) can never be
        verified: it becomes `inconclusive` instead of staying `kept` for ever, unless a live experiment of the
        line (kept, or still being proposed or screened) builds on it and may yet carry it back into the line;
        a step whose own verification is running is left to it. A superseded step that the head builds on again
        (a descendant proposed before it was superseded won the line later) is `kept` again, so that the head's
        verification decides it with the rest of its stack."""
        line = self.store.line(line_id)
        head, anchor = line.incumbent_id, line.verified_id
        on_path: set[int] = set()
        row_id = head
        while row_id is not None and row_id != anchor and row_id in self.rows and row_id not in on_path:
            on_path.add(row_id)
            row_id = self.rows[row_id].parent_id
        # Newest first: a step's descendants are newer than it, and one that is superseded no longer keeps its
        # ancestors alive.
        for row in sorted(self.rows.values(), key=lambda r: r.id, reverse=True):
            row = self.rows[row.id]  # re-read: an earlier step of this pass may have changed it
            if row.line_id != line_id:
                continue
            if row.id in on_path and row.verdict == Verdict.INCONCLUSIVE and row.judgement.get("superseded"):
                self.finish(row.id, Verdict.KEPT, f"{row.reason}; included again: its line's head, exp {head}, builds "
                                                  "on it", judgement={"superseded": None}, quiet=True)
            elif (row.verdict == Verdict.KEPT and row.id not in on_path and not self.ledger.descends(head, row.id)
                    and row.judgement.get("verify", {}).get("state") != "running" and not self.built_on(row.id)):
                self.finish(row.id, Verdict.INCONCLUSIVE, f"{row.reason}; superseded: its line builds on exp {head} "
                                                          "instead, so it was never verified",
                            judgement={"superseded": head}, quiet=True)

    def built_on(self, exp_id: int) -> bool:
        """Whether a live experiment (kept, or still being proposed or screened) builds on exp `exp_id`."""
        return any(row.id != exp_id and (row.status in (ExperimentStatus.PROPOSING, ExperimentStatus.TESTING)
                                         or row.verdict == Verdict.KEPT) and self.ledger.descends(row.id, exp_id)
                   for row in self.rows.values())
