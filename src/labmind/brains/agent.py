"""The `agent` brain: an interactive agent (Claude Code, Codex, Cursor, a person) makes each proposal.

For every experiment the lab wants, `propose` (in a lab worker thread) publishes a work offer in the inbox
under `.labmind/agent/` (see labmind.brains.agent_inbox) and waits. An agent claims the offer with
`labmind agent next` (or the MCP tool next_experiment), edits files in the experiment's worktree, and
submits its idea with `labmind agent submit`. `propose` then returns that idea; labmind computes the diff
itself with git, runs it in the sandbox and judges it, exactly as for any other brain.

The wait ends without an idea (BrainError, recorded as a failed proposal) when:
- the lab stops: `close()` withdraws every open offer at once, and waiting threads give up;
- nobody claims the offer within the claim timeout (none by default: a lab waits for its agents);
- the claimer does not submit within the submit timeout (1 hour by default), counted from the claim;
- the agent abandons the experiment (`submit --abandon REASON`). Abandoning is a failed proposal, not a
  `no_change` verdict: verdicts come only from labmind's checks and runs, and an abandoned worktree is
  discarded without being committed, whatever the agent edited in it.
As with every brain, five failed proposals in a row stop the lab proposing.

Spec: `agent` or `agent:claim=10m,submit=2h` (durations as in labmind.toml; `none` for no limit).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from labmind.brains.agent_inbox import Claim, Inbox, InboxError, Offer, OfferState, Submission, inbox_dir
from labmind.brains.base import BrainContext, BrainError
from labmind.model import NOT_TAKEN, ExperimentKind, ExperimentStatus, Idea, PastExperiment
from labmind.paths import LabPaths
from labmind.task import parse_duration
from labmind.workspace import git as gitops

DEFAULT_CLAIM_TIMEOUT_S: float | None = None
DEFAULT_SUBMIT_TIMEOUT_S: float | None = 3600.0
POLL_S = 0.2
STOPPED = ("the lab stopped before this experiment was submitted; the lab offers it again when it resumes "
           "(`labmind agent start`)")


def _duration_text(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


class AgentBrain:
    """Waits for agents through the inbox. See the module docstring for its contract."""

    name = "agent"

    def __init__(self, inbox: Inbox, *, claim_timeout_s: float | None = DEFAULT_CLAIM_TIMEOUT_S,
                 submit_timeout_s: float | None = DEFAULT_SUBMIT_TIMEOUT_S, poll_s: float = POLL_S) -> None:
        self.inbox = inbox
        self.claim_timeout_s = claim_timeout_s
        self.submit_timeout_s = submit_timeout_s
        self.poll_s = poll_s
        self._stop = threading.Event()
        # Offers this process has open; close() and a finishing propose() settle each exactly once.
        self._active: set[int] = set()
        self._lock = threading.Lock()
        self._swept = False

    def learn(self, result: PastExperiment) -> None:
        """Nothing to keep: agents read the history in every brief and through `labmind agent history`."""

    def propose(self, ctx: BrainContext) -> Idea:
        exp = ctx.experiment_id
        offer = Offer(experiment=exp, line=ctx.line_id, lab_pid=os.getpid(), offered_at=time.time(),
                      base_commit=_head(ctx),
                      claim_timeout_s=self.claim_timeout_s, submit_timeout_s=self.submit_timeout_s,
                      brief=ctx.to_dict())
        with self._lock:
            if self._stop.is_set():
                raise BrainError(STOPPED)
            if not self._swept:
                self.inbox.sweep(os.getpid())  # offers a killed lab left behind
                self._swept = True
            self.inbox.publish(offer)
            self._active.add(exp)
        outcome, reason = "withdrawn", ""
        try:
            claim = self._await_claim(offer)
            submission = self._await_submission(offer, claim)
            if submission.abandon is not None:
                outcome, reason = "abandoned", submission.abandon
                raise BrainError(f"agent {claim.agent!r} abandoned experiment {exp}: {submission.abandon}")
            outcome, reason = "submitted", submission.title
            return self._idea(submission, claim)
        except BrainError as exc:
            reason = reason or str(exc)
            raise
        finally:
            with self._lock:
                if exp in self._active:  # else close() has settled it already
                    self._active.discard(exp)
                    self.inbox.close(exp, outcome, reason)

    def close(self) -> None:
        """The lab is stopping: withdraw every open offer now (agents see it at once) and end the waits."""
        with self._lock:
            self._stop.set()
            for exp in sorted(self._active):
                try:
                    claim = self.inbox.withdraw_offer(exp, STOPPED)
                    if claim is not None and not claim.withdrawn:
                        self.inbox.withdraw_claim(exp, STOPPED)
                    self.inbox.close(exp, "withdrawn", STOPPED)
                except OSError:
                    pass  # the folder is gone: nobody can claim or submit it anyway
            self._active.clear()

    def claimed(self) -> set[int]:
        """Experiments of this lab that an agent has claimed (and maybe submitted): from its claim on, an
        experiment counts toward the lab's limit; before, it is only on offer (or about to be)."""
        with self._lock:
            active = sorted(self._active)
        out = set()
        for exp in active:
            state = self.inbox.read(exp)
            if state is not None and state.claim is not None and not state.claim.withdrawn:
                out.add(exp)
        return out

    def unclaimed(self) -> set[int]:
        with self._lock:
            active = sorted(self._active)
        return set(active) - self.claimed()

    def withdraw_unclaimed(self, reason: str) -> None:
        """The lab's experiment limit is reached by claims: offers nobody claimed are withdrawn (an agent that
        claimed one at the same moment keeps it)."""
        for exp in self.unclaimed():
            self.inbox.withdraw_offer(exp, f"{NOT_TAKEN}: {reason}")

    # -- steps of propose

    def _await_claim(self, offer: Offer) -> Claim:
        exp = offer.experiment
        deadline = offer.offered_at + self.claim_timeout_s if self.claim_timeout_s else None
        while True:
            claim = self._state(exp).claim
            if claim is not None:
                if claim.withdrawn:
                    raise BrainError(claim.withdrawn)
                return claim
            if self._stop.is_set():
                raise BrainError(STOPPED)
            if deadline is not None and time.time() >= deadline:
                assert self.claim_timeout_s is not None
                reason = (f"{NOT_TAKEN}: no agent claimed experiment {exp} within "
                          f"{_duration_text(self.claim_timeout_s)}, so the offer was withdrawn. Point an agent at "
                          "this lab (`labmind agent next` or the `labmind mcp` server), or allow more time "
                          "(`labmind agent start --claim-timeout 1h`)")
                claim = self.inbox.withdraw_offer(exp, reason)
                if claim is None or claim.withdrawn:
                    raise BrainError(reason)
                return claim  # an agent claimed it at the last moment
            self._stop.wait(self.poll_s)

    def _await_submission(self, offer: Offer, claim: Claim) -> Submission:
        exp = offer.experiment
        deadline = claim.submit_by(offer)
        while True:
            submission = self._state(exp).submission
            if submission is not None:
                if submission.withdrawn:
                    raise BrainError(submission.withdrawn)
                return submission
            if self._stop.is_set():
                raise BrainError(STOPPED)
            if deadline is not None and time.time() >= deadline:
                assert self.submit_timeout_s is not None
                reason = (f"agent {claim.agent!r} claimed experiment {exp} but did not submit within "
                          f"{_duration_text(self.submit_timeout_s)}, so the offer was withdrawn and its worktree "
                          "discarded. Submit sooner, or allow more time (`labmind agent start --submit-timeout 2h`)")
                submission = self.inbox.withdraw_claim(exp, reason)
                if submission is None or submission.withdrawn:
                    raise BrainError(reason)
                return submission  # submitted at the last moment
            self._stop.wait(self.poll_s)

    def _state(self, exp: int) -> OfferState:
        state = self.inbox.read(exp)
        if state is None:
            raise BrainError(f"the offer of experiment {exp} disappeared from {self.inbox.folder(exp)} (was it "
                             "deleted?); the lab offers the experiment again when it resumes")
        return state

    @staticmethod
    def _idea(submission: Submission, claim: Claim) -> Idea:
        # `_`-prefixed params are labmind's bookkeeping (reports and exports leave them out); `family` groups
        # ideas in `labmind report`.
        params: dict[str, str] = {"_brain": "agent", "_agent": claim.agent}
        if submission.family.strip():
            params["family"] = submission.family.strip()
        return Idea(title=submission.title, hypothesis=submission.hypothesis, rationale=submission.rationale,
                    expected_effect=submission.expected_effect, params=params)


