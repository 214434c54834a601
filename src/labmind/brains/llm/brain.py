"""The `llm` brain: ideate → implement, repair on crashes, reflect on results, direct the lines.

Each step is its own module with its own prompt template; this class holds the per-line idea queues and
wires the steps to the lab's Brain protocol. Roles may use different models: `implementer` edits code,
`thinker` ideates, reflects and directs (`--ideas-model`; the implementer's model when not given).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from labmind.brains.base import BrainContext, BrainError, Decision, DirectorView
from labmind.brains.llm import director, ideate, reflect, render
from labmind.brains.llm.check import SandboxedCheck
from labmind.brains.llm.implement import ImplementLimits, ImplementResult, implement, system_prompt
from labmind.brains.llm.state import LOG_TAIL_CHARS, describe
from labmind.execute.sandbox import Sandbox
from labmind.llm.base import CallContext, LLMClient
from labmind.model import DirectiveKind, Idea, PastExperiment
from labmind.task.model import Task
from labmind.workspace.git import GitError, worktree_git

#: Ideas asked for per ideate call, and ideas tried per proposal before the proposal fails.
IDEAS_PER_CALL = 4
ATTEMPTS = 2
DIFF_CHARS = 16_000
#: Editable files shown inline in the implement prompt (models that cannot call read_file still see them).
INLINE_CHARS = 16_000


class LLMBrain:
    name = "llm"
    can_repair = True

    def __init__(self, task: Task, *, implementer: LLMClient, thinker: LLMClient | None = None,
                 sandbox: Sandbox | None = None, hidden: list[Path] | None = None,
                 limits: ImplementLimits | None = None, transcript_dir: Path | None = None,
                 max_repairs: int = 2, ideas_per_call: int = IDEAS_PER_CALL, attempts: int = ATTEMPTS) -> None:
        self.task = task
        self.implementer = implementer
        self.thinker = thinker or implementer
        self.sandbox = sandbox  # runs the task's smoke check; None: the loop offers no run_check
        self.hidden = hidden or []
        self.limits = limits or ImplementLimits()
        self.transcript_dir = transcript_dir
        self.max_repairs = max_repairs
        self.ideas_per_call = ideas_per_call
        self.attempts = attempts
        self._lock = threading.Lock()
        self._queues: dict[int, list[Idea]] = {}
        self._tried: list[Idea] = []  # every idea finished or handed out, lab-wide

    # -- the Brain protocol ------------------------------------------------------------------------------

    def learn(self, result: PastExperiment) -> None:
        if result.idea.title:
            with self._lock:
                self._tried.append(result.idea)

    def propose(self, ctx: BrainContext) -> Idea:
        kind = ctx.directive.get("kind")
        if kind == DirectiveKind.REPAIR:
            return self._repair(ctx)
        if kind == DirectiveKind.COMBINE:
            return self._combine(ctx)
        problems = []
        for _ in range(max(self.attempts, 1)):
            idea = self._next_idea(ctx)
            result = self._implement(ctx, idea, render("task_idea", idea=idea, **self._goal()), role="implement")
            if result.ok and result.edited:
                return self._with_result(idea, result)
            problems.append(f"{idea.title!r}: {result.reason}")
            revert(ctx)  # a half-made change is not run: the next idea starts from the parent's code
        raise BrainError("implement: no complete change was made (" + "; ".join(problems) + ")")

    def exhausted(self) -> str | None:
        """Why no proposal can be paid for any more (the lab's LLM dollar cap), or None."""
        budget = getattr(self.implementer, "budget", None)
        cap = getattr(budget, "usd_cap", None)
        if cap is None or budget.spent_usd < cap:
            return None
        return (f"the lab's LLM budget of ${cap:.2f} is used up (${budget.spent_usd:.4f} spent); raise it with "
                "`labmind resume --llm-budget-usd N`")

    def reflect(self, result: PastExperiment, diff: str, parent: PastExperiment | None = None,
                min_effect: float = 0.0) -> str:
        return reflect.reflect(self.thinker, self.task, result, parent, diff, min_effect=min_effect)

    def direct(self, view: DirectorView) -> list[Decision]:
        return director.direct(self.thinker, view)

    # -- steps ---------------------------------------------------------------------------------------------

    def _goal(self) -> dict[str, str]:
        return {"goal": self.task.metric.goal, "metric": self.task.metric.name, "command": self.task.run.command}

    def _next_idea(self, ctx: BrainContext) -> Idea:
        with self._lock:
            queue = self._queues.setdefault(ctx.line_id, [])
            tried = list(self._tried)
            # Ideas queued before the line's latest results may now duplicate what was tried since.
            queue[:] = ideate.distinct(queue, tried)[0]
            if queue:
                idea = queue.pop(0)
                self._tried.append(idea)
                return idea
        fresh: list[Idea] = []
        for _ in range(2):  # a second call when another line took every idea of the first meanwhile
            fresh, _ = ideate.ideate(self.thinker, ctx, n=self.ideas_per_call, tried=tried, temperature=None)
            with self._lock:
                fresh = ideate.distinct(fresh, self._tried)[0]
                tried = list(self._tried)
            if fresh:
                break
        with self._lock:
            if not fresh:
                raise BrainError("ideate: every new idea was taken by another line meanwhile")
            idea = fresh.pop(0)
            self._tried.append(idea)
            self._queues[ctx.line_id].extend(fresh)
        return idea

    def _repair(self, ctx: BrainContext) -> Idea:
        d = ctx.directive
        idea = ctx.parent.idea
        instructions = render(
            "task_repair", idea=idea, verdict=ctx.parent.verdict, reason=ctx.parent.reason,
            attempt=d.get("attempt", 1), max_attempts=self.max_repairs,
            log_tail=str(d.get("log_tail") or ctx.parent.log_tail)[-LOG_TAIL_CHARS:] or "(no output)",
        )  # fmt: skip
        result = self._implement(ctx, idea, instructions, role="repair")
        if not (result.ok and result.edited):
            raise BrainError(f"repair: no complete fix was made ({result.reason})")
        title = idea.title if idea.title.startswith("fix: ") else f"fix: {idea.title}"
        return self._with_result(Idea(title=title[:120], hypothesis=idea.hypothesis, rationale=idea.rationale,
                                      expected_effect=idea.expected_effect), result)

    def _combine(self, ctx: BrainContext) -> Idea:
        d = ctx.directive
        other = Idea.from_dict(d.get("idea") or {"title": f"experiment {d.get('with')}"})
        instructions = render("task_combine", other=other, other_line=d.get("other_line", "?"),
                              diff=str(d.get("diff") or "")[:DIFF_CHARS])
        idea = Idea(title=f"combine: {other.title}"[:120], hypothesis=other.hypothesis,
                    rationale=f"confirmed on line {d.get('other_line', '?')} (exp {d.get('with')}); "
                              f"this line's incumbent: {describe(ctx.incumbent)[2:]}"[:2000],
                    expected_effect=other.expected_effect)
        result = self._implement(ctx, idea, instructions, role="implement")
        if not (result.ok and result.edited):
            raise BrainError(f"combine: no complete change was made ({result.reason})")
        return self._with_result(idea, result)

    def _implement(self, ctx: BrainContext, idea: Idea, instructions: str, *, role: str) -> ImplementResult:
        task = ctx.task
        check = None
        if task.run.smoke and self.sandbox is not None:
            check = SandboxedCheck(self.sandbox, workdir=ctx.task_dir, worktree_root=ctx.worktree,
                                   repo_root=ctx.repo_root, protected=task.task.protected, hidden=self.hidden,
                                   hide=task.run.hide)
        result = implement(
            self.implementer, system=system_prompt(task, ctx.task_dir, check=check is not None,
                                                   inline_chars=INLINE_CHARS),
            instructions=instructions, workdir=ctx.task_dir, editable=task.task.editable,
            protected=task.task.protected, smoke=task.run.smoke, run_check=check, limits=self.limits,
            context=CallContext(role=role, experiment_id=ctx.experiment_id, line_id=ctx.line_id),
            hidden=task.run.hide, refuse_shadowing="shadow_module" not in task.guard.allow,
        )  # fmt: skip
        self._save_transcript(ctx.experiment_id, idea, result, role)
        return result

    def _with_result(self, idea: Idea, result: ImplementResult) -> Idea:
        params = {**idea.params, "implement": {"steps": result.steps, "tokens": result.tokens,
                                               "stopped": result.reason, "summary": result.summary[:1000]}}
        return Idea(title=idea.title, hypothesis=idea.hypothesis, rationale=idea.rationale,
                    expected_effect=idea.expected_effect, params=params)

    def _save_transcript(self, exp_id: int, idea: Idea, result: ImplementResult, role: str) -> None:
        if self.transcript_dir is None:
            return
        self.transcript_dir.mkdir(parents=True, exist_ok=True)
        path = self.transcript_dir / f"exp-{exp_id}.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"role": role, "idea": idea.to_dict(), "ok": result.ok, "reason": result.reason,
                                "steps": result.steps, "tokens": result.tokens, "edited": result.edited,
                                "transcript": result.transcript}, default=str) + "\n")


def revert(ctx: BrainContext) -> None:
    """Put the experiment's worktree back at its commit (tracked files restored, new untracked files removed)."""
    if ctx.worktree is None or ctx.repo_root is None:
        return  # outside a lab: no worktree labmind made
    for args in (["reset", "-q", "--hard", "HEAD"], ["clean", "-fdq"]):
        try:
            worktree_git(ctx.repo_root, ctx.worktree, *args)
        except GitError:
            pass  # the snapshot commits what is left; the scope check judges it
