"""The lab loop: wires task, store, workspace, brain, search, executor and judge.

Everything is driven from the store: each step writes its row before acting, and `advance` decides an
experiment's next step from its rows alone, so a lab killed at any point resumes where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from labmind.brains.base import Brain
from labmind.execute.base import Change, Executor, RunOutcome, RunRequest, Slot, SlotLost
from labmind.execute.cgroups import memory_available
from labmind.execute.limits import resolve_limits
from labmind.execute.sandbox import default_hidden
from labmind.guard import Finding, check_change
from labmind.lab.judging import PROTECTED_FLAG, Referee
from labmind.lab.overlap import KIND as OVERLAP
from labmind.lab.overlap import overlap_text
from labmind.lab.progress import duration_text
from labmind.lab.review import ReviewError, apply_review, take_posted
from labmind.lab.settings import LabSettings
from labmind.lab.setup import SetupFailed, run_setup
from labmind.lab.steering import Steering
from labmind.lab.views import best_experiment, brain_context, search_view
from labmind.model import NOT_TAKEN, Idea, experiments_made
from labmind.paths import LabPaths
from labmind.search.base import Policy
from labmind.store import ExperimentRow, RunRow, Store, StoreError
from labmind.task import Task
from labmind.verdicts import MEANING, Verdict
from labmind.workspace import git as gitops
from labmind.workspace.scope import (
    DigestCaps,
    hide_targets,
    scope_violation,
    to_task_relative,
    verify_protected,
)

RUN_PRIORITY = {"baseline": 0, "confirm": 1, "reference": 2, "screen": 3}
def scope_rule(violation: str) -> str:
    """The rule name behind a scope sentence from workspace.scope (for flags and guard-report)."""
    if "protected file" in violation:
        return "protected"
    if "belongs to labmind" in violation:
        return "labmind_files"
    if "outside the task directory" in violation:
        return "outside_task"
    return "outside_editable"


def hidden_paths(paths: LabPaths, repo_root: Path | None = None, task: Task | None = None) -> list[Path]:
    """Hidden from runs, evaluators and brains: the lab's store and logs, the home directory, credentials,
    the repository's git directory (it holds every file ever committed, `[run] hide` data included, and
    its config may hold credentials) and the `[run] hide` files of the user's own checkout."""
    out = default_hidden(paths.root)
    if repo_root is not None:
        try:
            out.append(gitops.common_dir(repo_root))
        except gitops.GitError:
            pass  # not a repository (any more): nothing of it to hide
    if task is not None:
        out += hide_targets(paths.task_dir, task.run.hide)
    return out


class LabError(Exception):
    """The lab cannot go on (e.g. the baseline itself fails); the message says what to do."""


class Reporter(Protocol):
    def event(self, kind: str, message: str) -> None: ...

    def tick(self, lab: Lab) -> None: ...


