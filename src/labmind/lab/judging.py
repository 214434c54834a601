"""Judging, as part of the lab loop: an experiment's next step from its rows, verdicts, promotion, and the
guard's plausibility checks. Mixed into `Lab`, whose state (store, rows, task, judge) it uses."""

from __future__ import annotations

import statistics
import time
from typing import Any

from labmind.guard.plausibility import (
    beyond_bound,
    holdout_gap,
    implausible_gain,
    time_mismatch,
    variance_collapse,
)
from labmind.judge import Judge, auto_min_effect, summarize
from labmind.lab.paths import LabPaths
from labmind.store import ExperimentRow, RunRow, Store
from labmind.task import Task
from labmind.verdicts import MEANING, Verdict

PROTECTED_FLAG = "protected_modified"


class Judging:
    """Store-driven judging steps of the lab. The attributes below are set by `Lab.__init__`."""

    store: Store
    task: Task
    paths: LabPaths
    rows: dict[int, ExperimentRow]
    judge: Judge | None
    fatal: str | None
    stats: Any
    brain: Any

    def judge_from_store(self) -> None:
        lab = self.store.lab()
        if lab and lab.min_effect is not None:
            self.judge = Judge(self.task, lab.min_effect)

    def incumbent_values(self, line_id: int) -> list[float]:
        line = self.store.line(line_id)
        assert line.incumbent_id is not None
        return self.values_of(line.incumbent_id)

    def values_of(self, exp_id: int) -> list[float]:
        """The runs that define an experiment's metric: the baseline's runs, or a candidate's
        confirmation runs (the screening run is excluded: it was selected for looking good)."""
        runs = [r for r in self.store.runs_of(exp_id) if r.status == "done" and r.metric is not None]
        confirm = [r.metric for r in runs if r.purpose in ("baseline", "confirm") and r.metric is not None]
        return confirm or [r.metric for r in runs if r.metric is not None]

    def advance(self, exp_id: int) -> None:
        """Take an experiment's next step from what the store says about it."""
        exp = self.refresh(exp_id)
        if exp.status != "testing":
            return
        runs = self.store.runs_of(exp_id)
        if any(r.status in ("queued", "running") for r in runs):
            return
        done = [r for r in runs if r.status == "done"]
        if exp.kind == "baseline":
            self.finish_baseline(exp, done)
            return
        if self.judge is None:
            return  # judged once the baseline has measured the noise
        for run in done:
            hard = [f for f in run.flags if f.startswith(PROTECTED_FLAG)]
            if hard:
                self.finish_experiment(exp_id, Verdict.REJECTED, hard[0].split(": ", 1)[1],
                                       flags=sorted(set(exp.flags) | set(hard)))
                return
        failed = next((r for r in done if r.outcome != "ok"), None)
        if failed is not None:
            self.finish_failure(exp_id, failed)
            return
        screens = [r for r in done if r.purpose == "screen"]
        confirms = [r for r in done if r.purpose == "confirm"]
        if not screens:
            self.store.add_run(experiment_id=exp_id, purpose="screen", seed=self.store.next_seed())
            return
        incumbent = self.incumbent_values(exp.line_id or 0)
        if not confirms:
            run = screens[-1]
            assert run.metric is not None
            screen = self.judge.screen(run.metric, run.secondary, incumbent)
            if screen.confirm:
                with self.store.transaction():
                    for _ in range(self.task.noise.confirm_seeds):
                        self.store.add_run(experiment_id=exp_id, purpose="confirm", seed=self.store.next_seed())
                self.note("confirm", f"exp {exp_id}: {screen.reason}; confirming with "
                                     f"{self.task.noise.confirm_seeds} fresh seeds", experiment_id=exp_id)
                return
            assert screen.verdict is not None
            self.finish_experiment(exp_id, screen.verdict, screen.reason, values=[run.metric],
                                   near_miss=screen.near_miss)
            return
        # Flags from the runs (metric_repeated, self_reported_mismatch) and from the proposal's static checks.
        flags = sorted({f for r in done for f in r.flags} | set(exp.flags))
        values = [r.metric for r in confirms if r.metric is not None]
        decision = self.judge.decide(values, [r.secondary for r in confirms], incumbent, flags)
        if decision.verdict in (Verdict.IMPROVED, Verdict.FLAGGED):
            extra = self.plausibility_flags(exp, values, confirms, incumbent)
            flags = sorted(set(flags) | set(extra))
            decision = self.judge.decide(values, [r.secondary for r in confirms], incumbent, flags)
        self.finish_experiment(exp_id, decision.verdict, decision.reason, values=values, p_value=decision.p_value,
                               flags=flags, near_miss=decision.verdict == Verdict.INCONCLUSIVE,
                               promote=decision.verdict == Verdict.IMPROVED)

    def plausibility_flags(self, exp: ExperimentRow, values: list[float], confirms: list[RunRow],
                           incumbent: list[float]) -> list[str]:
        """The guard's checks on a candidate best (DESIGN §6, layers 4 and 5)."""
        base = self.baseline()
        noise_sd = (base.metric_sd if base else None) or 0.0
        gain = self.task.sign * (statistics.fmean(values) - statistics.fmean(incumbent))
        flags = beyond_bound(self.task, values) + implausible_gain(self.task, gain, self.past_steps())
        flags += variance_collapse(values, noise_sd)
        for run in confirms:
            flags += time_mismatch(self.task, run.secondary.get(self.task.metric.self_time or ""), run.seconds)
        if not self.task.metric.holdout:
            return flags
        line = self.store.line(exp.line_id or 0)
        theirs = [r for r in self.store.runs_of(line.incumbent_id or 0)
                  if r.status == "done" and r.purpose in ("baseline", "confirm")]
        pairs = [[(r.metric, r.holdout) for r in runs if r.metric is not None and r.holdout is not None]
                 for runs in (confirms, theirs)]
        if len(pairs[0]) < len(confirms) or len(pairs[1]) < len(theirs) or not all(pairs):
            return [*flags, "holdout_failed: a held-out evaluation is missing for the candidate or its incumbent"]
        return flags + holdout_gap(self.task, gain, pairs[0], pairs[1])

    def past_steps(self) -> list[float]:
        """The lab's confirmed improvement steps, in 'higher is better' units."""
        steps = []
        for row in self.rows.values():
            parent = self.rows.get(row.parent_id or -1)
            if row.verdict == Verdict.IMPROVED and parent and row.metric is not None and parent.metric is not None:
                steps.append(self.task.sign * (row.metric - parent.metric))
        return steps

    def finish_failure(self, exp_id: int, run: RunRow) -> None:
        verdict = Verdict(run.outcome)
        detail = {
            Verdict.CRASHED: f"exit code {run.exit_code}",
            Verdict.TIMED_OUT: f"killed after the {self.task.run.timeout:g}s timeout",
            Verdict.NO_METRIC: f"no `{self.task.metric.name}` line in its output",
            Verdict.BAD_METRIC: f"{self.task.metric.name} was not a finite number",
        }[verdict]
        last = (run.log_tail or "").strip().splitlines()[-1:] or [""]
        reason = f"{run.purpose} run {run.id} (seed {run.seed}): {MEANING[verdict]} ({detail})"
        if last[0]:
            reason += f"; last output: {last[0][:200]}"
        self.finish_experiment(exp_id, verdict, reason)

    def finish_baseline(self, exp: ExperimentRow, done: list[RunRow]) -> None:
        failed = next((r for r in done if r.outcome != "ok"), None)
        if failed is not None:
            self.finish_failure(exp.id, failed)
            self.fatal = (f"the baseline itself failed: {self.rows[exp.id].reason}. Fix the task, commit, and "
                          f"start over (delete {self.paths.root}). Log: {failed.log_path}")
            return
        values = [r.metric for r in done if r.metric is not None]
        s = summarize(values)
        configured = self.task.noise.min_effect
        min_effect = auto_min_effect(values) if configured == "auto" else float(configured)
        with self.store.transaction():
            self.store.update_lab(min_effect=min_effect, noise_sd=s.sd)
            self.store.update_experiment(
                exp.id, status="done", metric=s.mean, metric_sd=s.sd, ci_low=s.ci_low, ci_high=s.ci_high,
                n_runs=s.n, finished_at=time.time(),
                reason=f"baseline {self.task.metric.name} {s.mean:.6g} ± {s.sd:.3g} over {s.n} seeds; "
                       f"minimum effect {min_effect:.3g}" + (" (auto: 2 × sd)" if configured == "auto" else ""))
        self.refresh(exp.id)
        self.judge = Judge(self.task, min_effect)
        self.note("noise", self.rows[exp.id].reason or "", experiment_id=exp.id)
        self.brain.learn(self.rows[exp.id].past())
        for row in list(self.rows.values()):
            if row.kind == "candidate" and row.status == "testing":
                self.advance(row.id)

    def finish_experiment(self, exp_id: int, verdict: Verdict, reason: str, *, values: list[float] | None = None,
                          p_value: float | None = None, flags: list[str] | None = None,
                          near_miss: bool = False, promote: bool = False) -> None:
        """Record a verdict; with `promote`, the line's new incumbent is written in the same transaction."""
        fields: dict[str, Any] = dict(status="done", verdict=verdict.value, reason=reason, p_value=p_value,
                                      near_miss=int(near_miss), finished_at=time.time())
        if values:
            s = summarize(values)
            fields.update(metric=s.mean, metric_sd=s.sd, ci_low=s.ci_low, ci_high=s.ci_high, n_runs=s.n)
        if flags:
            fields["flags"] = flags
        with self.store.transaction():
            self.store.update_experiment(exp_id, **fields)
            if promote:
                line_id = self.rows[exp_id].line_id
                assert line_id is not None
                self.store.set_incumbent(line_id, exp_id)
        exp = self.refresh(exp_id)
        if exp.kind == "candidate":
            self.stats.finished += 1
            self.stats.verdicts[verdict.value] = self.stats.verdicts.get(verdict.value, 0) + 1
        self.note("verdict", f"exp {exp_id} {verdict.value}: {reason}", experiment_id=exp_id)
        if promote:
            self.announce_promotion(exp)
        if exp.kind == "candidate":
            self.brain.learn(exp.past())
            self.after_verdict(exp)  # type: ignore[attr-defined]  (Steering, mixed into Lab)

    def announce_promotion(self, exp: ExperimentRow) -> None:
        lab = self.store.lab()
        assert lab is not None and exp.commit_sha
        best = self.best()
        is_best = best is not None and best.id == exp.id
        self.keep_ref(lab.name, exp.id, exp.commit_sha, best=is_best)
        self.note("incumbent", f"exp {exp.id} is line {exp.line_id}'s new incumbent"
                               + (f"; lab best, kept on branch {lab.branch}" if is_best else ""),
                  experiment_id=exp.id)

