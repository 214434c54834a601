"""The lab loop: the scheduler that wires task, store, workspace, brain, search, executor and judge.

Everything is driven from the store: each step writes its row before acting, and the referee decides an
experiment's next step from its rows alone, so a lab killed at any point resumes where it was. The lab is
composed of small parts, each with one job: the `Ledger` (store, rows, notes), the `Referee` (the experiment
state machine), `Runs` (run requests and outcomes), `Repairs`, the `Director`, and its `Stoppers`. What stays
here is the scheduler: slots, the futures of proposals, runs and brain side-work, and dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from labmind.brains.abilities import Abilities
from labmind.brains.base import Brain
from labmind.execute.base import Executor, RunOutcome, RunRequest, Slot, SlotLost
from labmind.execute.cgroups import memory_available
from labmind.execute.limits import resolve_limits
from labmind.lab import promotion, startup
from labmind.lab.director import Director
from labmind.lab.judging import Referee
from labmind.lab.ledger import Ledger
from labmind.lab.proposals import Proposal, Proposer
from labmind.lab.repairs import Repairs
from labmind.lab.review import ReviewError, apply_review, take_posted
from labmind.lab.runs import RUN_PRIORITY, Runs, hidden_paths
from labmind.lab.settings import LabSettings
from labmind.lab.setup import SetupFailed, run_setup
from labmind.lab.startup import LabError
from labmind.lab.stoppers import BrainBudget, BrainFailures, Deadline, Halted, MaxExperiments, Stoppers
from labmind.lab.views import failure_tail, search_view
from labmind.model import NOT_TAKEN, ExperimentKind, ExperimentStatus, RunPurpose, RunStatus, experiments_made
from labmind.paths import LabPaths
from labmind.search.base import Policy
from labmind.store import ExperimentRow, RunRow, Store, StoreError
from labmind.task import Task
from labmind.verdicts import RUN_FAILURES, Verdict
from labmind.workspace import git as gitops
from labmind.workspace.scope import DigestCaps

__all__ = ["Lab", "LabError", "Reporter", "SessionStats", "hidden_paths"]


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


class Lab:
    """The scheduler: start-up, proposals, runs and the brain's side-work (reflections, the director) on slots
    and futures. Judging is the `Referee`'s; the other parts are composed below."""

    def __init__(self, *, paths: LabPaths, task: Task, repo: gitops.RepoInfo, store: Store, executor: Executor,
                 brain: Brain, policy: Policy, settings: LabSettings, reporter: Reporter,
                 protected_digest: dict[str, str], brief_text: str = "", auditor: Any = None,
                 protected_bytes: int | None = None, librarian: Any = None) -> None:
        self.paths, self.task, self.repo, self.store = paths, task, repo, store
        self.executor, self.brain, self.policy, self.settings = executor, brain, policy, settings
        self.reporter = reporter
        self.abilities = Abilities.of(brain)
        self.protected_digest = protected_digest
        #: Caps for re-checking the protected files, from what they held when the lab was created.
        self.digest_caps = DigestCaps.after_changes(len(protected_digest), protected_bytes)
        self.brief_text = brief_text
        self.auditor = auditor  # the guard's LLM reviewer (layer 6), when --review-model is set
        self.librarian = librarian  # the insight library's writer and retriever (labmind.library), when on
        self.slots = list(executor.slots)
        self.free: list[Slot] = list(self.slots)
        self.reserved = 0  # slots held for proposals in flight (sequential mode only)
        self.tasks: dict[asyncio.Future[Any], tuple[str, int, Slot | None]] = {}
        self.ledger = Ledger(store, task, reporter)
        self.rows = self.ledger.rows
        self.referee = Referee(self.ledger, task, paths, host=self)
        self.stopping = False
        self.stop_signal: int | None = None  # the signal that asked the lab to stop, if one did
        self.closed = False  # the lab stopped proposing and asked for its lines' closing verifications
        self.brain_failures = 0
        self.stats = SessionStats()
        self.running: dict[int, tuple[Slot, int]] = {}  # run id -> (slot, experiment id)
        self.slot_taken: dict[int, float] = {}  # run id -> when its slot was taken (monotonic)
        self.overlaps: dict[int, set[int]] = {}  # run id -> the other runs that ran while it did
        self.paused = False  # no run can start on the executor now (a cluster without GPU workers)
        lookahead = settings.lookahead if settings.lookahead is not None else len(self.slots)
        self.lookahead = lookahead
        self.pool = ThreadPoolExecutor(max_workers=len(self.slots) + lookahead + 1, thread_name_prefix="brain")
        # Reflections and the director wait in their own queue, never ahead of the proposals that feed slots.
        self.aux_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reflect")
        self._wake = asyncio.Event()
        #: Every run's resource limits ([run] memory, processes, file_size, log_size), "auto" memory shared
        #: between the slots.
        self.runs = Runs(self.ledger, task, paths, repo, protected_digest=protected_digest,
                         digest_caps=self.digest_caps, limits=resolve_limits(task.run, len(self.slots),
                                                                             memory_available()),
                         n_slots=len(self.slots))
        self.limits = self.runs.limits
        wanted_lines = settings.lines or len(self.slots)
        self.repairs = Repairs(self.ledger, brain_name=brain.name, max_repairs=settings.max_repairs,
                               may_propose=self.may_propose)
        self.proposer = Proposer(self.ledger, task, paths, repo, brain, protected_digest=protected_digest,
                                 digest_caps=self.digest_caps, brief_text=brief_text, auditor=auditor,
                                 librarian=librarian)
        self.director = Director(self.ledger, task, repo, brain_name=brain.name, brief_text=brief_text,
                                 every=settings.director_every, max_lines=2 * wanted_lines,
                                 may_propose=self.may_propose)
        self.deadline = Deadline(settings.budget_s)
        self.session_start: tuple[float, int] | None = None  # (when, candidates then): this session's pace
        self.stoppers = Stoppers(
            every=[Halted(lambda: "the lab is stopping" if self.stopping or self.fatal else None), self.deadline,
                   BrainFailures(settings.max_brain_failures, lambda: self.brain_failures),
                   BrainBudget(self.abilities.exhausted or (lambda: None), lambda m: self.ledger.note("stop", m))],
            new=[MaxExperiments(settings.max_experiments, self.experiments_made)]
            if settings.max_experiments is not None else [])

    # -- small helpers -----------------------------------------------------------------------------

    def note(self, kind: str, message: str, *, experiment_id: int | None = None, run_id: int | None = None) -> None:
        self.ledger.note(kind, message, experiment_id=experiment_id, run_id=run_id)

    def task_dir_in(self, worktree: Path) -> Path:
        return worktree / self.repo.subdir if self.repo.subdir else worktree

    @property
    def fatal(self) -> str | None:
        return self.referee.fatal

    def min_effect(self) -> float:
        return self.ledger.min_effect()

    # -- the referee's host --------------------------------------------------------------------------

    def verdict_given(self, exp: ExperimentRow, promoted: bool, previous: str | None) -> None:
        if exp.kind != ExperimentKind.CANDIDATE:
            return
        if previous:
            # A provisional verdict decided by verification: the session's counts move, the brain learns the
            # final word, but repairs, reflections and the director saw it the first time.
            self.stats.verdicts[previous] = max(0, self.stats.verdicts.get(previous, 0) - 1)
        else:
            self.stats.finished += 1
        self.stats.verdicts[exp.verdict or ""] = self.stats.verdicts.get(exp.verdict or "", 0) + 1
        if promoted or (exp.verdict == Verdict.KEPT and not previous):  # not a superseded step included again
            self.announce_promotion(exp)
        self.brain.learn(exp.past())
        self.record_insights(exp)
        if not previous:
            if self.abilities.repair:
                self.repairs.maybe_repair(exp)
            self.start_reflection(exp)
            self.director.since += 1
            self.maybe_direct()

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
        kept = promotion.keep(self.store, self.repo.root, exp)
        if kept.error:
            self.note("warning", kept.error)
        is_best = kept.best
        what = "verified point and incumbent" if exp.verdict == Verdict.IMPROVED else "provisional incumbent"
        self.note("incumbent", f"exp {exp.id} is line {exp.line_id}'s new {what}"
                               + (f"; lab best, kept on branch {lab.branch}" if is_best else ""),
                  experiment_id=exp.id)

    def experiments_left(self) -> int | None:
        """How many more candidate experiments this session will propose, when a limit says so: what
        `--max-experiments` leaves, or what the time left allows at this session's pace so far."""
        left: list[int] = []
        if self.settings.max_experiments is not None:
            left.append(max(0, self.settings.max_experiments - self.experiments_made()))
        time_left = self.deadline.left_s()
        if time_left is not None and self.session_start is not None:
            began, count = self.session_start
            done = self.store.count_candidates() - count
            if done > 0:
                pace = (time.monotonic() - began) / done
                left.append(max(0, int(time_left / pace)))
        return min(left) if left else None

    # -- the loop --------------------------------------------------------------------------------------

    async def run(self) -> SessionStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, sig)
        self.deadline.start()
        self.session_start = (time.monotonic(), self.store.count_candidates())
        # For progress displays (`labmind status` reads it from another process): when this session began, its budget.
        self.store.set_meta("session", json.dumps({"started_at": time.time(), "budget_s": self.settings.budget_s}))
        startup.recover(self.ledger, self.executor, self.paths, self.repo)
        startup.refuse_failed_baseline(self.ledger, self.paths)
        self.note("limits", f"per run: {self.limits.describe()}; {self.executor.limits_mechanism}")
        await asyncio.to_thread(self.run_setup)
        wanted_lines = self.settings.lines or len(self.slots)
        startup.ensure_baseline(self.ledger, self.task, n_lines=wanted_lines, n_slots=len(self.slots))
        startup.ensure_lines(self.ledger, wanted_lines)
        startup.sync_refs(self.ledger, self.repo)
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.status == ExperimentStatus.DONE and (row.kind == ExperimentKind.BASELINE or row.verdict):
                self.brain.learn(row.past())
        self.resume_reflections()
        if self.abilities.repair:
            self.repairs.resume()
        for row in list(self.rows.values()):
            self.referee.advance(row.id)
        for row in list(self.rows.values()):
            if row.status == ExperimentStatus.PROPOSING and self.may_propose(count_only=False):
                self.launch_proposal(row.id)
        try:
            await self.main_loop()
        finally:
            await self.shutdown()
        if self.fatal:
            raise LabError(self.fatal)
        return self.stats

    def run_setup(self) -> None:
        """The task's setup command, once per machine and protected-files digest."""
        if self.task.task.setup:
            try:
                run_setup(self.task.task.setup, self.paths, self.protected_digest, self.note)
            except SetupFailed as exc:
                raise LabError(str(exc)) from exc

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
        if self.deadline.in_budget():
            # Out of experiments, not of time: close once what is being proposed and screened is judged.
            if self.may_propose() or self.proposals_in_flight():
                return
            if any(r.kind == ExperimentKind.CANDIDATE
                   and r.status in (ExperimentStatus.TESTING, ExperimentStatus.PROPOSING)
                   for r in self.rows.values()):
                return
        # Out of time: screens and proposals in flight are left for `resume`, but what the lines found is
        # verified now, so the session ends with it claimed or reverted.
        self.closed = True
        self.referee.verifier.close_lines()

    def budget_spent(self) -> bool:
        """Out of budget with no run left to finish: what is still in flight (proposals an agent may take
        hours over, reflections) is left to `resume`, which makes it again from the store."""
        if self.deadline.in_budget() or any(kind == "run" for kind, _, _ in self.tasks.values()):
            return False
        if any(r.purpose != RunPurpose.SCREEN for r in self.store.runs(status=RunStatus.QUEUED)):
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
            self.ledger.reload()
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
        if self.abilities.close is not None:
            self.abilities.close()  # lets a brain that waits (an external agent, say) give up its wait
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

    # -- the brain's side-work: reflections and the director -------------------------------------------

    def start_reflection(self, exp: ExperimentRow) -> None:
        reflect = self.abilities.reflect
        if reflect is None or exp.kind != ExperimentKind.CANDIDATE or exp.analysis or self.stopping:
            return
        parent = self.rows.get(exp.parent_id or -1)
        past = exp.past(failure_tail(self.store, exp) if exp.verdict in RUN_FAILURES else "")
        fut = asyncio.wrap_future(self.aux_pool.submit(
            reflect, past, exp.diff or "", parent=parent.past() if parent else None, min_effect=self.min_effect()))
        self.tasks[fut] = ("reflect", exp.id, None)

    def resume_reflections(self) -> None:
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if (row.kind == ExperimentKind.CANDIDATE and row.verdict and not row.analysis
                    and row.brain == self.brain.name):
                self.start_reflection(row)

    def maybe_direct(self) -> None:
        direct = self.abilities.direct
        if direct is None or self.stopping or any(kind == "direct" for kind, _, _ in self.tasks.values()):
            return
        if not self.may_propose(count_only=False) or (view := self.director.due()) is None:
            return
        fut = asyncio.wrap_future(self.aux_pool.submit(direct, view))
        self.tasks[fut] = ("direct", 0, None)
        self.note("director", f"reviewing {len(view.lines)} lines")

    def finish_aux(self, kind: str, ident: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            # A failed reflection or review costs the lab nothing but the lesson: say so, carry on.
            self.note("brain_step_failed", f"{kind} failed: {type(exc).__name__}: {str(exc)[:300]}",
                      experiment_id=ident or None)
            return
        if kind == "reflect":
            text = str(fut.result())[:4000].encode("utf-8", errors="replace").decode("utf-8")
            self.store.update_experiment(ident, analysis=text)
            self.ledger.refresh(ident)
            self.note("reflect", f"exp {ident}: {text[:300]}", experiment_id=ident)
        elif kind == "direct":
            for decision in fut.result():
                try:
                    self.director.apply(decision)
                except (StoreError, gitops.GitError, ValueError, KeyError) as exc:
                    self.note("director", f"{decision.kind} not applied: {type(exc).__name__}: {str(exc)[:200]}")

    # -- proposals ---------------------------------------------------------------------------------------

    def may_propose(self, count_only: bool = True) -> bool:
        """Whether another experiment may be proposed now; `count_only=False` for the experiments the lab
        requested (repairs, combinations), which the experiment limit counted when they were requested."""
        return self.stoppers.reason(new=count_only) is None

    def unclaimed(self) -> set[int]:
        """Proposals in flight that no agent has claimed yet, for brains that offer work (the agent brain);
        brains that work on what they propose have none."""
        if self.abilities.offers is None:
            return set()
        in_flight = {ident for kind, ident, _ in self.tasks.values() if kind == "proposal"}
        return in_flight - self.abilities.offers.claimed()

    def experiments_made(self) -> int:
        """Candidates that count toward --max-experiments: every one a brain started work on (an agent's from
        its claim), so that agents, not the order of offers, decide where the last experiments go."""
        if self.abilities.offers is None:
            return self.store.count_candidates()  # every proposal is work started (and one SQL count is cheap)
        return experiments_made(self.rows.values(), self.unclaimed())

    def withdraw_surplus_offers(self) -> None:
        """Claims reached the experiment limit: offers still unclaimed are withdrawn (not counted)."""
        limit, offers = self.settings.max_experiments, self.abilities.offers
        if limit is None or offers is None or not self.unclaimed() or self.experiments_made() < limit:
            return
        offers.withdraw_unclaimed(f"the lab's {limit} experiments (--max-experiments) were all claimed before this "
                                  "offer was")

    def proposals_in_flight(self) -> int:
        return sum(1 for kind, _, _ in self.tasks.values() if kind == "proposal")

    def queued_screens(self) -> int:
        return sum(1 for r in self.store.runs(status=RunStatus.QUEUED) if r.purpose == RunPurpose.SCREEN)

    def pending_directive(self) -> ExperimentRow | None:
        """A requested experiment (repair, combine) not yet handed to the brain."""
        busy = {ident for kind, ident, _ in self.tasks.values() if kind == "proposal"}
        return next((r for r in sorted(self.rows.values(), key=lambda r: r.id)
                     if r.status == ExperimentStatus.PROPOSING and r.directive and r.id not in busy), None)

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
                if len(self.free) - self.reserved <= 0 or self.store.runs(status=RunStatus.QUEUED):
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
        exp_id = self.store.add_experiment(kind=ExperimentKind.CANDIDATE, line_id=choice.line_id, parent_id=parent.id,
                                           brain=self.brain.name, base_commit=self.ledger.commit_of(parent))
        self.ledger.refresh(exp_id)
        self.note("propose", f"exp {exp_id}: {choice.why}", experiment_id=exp_id)
        self.launch_proposal(exp_id)

    def launch_proposal(self, exp_id: int) -> None:
        exp = self.rows[exp_id]
        worktree = self.paths.worktrees / f"exp-{exp_id}-{uuid.uuid4().hex[:6]}"
        fut = asyncio.wrap_future(self.pool.submit(self.proposer.work, exp, self.proposer.context(exp, worktree),
                                                   worktree))
        self.tasks[fut] = ("proposal", exp_id, None)

    def finish_proposal(self, exp_id: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            message = f"{type(exc).__name__}: {exc}"[:4000]
            limit = self.settings.max_experiments
            if NOT_TAKEN in str(exc) and limit is not None and self.experiments_made() >= limit:
                # An offer withdrawn because claims reached the limit: neither a brain failure nor an experiment.
                self.store.update_experiment(exp_id, status=ExperimentStatus.FAILED, error=message,
                                             finished_at=time.time())
                self.ledger.refresh(exp_id)
                self.note("withdrawn", f"exp {exp_id}: {str(exc)[:300]}", experiment_id=exp_id)
                return
            self.brain_failures += 1
            self.store.update_experiment(exp_id, status=ExperimentStatus.FAILED, error=message, finished_at=time.time())
            self.ledger.refresh(exp_id)
            self.note("brain_failed", f"exp {exp_id}: the brain failed: {message[:300]}", experiment_id=exp_id)
            if self.brain_failures >= self.settings.max_brain_failures:
                self.note("stop", f"the brain failed {self.brain_failures} times in a row; no more proposals. "
                                  "Check the brain (see `labmind show` of the failed experiments).")
            return
        self.brain_failures = 0
        p: Proposal = fut.result()
        verdict, reason = self.proposer.record(exp_id, p, self.referee.screen_seed())
        # The proposal's worktree is exactly at the new commit: the executor may run the screen in it, which
        # keeps worktree creation off the slot's critical path.
        if p.worktree is not None and (verdict is not None or p.snapshot.commit is None
                                       or not self.executor.adopt(p.snapshot.commit, p.worktree)):
            gitops.remove_worktree(self.repo.root, p.worktree)
        if verdict is not None:
            self.referee.finish(exp_id, verdict, reason)
        else:
            self.note("proposed", f"exp {exp_id}: {p.idea.title}", experiment_id=exp_id)

    # -- runs ----------------------------------------------------------------------------------------------

    def dispatch(self) -> None:
        queued = sorted(self.store.runs(status=RunStatus.QUEUED), key=lambda r: (RUN_PRIORITY[r.purpose], r.id))
        if queued and not self.wait_for_executor():
            return
        for run in queued:
            available = len(self.free) - (0 if self.settings.prefetch else self.reserved)
            if self.stopping or self.fatal or available <= 0:
                return
            if self.task.run.exclusive and self.running:
                return  # a timing task: each run alone on the machine
            if run.purpose == RunPurpose.SCREEN and not self.deadline.in_budget():
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

    def start_run(self, run: RunRow, slot: Slot) -> None:
        request = self.runs.start(run, slot, uuid.uuid4().hex, self.executor.sandbox_name)
        exp_id = run.experiment_id
        # Which runs share the machine with which: recorded per run when it ends (timings read alongside it).
        for other in self.running:
            self.overlaps.setdefault(other, set()).add(run.id)
        self.overlaps[run.id] = set(self.running)
        self.running[run.id] = (slot, exp_id)
        self.slot_taken[run.id] = time.monotonic()
        fut = asyncio.ensure_future(self.run_work(request, slot))
        self.tasks[fut] = ("run", run.id, slot)
        self.note("run", f"run {run.id} of exp {exp_id} ({run.purpose}, seed {run.seed}) on {slot.label}",
                  experiment_id=exp_id, run_id=run.id)

    async def run_work(self, request: RunRequest, slot: Slot) -> RunOutcome:
        """One run on the executor, its change computed off the event loop (git)."""
        change = await asyncio.to_thread(self.runs.change_of, request.change.commit)
        return await self.executor.run(replace(request, change=change), slot)

    def finish_run(self, run_id: int, fut: asyncio.Future[Any]) -> None:
        slot, exp_id = self.running.pop(run_id)
        # Duty cycle counts the whole time a slot is held for a run: worktree, run, trusted evaluation.
        self.stats.busy_s += time.monotonic() - self.slot_taken.pop(run_id, time.monotonic())
        if fut.cancelled():
            return  # stopping: the row stays 'running' and is re-queued on resume
        exc = fut.exception()
        if isinstance(exc, SlotLost) and self.runs.requeue_lost(run_id, exp_id, str(exc)):
            return
        if exc is not None:
            now = time.time()
            outcome = RunOutcome(status="crashed", exit_code=None, metric=None, secondary={}, flags=(),
                                 log_tail=f"labmind could not run it: {type(exc).__name__}: {exc}",
                                 started_at=now, ended_at=now, sandbox=self.executor.sandbox_name)
        else:
            outcome = fut.result()
        self.runs.record(run_id, exp_id, outcome, slot, sorted(self.overlaps.pop(run_id, set())))
        self.referee.advance(exp_id)