@dataclass
class SessionStats:
    started: float = field(default_factory=time.monotonic)
    busy_s: float = 0.0  # slot-seconds held by runs (worktree, run, evaluation) during this session
    finished: int = 0  # candidate experiments given a verdict during this session
    verdicts: dict[str, int] = field(default_factory=dict)

    def wall_s(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Proposal:
    idea: Idea
    snapshot: gitops.Snapshot
    problem: str | None
    seconds: float
    worktree: Path | None = None  # ready for the screening run
    findings: list[Finding] = field(default_factory=list)  # the guard's scope and static findings


class Lab(Steering):
    """The lab loop: start-up, the scheduler's proposals and runs. Judging is the `Referee`'s (composed);
    repairs, reflections and the director live in `Steering`."""

    def __init__(self, *, paths: LabPaths, task: Task, repo: gitops.RepoInfo, store: Store, executor: Executor,
                 brain: Brain, policy: Policy, settings: LabSettings, reporter: Reporter,
                 protected_digest: dict[str, str], brief_text: str = "", auditor: Any = None,
                 protected_bytes: int | None = None, librarian: Any = None) -> None:
        self.paths, self.task, self.repo, self.store = paths, task, repo, store
        self.executor, self.brain, self.policy, self.settings = executor, brain, policy, settings
        self.reporter = reporter
        self.protected_digest = protected_digest
        #: Caps for re-checking the protected files, from what they held when the lab was created.
        self.digest_caps = DigestCaps.after_changes(len(protected_digest), protected_bytes)
        self.brief_text = brief_text
        self.auditor = auditor  # the guard's LLM reviewer (layer 6), when --review-model is set
        self.librarian = librarian  # the insight library's writer and retriever (labmind.library), when on
        self.since_director = 0  # candidate verdicts since the director last reviewed the lines
        self.slots = list(executor.slots)
        self.free: list[Slot] = list(self.slots)
        self.reserved = 0  # slots held for proposals in flight (sequential mode only)
        self.tasks: dict[asyncio.Future[Any], tuple[str, int, Slot | None]] = {}
        self.rows: dict[int, ExperimentRow] = {r.id: r for r in store.experiments()}
        self.referee = Referee(store, task, paths, self.rows, host=self)
        self.stopping = False
        self.stop_signal: int | None = None  # the signal that asked the lab to stop, if one did
        self.closed = False  # the lab stopped proposing and asked for its lines' closing verifications
        self.brain_failures = 0
        self.stats = SessionStats()
        self.running: dict[int, tuple[Slot, int]] = {}  # run id -> (slot, experiment id)
        self.slot_taken: dict[int, float] = {}  # run id -> when its slot was taken (monotonic)
        self.overlaps: dict[int, set[int]] = {}  # run id -> the other runs that ran while it did
        self.changes: dict[str, Change] = {}  # commit -> the change runs of it are shipped as
        self.paused = False  # no run can start on the executor now (a cluster without GPU workers)
        lookahead = settings.lookahead if settings.lookahead is not None else len(self.slots)
        self.lookahead = lookahead
        self.pool = ThreadPoolExecutor(max_workers=len(self.slots) + lookahead + 1, thread_name_prefix="brain")
        # Reflections and the director wait in their own queue, never ahead of the proposals that feed slots.
        self.aux_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reflect")
        self._wake = asyncio.Event()
        #: Every run's resource limits ([run] memory, processes, file_size, log_size), "auto" memory shared
        #: between the slots.
        self.limits = resolve_limits(task.run, len(self.slots), memory_available())

    # -- small helpers -----------------------------------------------------------------------------

    def note(self, kind: str, message: str, *, experiment_id: int | None = None, run_id: int | None = None) -> None:
        self.store.event(kind, message, experiment_id=experiment_id, run_id=run_id)
        self.reporter.event(kind, message)

    def refresh(self, experiment_id: int) -> ExperimentRow:
        row = self.store.experiment(experiment_id)
        self.rows[experiment_id] = row
        return row

    def baseline(self) -> ExperimentRow | None:
        return next((r for r in self.rows.values() if r.kind == "baseline"), None)

    def best(self) -> ExperimentRow | None:
        return best_experiment(list(self.rows.values()), self.task)

    def commit_of(self, exp: ExperimentRow) -> str:
        commit = exp.commit_sha or exp.base_commit
        assert commit, f"experiment {exp.id} has no commit"
        return commit

    def task_dir_in(self, worktree: Path) -> Path:
        return worktree / self.repo.subdir if self.repo.subdir else worktree

    @property
    def fatal(self) -> str | None:
        return self.referee.fatal

    def advance(self, exp_id: int) -> None:
        self.referee.advance(exp_id)

    def min_effect(self) -> float:
        """The minimum effect in the metric's units at the lab's best (what brains are told)."""
        best = self.best()
        if self.referee.judge is None or best is None or best.metric is None:
            return 0.0
        return self.referee.judge.min_effect.in_units(best.metric, self.task.sign)

    # -- the referee's host --------------------------------------------------------------------------

    def verdict_given(self, exp: ExperimentRow, promoted: bool, previous: str | None) -> None:
        if exp.kind != "candidate":
            return
        if previous:
            # A provisional verdict decided by verification: the session's counts move, the brain learns the
            # final word, but repairs, reflections and the director saw it the first time.
            self.stats.verdicts[previous] = max(0, self.stats.verdicts.get(previous, 0) - 1)
        else:
            self.stats.finished += 1
        self.stats.verdicts[exp.verdict or ""] = self.stats.verdicts.get(exp.verdict or "", 0) + 1
        if promoted or exp.verdict == Verdict.KEPT:
            self.announce_promotion(exp)
        self.brain.learn(exp.past())
        self.record_insights(exp)
        if not previous:
            self.after_verdict(exp)

    def record_insights(self, exp: ExperimentRow) -> None:
        """The library learns from the verdict: a confirmed gain or a dead end becomes an insight, and an idea
        that applied insights updates their record. A library that cannot be written never stops the lab."""
        if self.librarian is None:
            return
        from labmind.library import LibraryError

        try:
            for insight in self.librarian.on_verdict(exp, self.rows):
                self.note("insight", f"exp {exp.id}: recorded {insight.kind.value.replace('_', ' ')} "
                                     f"#{insight.id} in the library: {insight.title}", experiment_id=exp.id)
        except (LibraryError, OSError, sqlite3.Error) as exc:
            self.note("warning", f"could not record exp {exp.id} in the insight library: {exc}", experiment_id=exp.id)

    def baseline_measured(self, exp: ExperimentRow) -> None:
        self.brain.learn(exp.past())

    def announce_promotion(self, exp: ExperimentRow) -> None:
        lab = self.store.lab()
        assert lab is not None and exp.commit_sha
        best = self.best()
        is_best = best is not None and best.id == exp.id
        if exp.verdict == Verdict.IMPROVED:
            self.keep_ref(lab.name, exp.id, exp.commit_sha, best=is_best)
        what = "verified point and incumbent" if exp.verdict == Verdict.IMPROVED else "provisional incumbent"
        self.note("incumbent", f"exp {exp.id} is line {exp.line_id}'s new {what}"
                               + (f"; lab best, kept on branch {lab.branch}" if is_best else ""),
                  experiment_id=exp.id)

    # -- start-up ------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Re-queue runs a killed lab left running (exactly once each) and clear stale worktrees."""
        running = self.store.runs(status="running")
        killed = self.executor.kill_leftovers([r.token for r in running if r.token])
        for run in running:
            with self.store.transaction():
                self.store.update_run(run.id, status="interrupted", ended_at=time.time())
                new = self.store.add_run(experiment_id=run.experiment_id, purpose=run.purpose, seed=run.seed,
                                         requeued_from=run.id)
            self.note("requeued", f"run {run.id} was interrupted; queued again as run {new}",
                      experiment_id=run.experiment_id, run_id=new)
        if killed:
            self.note("cleanup", f"killed {killed} leftover process(es) of interrupted runs")
        if self.paths.worktrees.exists():
            for child in self.paths.worktrees.iterdir():
                gitops.remove_worktree(self.repo.root, child)

    def refuse_failed_baseline(self) -> None:
        base = self.baseline()
        if base is not None and base.status == "done" and base.verdict is not None:
            raise LabError(f"this lab's baseline failed ({base.reason}). Its code is the lab's starting commit, so "
                           f"the lab cannot go on: fix the task, commit, and start a new lab with "
                           f"`labmind run --fresh {self.paths.task_dir}` (or `labmind reset`; the old lab is kept "
                           f"under {self.paths.root / 'backups'}).")

    def ensure_lines(self) -> None:
        """Add lines when a resumed lab is asked for more than it has."""
        lab, lines = self.store.lab(), self.store.lines()
        wanted = self.settings.lines or len(self.slots)
        if lab is None or lab.baseline_id is None or not lines or wanted <= len(lines):
            return
        for i in range(len(lines), wanted):
            line_id = self.store.add_line(f"line-{i + 1}", lab.baseline_id)
            self.note("line", f"added line {line_id}, starting from the baseline")

    def sync_refs(self) -> None:
        """Git refs for kept work are derived from the store: (re)write them, so a lab killed between
        a promotion and its ref update heals on resume."""
        lab = self.store.lab()
        best = self.best()
        if lab is None:
            return
        for row in self.rows.values():
            if row.verdict == Verdict.IMPROVED and row.commit_sha:
                self.keep_ref(lab.name, row.id, row.commit_sha, best=best is not None and best.id == row.id)

    def keep_ref(self, lab: str, exp_id: int, commit: str, *, best: bool) -> None:
        try:
            gitops.keep(self.repo.root, lab, exp_id, commit, best=best)
        except gitops.GitError as exc:
            # The verdict stands (it is in the store); only the convenience ref is missing.
            self.note("warning", f"could not record exp {exp_id}'s commit as a git ref: {exc}")

    def ensure_baseline(self) -> None:
        if self.baseline() is not None:
            return
        lab = self.store.lab()
        assert lab is not None
        n_lines = self.settings.lines or len(self.slots)
        with self.store.transaction():
            exp_id = self.store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="",
                                               base_commit=lab.base_commit, status="testing")
            self.store.update_experiment(exp_id, commit_sha=lab.base_commit,
                                         idea=Idea(title="baseline", hypothesis="the task's code as committed"))
            self.store.update_lab(baseline_id=exp_id)
            for i in range(n_lines):
                self.store.add_line(f"line-{i + 1}", exp_id)
            for _ in range(self.task.noise.baseline_runs):
                self.store.add_run(experiment_id=exp_id, purpose="baseline", seed=self.store.next_seed())
        self.refresh(exp_id)
        runs, timeout = self.task.noise.baseline_runs, self.task.run.timeout
        waves = -(-runs // max(1, len(self.slots)))  # before the first run ends, the timeout bounds the wait
        self.note("baseline", f"measuring the baseline's noise with {runs} runs (at most "
                              f"{duration_text(waves * timeout)} at the {duration_text(timeout)} timeout on "
                              f"{len(self.slots)} slot(s))", experiment_id=exp_id)

    def run_setup(self) -> None:
        """The task's setup command, once per machine and protected-files digest."""
        if self.task.task.setup:
            try:
                run_setup(self.task.task.setup, self.paths, self.protected_digest, self.note)
            except SetupFailed as exc:
                raise LabError(str(exc)) from exc

    # -- the loop --------------------------------------------------------------------------------------

    async def run(self) -> SessionStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, sig)
        self.deadline = time.monotonic() + self.settings.budget_s if self.settings.budget_s else None
        self.session_start = (time.monotonic(), self.store.count_candidates())
        # For progress displays (`labmind status` reads it from another process): when this session began, its budget.
        self.store.set_meta("session", json.dumps({"started_at": time.time(), "budget_s": self.settings.budget_s}))
        self.recover()
        self.refuse_failed_baseline()
        self.note("limits", f"per run: {self.limits.describe()}; {self.executor.limits_mechanism}")
        await asyncio.to_thread(self.run_setup)
        self.ensure_baseline()
        self.ensure_lines()
        self.sync_refs()
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.status == "done" and (row.kind == "baseline" or row.verdict):
                self.brain.learn(row.past())
        self.resume_reflections()
        self.resume_repairs()
        for row in list(self.rows.values()):
            self.advance(row.id)
        for row in list(self.rows.values()):
            if row.status == "proposing" and self.may_propose(count_only=False):
                self.launch_proposal(row.id)
        try:
            await self.main_loop()
        finally:
            await self.shutdown()
        if self.fatal:
            raise LabError(self.fatal)
        return self.stats

    def request_stop(self, sig: int | None = None) -> None:
        if sig is not None and self.stop_signal is None:
            self.stop_signal = sig  # Ctrl-C makes the command exit 130, as interrupted commands do
        if not self.stopping:
            self.stopping = True
            self.reporter.event("stop", "stopping: running runs are interrupted and re-queued for `labmind resume`")
        self._wake.set()

    async def main_loop(self) -> None:
        self.apply_posted_reviews()  # decisions posted while no lab was running (or just before it stopped)
        while not self.stopping and not self.fatal:
            self.withdraw_surplus_offers()
            self.start_proposals()
            self.close_if_done()
            self.dispatch()
            self.reporter.tick(self)
            if (not self.tasks and not self.paused) or self.budget_spent():
                break
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            # Wake at least every second to pick up people's reviews from the inbox.
            done, _ = await asyncio.wait([*self.tasks, waker], return_when=asyncio.FIRST_COMPLETED, timeout=1.0)
            self.apply_posted_reviews()
            waker.cancel()
            for fut in done:
                if fut is not waker:
                    self.finish_task(fut)

    def close_if_done(self) -> None:
        """Once no more experiments will be proposed and none is being screened, verify every line's provisional
        head, so that the session ends with what it found claimed or reverted."""
        if self.closed or self.stopping:
            return
        if self.in_budget():
            # Out of experiments, not of time: close once what is being proposed and screened is judged.
            if self.may_propose() or self.proposals_in_flight():
                return
            if any(r.kind == "candidate" and r.status in ("testing", "proposing") for r in self.rows.values()):
                return
        # Out of time: screens and proposals in flight are left for `resume`, but what the lines found is
        # verified now, so the session ends with it claimed or reverted.
        self.closed = True
        self.referee.close_lines()

    def budget_spent(self) -> bool:
        """Out of budget with no run left to finish: what is still in flight (proposals an agent may take
        hours over, reflections) is left to `resume`, which makes it again from the store."""
        if self.in_budget() or any(kind == "run" for kind, _, _ in self.tasks.values()):
            return False
        if any(r.purpose != "screen" for r in self.store.runs(status="queued")):
            return False
        self.note("budget", "the session's budget is spent; work still in flight is left for `labmind resume`")
        self.stopping = True  # brain threads may still be busy: the command exits without waiting for them
        return True

    def apply_posted_reviews(self) -> None:
        for path, review in take_posted(self.paths):
            exp_id = 0
            try:
                exp_id = int(review.get("experiment", 0))
                message = apply_review(self.store, self.paths, exp_id, str(review.get("decision")),
                                       str(review.get("note", "")))
            except (ReviewError, StoreError, gitops.GitError, TypeError, ValueError) as exc:
                message = f"review of exp {exp_id} not applied: {exc}"
            path.unlink(missing_ok=True)
            for row in self.store.experiments():
                self.rows[row.id] = row
            self.note("review", message, experiment_id=exp_id or None)

    async def shutdown(self) -> None:
        # Runs still in flight held their slots until now: without this, a session stopped during its only
        # run reported a slot duty cycle of 0.
        now = time.monotonic()
        self.stats.busy_s += sum(now - taken for taken in self.slot_taken.values())
        self.slot_taken.clear()
        pending = [f for f, (kind, _, _) in self.tasks.items() if kind == "run"]
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self.executor.close()
        close = getattr(self.brain, "close", None)
        if callable(close):
            close()  # lets a brain that waits (an external agent, say) give up its wait
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.aux_pool.shutdown(wait=False, cancel_futures=True)
        self.apply_posted_reviews()  # the last ones, while this process still holds the lock
        self.reporter.tick(self)

    def finish_task(self, fut: asyncio.Future[Any]) -> None:
        kind, ident, slot = self.tasks.pop(fut)
        if kind == "proposal":
            if self.reserved:
                self.reserved -= 1
            self.finish_proposal(ident, fut)
        elif kind in ("reflect", "direct"):
            self.finish_aux(kind, ident, fut)
        else:
            assert slot is not None
            self.free.append(slot)
            self.free.sort(key=lambda s: s.index)
            self.finish_run(ident, fut)

    # -- proposals ---------------------------------------------------------------------------------------

    def in_budget(self) -> bool:
        return self.deadline is None or time.monotonic() < self.deadline

    def experiments_left(self) -> int | None:
        """How many more candidate experiments this session will propose, when a limit says so: what
        `--max-experiments` leaves, or what the time left allows at this session's pace so far."""
        left: list[int] = []
        if self.settings.max_experiments is not None:
            left.append(max(0, self.settings.max_experiments - self.experiments_made()))
        start = getattr(self, "session_start", None)
        if self.deadline is not None and start is not None:
            began, count = start
            done = self.store.count_candidates() - count
            if done > 0:
                pace = (time.monotonic() - began) / done
                left.append(max(0, int((self.deadline - time.monotonic()) / pace)))
        return min(left) if left else None

    def may_propose(self, count_only: bool = True) -> bool:
        if self.stopping or self.fatal or not self.in_budget():
            return False
        if self.brain_failures >= self.settings.max_brain_failures or self.brain_spent():
            return False
        if count_only and self.settings.max_experiments is not None:
            return self.experiments_made() < self.settings.max_experiments
        return True

    def unclaimed(self) -> set[int]:
        """Proposals in flight that no agent has claimed yet, for brains that offer work (the agent brain);
        brains that work on what they propose have none."""
        claimed = getattr(self.brain, "claimed", None)
        if not callable(claimed):
            return set()
        in_flight = {ident for kind, ident, _ in self.tasks.values() if kind == "proposal"}
        return in_flight - claimed()

    def experiments_made(self) -> int:
        """Candidates that count toward --max-experiments: every one a brain started work on (an agent's from
        its claim), so that agents, not the order of offers, decide where the last experiments go."""
        if not callable(getattr(self.brain, "claimed", None)):
            return self.store.count_candidates()  # every proposal is work started (and one SQL count is cheap)
        return experiments_made(self.rows.values(), self.unclaimed())

    def withdraw_surplus_offers(self) -> None:
        """Claims reached the experiment limit: offers still unclaimed are withdrawn (not counted)."""
        limit = self.settings.max_experiments
        withdraw = getattr(self.brain, "withdraw_unclaimed", None)
        if limit is None or not callable(withdraw) or not self.unclaimed() or self.experiments_made() < limit:
            return
        withdraw(f"the lab's {limit} experiments (--max-experiments) were all claimed before this offer was")

    def proposals_in_flight(self) -> int:
        return sum(1 for kind, _, _ in self.tasks.values() if kind == "proposal")

    def queued_screens(self) -> int:
        return sum(1 for r in self.store.runs(status="queued") if r.purpose == "screen")

    def start_proposals(self) -> None:
        if not self.store.lines():
            return
        while True:
            # Requested experiments (repairs, combinations) were counted when they were requested.
            pending = self.pending_directive()
            if not (self.may_propose(count_only=False) if pending else self.may_propose()):
                return
            if self.settings.prefetch:
                # Keep `lookahead` proposals ready beyond what free slots will take right now.
                ready = self.proposals_in_flight() + self.queued_screens()
                if ready >= len(self.free) + self.lookahead:
                    return
            else:
                # Sequential shape: a proposal holds a free slot while the brain thinks.
                if len(self.free) - self.reserved <= 0 or self.store.runs(status="queued"):
                    return
                self.reserved += 1
            if pending is not None:
                self.launch_proposal(pending.id)
            else:
                self.new_proposal()

    def new_proposal(self) -> None:
        rows = list(self.rows.values())
        choice = self.policy.choose(search_view(self.store, rows, self.task, self.min_effect() or 1e-12))
        parent = self.rows[choice.parent_id]
        exp_id = self.store.add_experiment(kind="candidate", line_id=choice.line_id, parent_id=parent.id,
                                           brain=self.brain.name, base_commit=self.commit_of(parent))
        self.refresh(exp_id)
        self.note("propose", f"exp {exp_id}: {choice.why}", experiment_id=exp_id)
        self.launch_proposal(exp_id)

    def launch_proposal(self, exp_id: int) -> None:
        exp = self.rows[exp_id]
        assert exp.line_id is not None and exp.parent_id is not None
        worktree = self.paths.worktrees / f"exp-{exp_id}-{uuid.uuid4().hex[:6]}"
        ctx = brain_context(
            self.store, list(self.rows.values()), self.task, experiment_id=exp_id, line_id=exp.line_id,
            parent_id=exp.parent_id, min_effect=self.min_effect(), task_dir_in_worktree=self.task_dir_in(worktree),
            brief_text=self.brief_text, directive=exp.directive, worktree=worktree, repo_root=self.repo.root)
        ctx = replace(ctx, insights=self.offered_insights(ctx.direction))
        fut = asyncio.wrap_future(self.pool.submit(self.propose_work, exp, ctx, worktree))
        self.tasks[fut] = ("proposal", exp_id, None)

    def offered_insights(self, direction: str) -> tuple[Any, ...]:
        """The library's most relevant live insights for a proposal (same family first); none when off."""
        if self.librarian is None:
            return ()
        try:
            return tuple(h.insight for h in self.librarian.relevant(self.brief_text[:4000], direction))
        except sqlite3.Error as exc:
            self.note("warning", f"could not read the insight library: {exc}")
            return ()

    def propose_work(self, exp: ExperimentRow, ctx: Any, worktree: Path) -> Proposal:
        """Runs in a brain thread: worktree from the parent's commit, brain edits, labmind snapshots."""
        started = time.monotonic()
        base = exp.base_commit
        assert base
        gitops.add_worktree(self.repo.root, worktree, base)
        keep = False
        try:
            idea = self.brain.propose(ctx)
            snap = gitops.snapshot(worktree, base, f"labmind exp {exp.id}: {idea.title}"[:200], root=self.repo.root)
            if snap.commit:
                gitops.pin(self.repo.root, self.task.name, exp.id, snap.commit)
            problem = verify_protected(self.task_dir_in(worktree), self.task.task.protected, self.protected_digest,
                                       self.digest_caps)
            findings = self.static_findings(worktree, base, snap) if snap.commit else []
            if snap.commit and self.librarian is not None:
                findings += self.librarian.known_cheats(snap.diff, exp.id)
            if self.auditor is not None and snap.commit and problem is None:
                findings += self.auditor.audit(self.task, idea, snap.diff, experiment_id=exp.id,
                                               line_id=exp.line_id, notes=self.transcript_tail(exp.id))
            # The snapshot left the worktree exactly at the new commit: the screening run can use it
            # as is, which keeps worktree creation off the slot's critical path.
            keep = snap.commit is not None and problem is None
        finally:
            if not keep:
                gitops.remove_worktree(self.repo.root, worktree)
        return Proposal(idea, snap, problem, time.monotonic() - started, worktree if keep else None, findings)

    def static_findings(self, worktree: Path, base: str, snap: gitops.Snapshot) -> list[Finding]:
        """The guard's scope and static rules on what this change introduced (runs in a brain thread)."""
        changed = [rel for p in snap.changed if (rel := to_task_relative(p, self.repo.subdir)) is not None]

        def old_source(rel: str) -> str | None:
            return gitops.file_at(self.repo.root, base, f"{self.repo.subdir}/{rel}" if self.repo.subdir else rel)

        allow = set(self.task.guard.allow)
        if not self.task.metric.evaluate:
            allow.add("metric_print")  # without a trusted evaluator, printing the metric is how runs report
        return check_change(self.task, self.task_dir_in(worktree), old_source, changed, allow=allow)

    def finish_proposal(self, exp_id: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            message = f"{type(exc).__name__}: {exc}"[:4000]
            limit = self.settings.max_experiments
            if NOT_TAKEN in str(exc) and limit is not None and self.experiments_made() >= limit:
                # An offer withdrawn because claims reached the limit: neither a brain failure nor an experiment.
                self.store.update_experiment(exp_id, status="failed", error=message, finished_at=time.time())
                self.refresh(exp_id)
                self.note("withdrawn", f"exp {exp_id}: {str(exc)[:300]}", experiment_id=exp_id)
                return
            self.brain_failures += 1
            self.store.update_experiment(exp_id, status="failed", error=message, finished_at=time.time())
            self.refresh(exp_id)
            self.note("brain_failed", f"exp {exp_id}: the brain failed: {message[:300]}", experiment_id=exp_id)
            if self.brain_failures >= self.settings.max_brain_failures:
                self.note("stop", f"the brain failed {self.brain_failures} times in a row; no more proposals. "
                                  "Check the brain (see `labmind show` of the failed experiments).")
            return
        self.brain_failures = 0
        p: Proposal = fut.result()
        snap = p.snapshot
        with self.store.transaction():
            self.store.update_experiment(exp_id, idea=p.idea, brain_seconds=p.seconds, commit_sha=snap.commit,
                                         diff=snap.diff, changed_files=snap.changed,
                                         flags=[f.flag_text() for f in p.findings if f.severity == "flag"])
            verdict, reason, rule_flags = self.scope_verdict(p)
            if verdict is None:
                self.store.update_experiment(exp_id, status="testing")
                self.store.add_run(experiment_id=exp_id, purpose="screen", seed=self.referee.screen_seed())
            elif rule_flags or p.findings:
                # Keep the evidence with a rejected or unchanged experiment too.
                self.store.update_experiment(
                    exp_id, flags=sorted(set(rule_flags) | {f.flag_text() for f in p.findings}))
        self.refresh(exp_id)
        # The proposal's worktree is exactly at the new commit: the executor may run the screen in it, which
        # keeps worktree creation off the slot's critical path.
        if p.worktree is not None and (verdict is not None or snap.commit is None
                                       or not self.executor.adopt(snap.commit, p.worktree)):
            gitops.remove_worktree(self.repo.root, p.worktree)
        if verdict is not None:
            self.referee.finish(exp_id, verdict, reason)
        else:
            self.note("proposed", f"exp {exp_id}: {p.idea.title}", experiment_id=exp_id)

    def scope_verdict(self, p: Proposal) -> tuple[Verdict | None, str, list[str]]:
        """The verdict a proposal gets before any run (no_change or rejected), its reason, and the flags
        that name the broken rule for the record (`labmind guard-report` counts them)."""
        snap = p.snapshot
        if snap.nested_repos:
            reason = (f"adds a git repository at {snap.nested_repos[0]}/ inside the worktree; a change is made of "
                      "files, so it was left out and the experiment is rejected")
            return Verdict.REJECTED, reason, [f"nested_repo: {reason}"]
        if snap.commit is None:
            return Verdict.NO_CHANGE, MEANING[Verdict.NO_CHANGE], []
        if snap.symlinks_out:
            reason = f"adds symlink {snap.symlinks_out[0]} pointing outside the worktree"
            return Verdict.REJECTED, reason, [f"symlink_out: {reason}"]
        violation = scope_violation(snap.changed, self.repo.subdir, self.task.task.editable,
                                    self.task.task.protected)
        if violation:
            return Verdict.REJECTED, violation, [f"{scope_rule(violation)}: {violation}"]
        if p.problem:
            return Verdict.REJECTED, p.problem, [f"protected: {p.problem}"]
        hard = next((f for f in p.findings if f.severity == "reject"), None)
        if hard is not None:
            return Verdict.REJECTED, f"{hard.flag_text()} ({hard.explanation})", [f.flag_text() for f in p.findings]
        return None, "", []

    # -- runs ----------------------------------------------------------------------------------------------

    def dispatch(self) -> None:
        queued = sorted(self.store.runs(status="queued"), key=lambda r: (RUN_PRIORITY[r.purpose], r.id))
        if queued and not self.wait_for_executor():
            return
        for run in queued:
            available = len(self.free) - (0 if self.settings.prefetch else self.reserved)
            if self.stopping or self.fatal or available <= 0:
                return
            if self.task.run.exclusive and self.running:
                return  # a timing task: each run alone on the machine
            if run.purpose == "screen" and not self.in_budget():
                continue
            self.start_run(run, self.free.pop(0))

    def wait_for_executor(self) -> bool:
        """Whether runs can start; while the executor cannot take any (a cluster that lost its GPU workers),
        the lab pauses, says why once, and goes on by itself when they return."""
        why = self.executor.unavailable()
        if why is not None and not self.paused:
            self.note("paused", f"paused: {why}. Queued runs wait and start when it can run them again; "
                                "`labmind stop` re-queues the running ones for `labmind resume`")
        elif why is None and self.paused:
            self.note("resumed", "the executor can run again: queued runs start")
        self.paused = why is not None
        return not self.paused

    def run_env(self, seed: int) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.task.run.env:
            name, eq, value = item.partition("=")
            if eq:
                env[name] = value
            elif name in os.environ:
                env[name] = os.environ[name]
        env[self.task.noise.seed_env] = str(seed)
        env["LABMIND_SEED"] = str(seed)
        return env

    def start_run(self, run: RunRow, slot: Slot) -> None:
        exp = self.rows[run.experiment_id]
        token = uuid.uuid4().hex
        log = self.paths.run_log(exp.id, run.id)
        self.store.update_run(run.id, status="running", slot=slot.label, token=token, started_at=time.time(),
                              log_path=str(log), sandbox=self.executor.sandbox_name)
        request = RunRequest(
            run_id=run.id, change=Change(base="", patch=b"", commit=self.commit_of(exp), tree=""),
            subdir=self.repo.subdir, command=self.task.run.command, timeout_s=self.task.run.timeout,
            metric=self.task.metric.name, log_path=log,
            secondary=tuple(self.task.metric.secondary) + ((self.task.metric.self_time,) if self.task.metric.self_time
                                                            else ()),
            env=self.run_env(run.seed), token=token, limits=self.limits, evaluate=self.task.metric.evaluate,
            # Runs that define a metric (baseline, verification) are also scored on held-out data.
            holdout=self.task.metric.holdout if run.purpose in ("baseline", "confirm") else None,
            artifacts=tuple(self.task.run.artifacts), protected=tuple(self.task.task.protected),
            protected_digest=self.protected_digest, digest_caps=self.digest_caps, hide=tuple(self.task.run.hide),
            hidden=tuple(hidden_paths(self.paths, self.repo.root, self.task)))
        # Which runs share the machine with which: recorded per run when it ends (timings read alongside it).
        for other in self.running:
            self.overlaps.setdefault(other, set()).add(run.id)
        self.overlaps[run.id] = set(self.running)
        self.running[run.id] = (slot, exp.id)
        self.slot_taken[run.id] = time.monotonic()
        fut = asyncio.ensure_future(self.run_work(request, slot))
        self.tasks[fut] = ("run", run.id, slot)
        self.note("run", f"run {run.id} of exp {exp.id} ({run.purpose}, seed {run.seed}) on {slot.label}",
                  experiment_id=exp.id, run_id=run.id)

    def change_of(self, commit: str) -> Change:
        """The change runs of `commit` are shipped as: the lab's starting commit (which every executor can
        have, a ray worker from the bundle it caches) plus the patch from it, and the tree it must give."""
        if commit not in self.changes:
            base = self.repo.head  # the lab's starting commit
            self.changes[commit] = Change(base=base, patch=gitops.binary_diff(self.repo.root, base, commit),
                                          commit=commit, tree=gitops.tree_of(self.repo.root, commit))
        return self.changes[commit]

    async def run_work(self, request: RunRequest, slot: Slot) -> RunOutcome:
        """One run on the executor, its change computed off the event loop (git)."""
        change = await asyncio.to_thread(self.change_of, request.change.commit)
        return await self.executor.run(replace(request, change=change), slot)

    def requeue_lost(self, run_id: int, exp_id: int, why: str) -> bool:
        """Re-queue a run whose slot was lost mid-run (a dead cluster node), exactly once: a re-queued run
        that loses its slot again is recorded as crashed (False)."""
        run = self.store.run(run_id)
        if run.requeued_from is not None and any(f.startswith("slot_lost")
                                                 for f in self.store.run(run.requeued_from).flags):
            return False
        with self.store.transaction():
            self.store.update_run(run_id, status="interrupted", ended_at=time.time(), flags=[f"slot_lost: {why}"])
            new = self.store.add_run(experiment_id=exp_id, purpose=run.purpose, seed=run.seed, requeued_from=run_id)
        self.note("requeued", f"run {run_id} lost its slot ({why}); queued again as run {new}",
                  experiment_id=exp_id, run_id=new)
        return True

    def estimate_baseline(self, run_id: int, outcome: RunOutcome) -> None:
        """After the first baseline run, say how long the rest of the baseline will take (a GPU task's baseline
        can take many minutes, and nothing else shows before it ends)."""
        run = self.store.run(run_id)
        if run.purpose != "baseline" or outcome.status != "ok":
            return
        left = [r for r in self.store.runs_of(run.experiment_id) if r.status in ("queued", "running")]
        if not left or len(self.store.runs_of(run.experiment_id)) - len(left) != 1:
            return
        waves = -(-len(left) // max(1, len(self.slots)))
        self.note("estimate", f"the first baseline run took {outcome.seconds:.0f}s; the other {len(left)} take about "
                              f"{waves * outcome.seconds:.0f}s more ({len(self.slots)} slot(s), "
                              f"timeout {self.task.run.timeout:g}s each)", experiment_id=run.experiment_id)

    def finish_run(self, run_id: int, fut: asyncio.Future[Any]) -> None:
        slot, exp_id = self.running.pop(run_id)
        # Duty cycle counts the whole time a slot is held for a run: worktree, run, trusted evaluation.
        self.stats.busy_s += time.monotonic() - self.slot_taken.pop(run_id, time.monotonic())
        if fut.cancelled():
            return  # stopping: the row stays 'running' and is re-queued on resume
        exc = fut.exception()
        if isinstance(exc, SlotLost) and self.requeue_lost(run_id, exp_id, str(exc)):
            return
        if exc is not None:
            now = time.time()
            outcome = RunOutcome(status="crashed", exit_code=None, metric=None, secondary={}, flags=(),
                                 log_tail=f"labmind could not run it: {type(exc).__name__}: {exc}",
                                 started_at=now, ended_at=now, sandbox=self.executor.sandbox_name)
            problem = None
        else:
            outcome = fut.result()
            problem = outcome.tampered
        flags = list(outcome.flags) + ([f"{PROTECTED_FLAG}: {problem} during the run"] if problem else [])
        self.store.update_run(run_id, status="done", outcome=outcome.status, exit_code=outcome.exit_code,
                              metric=outcome.metric, secondary=outcome.secondary, flags=flags,
                              log_tail=outcome.log_tail, started_at=outcome.started_at,
                              ended_at=outcome.ended_at, self_reported=outcome.self_reported, holdout=outcome.holdout,
                              sandbox=outcome.sandbox)
        slot_s = outcome.seconds * max(1, slot.gpu_count)
        exp = self.rows[exp_id]
        self.store.update_experiment(exp_id, gpu_seconds=exp.gpu_seconds + slot_s)
        self.refresh(exp_id)
        shown = f"{self.task.metric.name}={outcome.metric:.6g}" if outcome.metric is not None else outcome.status
        others = sorted(self.overlaps.pop(run_id, set()))
        self.store.event(OVERLAP, overlap_text(run_id, others), experiment_id=exp_id, run_id=run_id)
        self.estimate_baseline(run_id, outcome)
        alongside = f"; ran alongside run(s) {', '.join(map(str, others))}" if others else ""
        where = f" on {outcome.where}" if outcome.where else ""
        self.note("run_done", f"run {run_id} of exp {exp_id}: {shown} in {outcome.seconds:.1f}s{where}{alongside}",
                  experiment_id=exp_id, run_id=run_id)
        self.advance(exp_id)