def is_agent_spec(spec: object) -> bool:
    return isinstance(spec, str) and (spec == "agent" or spec.startswith("agent:"))


def unclaimed_experiments(paths: LabPaths, rows: Any) -> set[int]:
    """For a lab run by the agent brain, read from outside it (`labmind status`, agents): the experiments being
    proposed that no agent has claimed (on offer, or about to be). They do not count toward the limit yet."""
    proposing = {r.id for r in rows if r.kind == ExperimentKind.CANDIDATE and r.status == ExperimentStatus.PROPOSING}
    root = inbox_dir(paths)
    if not proposing or not root.is_dir():
        return proposing
    try:
        taken = {s.offer.experiment for s in Inbox(root).states()
                 if s.claim is not None and not s.claim.withdrawn}
    except (OSError, ValueError, InboxError):
        taken = set()
    return proposing - taken


# ------------------------------------------------------------------------------------------------ spec


def parse_timeout(value: str) -> float | None:
    """Seconds from a duration ("90s", "10m", "2h"), or None for "none"/"off"/"0" (no limit)."""
    if value.strip().lower() in ("none", "off", "0"):
        return None
    try:
        return parse_duration(value.strip())
    except ValueError as exc:
        raise ValueError(f"{exc}, or none for no limit") from exc


def parse_agent_spec(spec: str) -> tuple[float | None, float | None]:
    """(claim timeout, submit timeout) from `agent` or `agent:claim=10m,submit=2h`."""
    options = spec.strip().removeprefix("agent").removeprefix(":")
    claim, submit = DEFAULT_CLAIM_TIMEOUT_S, DEFAULT_SUBMIT_TIMEOUT_S
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in ("claim", "submit"):
            raise ValueError(f"brain spec agent: unknown option {item!r}; the options are claim=DURATION and "
                             "submit=DURATION, e.g. agent:claim=10m,submit=2h")
        try:
            timeout = parse_timeout(value)
        except ValueError as exc:
            raise ValueError(f"brain spec agent: {item!r}: {exc}; e.g. agent:claim=10m,submit=2h") from exc
        if key.strip() == "claim":
            claim = timeout
        else:
            submit = timeout
    return claim, submit


def agent_spec(claim_timeout_s: float | None, submit_timeout_s: float | None) -> str:
    """The spec string for these timeouts (stored with the lab, so `resume` keeps them)."""
    def text(value: float | None) -> str:
        return "none" if value is None else f"{value:g}s"

    return f"agent:claim={text(claim_timeout_s)},submit={text(submit_timeout_s)}"


def make_agent_brain(spec: str, task_dir: Path | None) -> AgentBrain:
    if task_dir is None:
        raise ValueError("the agent brain needs the task directory (its inbox lives in <task>/.labmind/agent)")
    claim, submit = parse_agent_spec(spec)
    return AgentBrain(Inbox(inbox_dir(LabPaths(task_dir.resolve()))), claim_timeout_s=claim,
                      submit_timeout_s=submit)


def _head(ctx: BrainContext) -> str:
    """The commit the experiment's worktree starts from, asked of the repository's records for it."""
    if ctx.worktree is not None and ctx.repo_root is not None:
        return gitops.worktree_git(ctx.repo_root, ctx.worktree, "rev-parse", "HEAD").strip()
    return gitops.git(ctx.task_dir, "rev-parse", "HEAD").strip()  # outside a lab (tests): a plain checkout
