"""The operations agents call, shared by `labmind agent ...` and the `labmind mcp` server.

Everything here reads the store read-only and talks to the running lab only through the inbox, so the lab
stays the one writer of its store. Every failure is a ToolsError whose message ends with what to do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labmind.agent_tools.brief import catch_up_command, is_stale
from labmind.agent_tools.records import agent_of, experiment_record, past_with_ci
from labmind.brains.agent import is_agent_spec, unclaimed_experiments
from labmind.brains.agent_inbox import Claim, Inbox, InboxError, OfferState, Submission, inbox_dir
from labmind.brains.command import expand_globs
from labmind.guard import Proposed, check_proposal
from labmind.lab.status import lab_status
from labmind.lab.views import brain_context
from labmind.model import ExperimentKind, ExperimentStatus, experiments_made, not_taken
from labmind.paths import LabPaths
from labmind.store import ExperimentRow, Store, StoreError
from labmind.store.lock import holder_pid
from labmind.store.records import experiment_json
from labmind.task import Task
from labmind.verdicts import Verdict
from labmind.workspace import git as gitops
from labmind.workspace.scope import to_task_relative

DEFAULT_AGENT = "agent"
POLL_S = 0.25
#: Parts of a brief that change while an offer waits; refreshed from the store when it is claimed.
_LIVE_KEYS = ("min_effect", "parent", "incumbent", "best", "baseline", "history", "near_misses", "recent_failures")


class ToolsError(Exception):
    """An agent's request cannot be served; the message ends with what to do."""


def default_agent() -> str:
    """The agent's name: $LABMIND_AGENT, else "agent". Give each agent its own name when several share a lab."""
    return os.environ.get("LABMIND_AGENT", "").strip() or DEFAULT_AGENT


is_agent_brain = is_agent_spec


class AgentTools:
    """One lab, as agents use it: the operations behind `labmind agent …` and the MCP tools."""

    def __init__(self, task_dir: Path, *, poll_s: float = POLL_S) -> None:
        self.paths = LabPaths(task_dir.resolve())
        self.inbox = Inbox(inbox_dir(self.paths))
        self.poll_s = poll_s

    @property
    def task_dir(self) -> Path:
        return self.paths.task_dir

    def lab_pid(self) -> int | None:
        return holder_pid(self.paths.lock)

    @contextmanager
    def store(self) -> Iterator[Store]:
        if not self.paths.db.exists():
            raise ToolsError(f"no lab in {self.task_dir}. Start one with `labmind agent start {self.task_dir}`.")
        try:
            store = Store.open(self.paths.db, readonly=True)
        except StoreError as exc:
            raise ToolsError(str(exc)) from exc
        try:
            if store.lab() is None:
                raise ToolsError(f"the lab in {self.task_dir} is still being set up; ask again in a few seconds.")
            yield store
        finally:
            store.close()

    # ------------------------------------------------------------------------------------------ next

    def next_experiment(self, agent: str, *, line: int | None = None, wait_s: float = 0.0) -> dict[str, Any]:
        """Claim one open offer (the oldest, on `line` if given) and return its brief; wait up to `wait_s`."""
        deadline = time.monotonic() + max(0.0, wait_s)
        pid: int | None = None
        while True:
            if pid is None or self.lab_pid() != pid:  # checked again only when the lab (re)starts
                pid = self._agent_lab(line)
            state = (self.inbox.claim_next(agent, line=line, lab_pid=pid)
                     if pid is not None and not self._limit_reached() else None)
            if state is not None:
                return self._brief(state)
            if time.monotonic() >= deadline:
                raise ToolsError(self._no_offer(line, wait_s))
            time.sleep(self.poll_s)

    def made(self, store: Store) -> int:
        """Experiments that count toward the lab's limit: claimed ones, not those merely on offer."""
        rows = store.experiments()
        return experiments_made(rows, unclaimed_experiments(self.paths, rows))

    def _limit_reached(self) -> bool:
        """Claims have used up --max-experiments: the offers left are about to be withdrawn, not claimed."""
        try:
            with self.store() as store:
                lab = store.lab()
                limit = lab.settings.get("max_experiments") if lab is not None else None
                return limit is not None and self.made(store) >= limit
        except ToolsError:
            return False

    def _agent_lab(self, line: int | None) -> int | None:
        """The pid of the running agent-driven lab (None while it is still setting up); errors otherwise."""
        pid = self.lab_pid()
        if pid is None:
            raise ToolsError(f"no lab is running in {self.task_dir}. Start one with "
                             f"`labmind agent start {self.task_dir}`, then ask again.")
        if not self.paths.db.exists():
            return None
        try:
            with self.store() as store:
                brain = store.lab().settings.get("brain", "knobs")  # type: ignore[union-attr]
                line_ids = [ln.id for ln in store.lines()]
        except ToolsError:
            return None  # being set up
        if not is_agent_brain(brain):
            raise ToolsError(f"the lab running in {self.task_dir} (pid {pid}) uses the {brain} brain, so it offers "
                             f"no work to agents. Stop it with `labmind stop {self.task_dir}`, then start it with "
                             f"`labmind agent start {self.task_dir}`.")
        if line is not None and line_ids and line not in line_ids:
            raise ToolsError(f"line {line} does not exist in this lab (lines: {', '.join(map(str, line_ids))}); "
                             "pick one of those, or leave the line out.")
        return pid

    def _brief(self, state: OfferState) -> dict[str, Any]:
        offer, claim = state.offer, state.claim
        assert claim is not None
        with self.store() as store:
            rows = store.experiments()
            brief = self._live_brief(store, rows, state)
            lab = store.lab()
        by_id = {r.id: r for r in rows}
        min_effect = _min_effect(lab.task_json) if lab is not None else None
        worktree = Path(offer.worktree)
        editable = [str(p.relative_to(worktree)) for p in expand_globs(worktree, brief["task"]["editable"])]
        holding = [s.offer.experiment for s in self.inbox.states()
                   if s.status == "claimed" and s.claim is not None and s.claim.agent == claim.agent
                   and s.offer.experiment != offer.experiment and s.offer.lab_pid == offer.lab_pid]
        data = {
            "experiment": offer.experiment,
            "line": offer.line,
            "agent": claim.agent,
            "token": claim.token,
            "claimed_at": claim.at,
            "submit_by": claim.submit_by(offer),
            "worktree": offer.worktree,
            "base_commit": offer.base_commit,
            "editable_files": editable,
            "task": brief["task"],
            "metric": brief["metric"],
            "min_effect": brief["min_effect"],
            # `[noise] min_effect` as written ("auto", "1%", "0.02"), for people and agents: the number above is
            # its value in the metric's units at the baseline (0 for "auto").
            "min_effect_text": min_effect.text() if min_effect else None,
            "min_effect_kind": min_effect.kind if min_effect else None,
            **{key: past_with_ci(brief[key], by_id) for key in ("parent", "incumbent", "best", "baseline")},
            **{key: [past_with_ci(p, by_id) for p in brief[key]]
               for key in ("history", "near_misses", "recent_failures")},
            "insights": brief.get("insights") or [],  # from the user's insight library (other labs)
            # What the lab's search asks of this experiment, when it asks something (a line's direction, a
            # repair or combination request): passed through as the lab wrote it.
            "direction": brief.get("direction") or None,
            "directive": brief.get("directive") or None,
            "also_holding": holding,
            "task_dir": str(self.task_dir),
            # The line's incumbent when the offer was made: when it has moved since, the brief says so first.
            "offered_incumbent": (offer.brief.get("incumbent") or {}).get("id"),
        }
        data["stale_parent"] = ({"incumbent": data["incumbent"]["id"], "command": catch_up_command(data)}
                                if is_stale(data) else None)
        return data

    @staticmethod
    def _live_brief(store: Store, rows: list[ExperimentRow], state: OfferState) -> dict[str, Any]:
        """The offer's brief with the lab's state as of now: an offer made while the baseline was still being
        measured, or before other lines' verdicts came in, would otherwise show stale numbers."""
        offer = state.offer
        lab = store.lab()
        assert lab is not None
        try:
            fresh = brain_context(
                store, rows, Task.model_validate_json(lab.task_json), experiment_id=offer.experiment,
                line_id=offer.line, parent_id=int(offer.brief["parent"]["id"]), min_effect=lab.min_effect or 0.0,
                task_dir_in_worktree=Path(offer.worktree), brief_text=offer.brief["task"].get("brief", ""),
            ).to_dict()
        except (KeyError, StopIteration, StoreError, ValueError):
            return offer.brief  # the store lacks what the context needs: show the brief as offered
        live = {**offer.brief, **{key: fresh[key] for key in _LIVE_KEYS if key in fresh}}
        live["min_effect"] = lab.min_effect  # None until the baseline's noise is measured
        return live

    def _no_offer(self, line: int | None, wait_s: float) -> str:
        where = f" on line {line}" if line is not None else ""
        parts = [f"no open experiment{where}" + (f" after waiting {wait_s:g} s." if wait_s > 0 else " right now.")]
        pid = self.lab_pid()
        live = [s for s in self.inbox.states() if s.offer.lab_pid == pid and s.status in ("open", "claimed")]
        other = [s for s in live if s.status == "open"]
        if other:
            parts.append("Open on other lines: " + ", ".join(f"exp {s.offer.experiment} (line {s.offer.line})"
                                                              for s in other) + ".")
        claimed = [s for s in live if s.status == "claimed" and s.claim is not None]
        if claimed:
            parts.append("Claimed: " + ", ".join(f"exp {s.offer.experiment} (line {s.offer.line}) by "
                                                  f"{s.claim.agent}" for s in claimed if s.claim) + ".")
        try:
            with self.store() as store:
                lab = store.lab()
                assert lab is not None
                limit = lab.settings.get("max_experiments")
                made = self.made(store)
                measuring = lab.min_effect is None
        except ToolsError:
            limit, made, measuring = None, 0, True
        if measuring:
            parts.append("The lab is still measuring the baseline's noise; offers follow.")
        if limit is not None and made >= limit:
            parts.append(f"The lab has made all {limit} experiments it was asked for (--max-experiments) and stops "
                         f"after their verdicts; then `labmind agent start {self.task_dir} --max-experiments "
                         f"{limit + 4}` continues it.")
        else:
            parts.append("The lab offers an experiment when a slot is about to free up: wait longer "
                         "(`labmind agent next --wait 300`), or see `labmind agent status`.")
        return " ".join(parts)

    # ---------------------------------------------------------------------------------------- submit

    def submit(self, experiment: int, agent: str, *, title: str = "", hypothesis: str = "", rationale: str = "",
               expected_effect: str = "", family: str = "", abandon: str | None = None, token: str | None = None,
               force: bool = False) -> dict[str, Any]:
        """Hand in the claimed experiment's idea (its code is what the worktree holds), or abandon it."""
        if abandon is not None and not abandon.strip():
            raise ToolsError("--abandon needs a reason, e.g. --abandon 'the idea needs a data change'.")
        if abandon is None and not title.strip():
            raise ToolsError("submit needs a title, a short name for the idea (--title 'cosine LR schedule'); or "
                             "give the experiment up with --abandon REASON.")
        state = self._read(experiment)
        if state is None:
            raise ToolsError(self._not_offered(experiment))
        claim = self._check_claimer(state, agent, token)
        changed: list[str] = []
        if abandon is None:
            changed, problem = self.preflight(state)
            if problem and not force:
                raise ToolsError(problem)
        submission = Submission(agent=claim.agent, at=time.time(), title=title.strip(), hypothesis=hypothesis.strip(),
                                rationale=rationale.strip(), expected_effect=expected_effect.strip(),
                                family=family.strip(), abandon=abandon.strip() if abandon is not None else None)
        standing = self.inbox.submit(experiment, submission)
        if standing is not submission:
            reason = standing.withdrawn if standing is not None and standing.withdrawn else "it was already submitted"
            raise ToolsError(f"experiment {experiment} takes no submission: {reason}. See "
                             f"`labmind agent results {experiment}`, or claim another with `labmind agent next`.")
        return {"experiment": experiment, "line": state.offer.line, "agent": claim.agent,
                "status": "abandoned" if abandon is not None else "submitted", "title": submission.title,
                "abandon": submission.abandon, "changed_files": changed, "task_dir": str(self.task_dir)}

    def _read(self, experiment: int) -> OfferState | None:
        try:
            return self.inbox.read(experiment)
        except InboxError as exc:
            raise ToolsError(str(exc)) from exc

    def _check_claimer(self, state: OfferState, agent: str, token: str | None) -> Claim:
        exp = state.offer.experiment
        withdrawn = state.withdrawn_reason
        if withdrawn:
            raise ToolsError(f"experiment {exp} was withdrawn: {withdrawn}")
        if state.closed is not None or state.submission is not None:
            raise ToolsError(f"experiment {exp} was already submitted; see `labmind agent results {exp}`, or claim "
                             "another with `labmind agent next`.")
        if self.lab_pid() != state.offer.lab_pid:
            raise ToolsError(f"the lab process that offered experiment {exp} (pid {state.offer.lab_pid}) is no "
                             "longer running, so nobody would take the submission. Start the lab again with "
                             f"`labmind agent start {self.task_dir}`; it offers the experiment again for "
                             "`labmind agent next`.")
        claim = state.claim
        if claim is None:
            raise ToolsError(f"experiment {exp} is open but not claimed; claim it first with `labmind agent next "
                             f"--line {state.offer.line}`, edit its worktree, then submit.")
        if token:
            if token != claim.token:
                raise ToolsError(f"that token does not match the claim on experiment {exp} (claimed by agent "
                                 f"{claim.agent!r}); pass the token `labmind agent next` printed when you claimed it.")
        elif claim.agent != agent:
            raise ToolsError(f"experiment {exp} is claimed by agent {claim.agent!r}, not {agent!r}; submit as that "
                             f"agent (--agent {claim.agent}) or with its claim token (--token).")
        return claim

    def _not_offered(self, experiment: int) -> str:
        with self.store() as store:
            try:
                row = store.experiment(experiment)
            except StoreError:
                return (f"there is no experiment {experiment} in this lab; claim one with `labmind agent next` "
                        "(`labmind agent history` lists what exists).")
        if row.status == ExperimentStatus.PROPOSING:
            return (f"experiment {experiment} is not on offer right now: the lab that made it stopped before it was "
                    f"submitted. Start the lab with `labmind agent start {self.task_dir}`; it offers the "
                    "experiment again for `labmind agent next`.")
        return (f"experiment {experiment} is already {row.verdict or row.status} and takes no submission; see "
                f"`labmind agent results {experiment}`, or claim a new one with `labmind agent next`.")

    def preflight(self, state: OfferState) -> tuple[list[str], str | None]:
        """The worktree's changed files (task-relative) and, when labmind would not run the change as it is,
        why and how to fix it: the guard's own check of a proposal (`guard.check_proposal`, scope and static
        rules), the one the lab runs on the snapshot it takes of the worktree after the submission."""
        exp, offer = state.offer.experiment, state.offer
        worktree = Path(offer.worktree)
        if not worktree.is_dir():
            raise ToolsError(f"experiment {exp}'s worktree {worktree} is gone, so there is nothing to submit; "
                             f"give it up with --abandon REASON and claim another with `labmind agent next`.")
        try:
            with self.store() as store:
                lab = store.lab()
            assert lab is not None
            repo = Path(lab.repo_root)
            # The worktree's top directory is the one the repository records for it (never its `.git`).
            root = next((p for p in (worktree.resolve(), *worktree.resolve().parents)
                         if _is_worktree_of(repo, p)), None)
            if root is None:
                raise gitops.GitError(f"{worktree} is not inside a worktree of {repo}")
            tracked = gitops.worktree_git(repo, root, "diff", "--name-only", "-z", "--no-renames", "--no-ext-diff",
                                          offer.base_commit)
            untracked = gitops.worktree_git(repo, root, "ls-files", "--others", "--exclude-standard", "-z")
        except gitops.GitError as exc:
            raise ToolsError(f"cannot read experiment {exp}'s worktree with git ({exc}); check {worktree} with "
                             "`git status`, then submit again.") from exc
        subdir = worktree.resolve().relative_to(root).as_posix()
        subdir = "" if subdir == "." else subdir
        repo_paths = sorted({p for p in (tracked + "\0" + untracked).split("\0") if p})
        changed = [to_task_relative(p, subdir) or p for p in repo_paths]
        task = Task.model_validate_json(lab.task_json)

        def old_source(rel: str) -> str | None:
            return gitops.file_at(repo, offer.base_commit, f"{subdir}/{rel}" if subdir else rel)

        # No digest of the protected files here: the lab's snapshot first drops ignored files (caches a trial run
        # left), which a digest of this worktree would count; a changed protected file is in the diff anyway.
        proposed = Proposed(worktree.resolve(), subdir, repo_paths, old_source, gitops.nested_repositories(root))
        check = check_proposal(task, proposed)
        if check.verdict == Verdict.NO_CHANGE:
            return changed, (f"experiment {exp}'s worktree has no change against its parent, so it would end as "
                             f"no_change. Edit {', '.join(task.task.editable)} in {worktree} first, or give it up "
                             "with --abandon REASON.")
        if check.verdict == Verdict.REJECTED:
            return changed, (f"{check.reason}, so labmind would reject experiment {exp}. Undo that in {worktree} "
                             f"(restore a file with `git -C {root} checkout {offer.base_commit[:12]} -- PATH`, "
                             "delete a new file), then submit again; --force submits it as it is.")
        return changed, None

    # --------------------------------------------------------------------------------------- results

    def results(self, agent: str, experiment: int | None = None, *, wait_s: float = 0.0, limit: int = 10
                ) -> dict[str, Any]:
        """The given experiment (waiting up to `wait_s` for its verdict), or this agent's latest ones."""
        if experiment is not None:
            deadline = time.monotonic() + max(0.0, wait_s)
            while True:
                record = self.record(experiment)
                if record["final"] or time.monotonic() >= deadline:
                    return {"agent": agent, "experiments": [record], "task_dir": str(self.task_dir)}
                time.sleep(max(self.poll_s, 1.0))
        with self.store() as store:
            rows = store.experiments()
        by_id = {r.id: r for r in rows}
        offers = {s.offer.experiment: s for s in self.inbox.states()}
        mine = {r.id for r in rows if agent_of(r) == agent}
        mine |= {i for i, s in offers.items() if s.claim is not None and s.claim.agent == agent}
        records = [experiment_record(by_id[i], by_id, offers.get(i)) for i in sorted(mine, reverse=True)[:limit]
                   if i in by_id]
        return {"agent": agent, "experiments": records, "task_dir": str(self.task_dir)}

    def record(self, experiment: int) -> dict[str, Any]:
        with self.store() as store:
            try:
                row = store.experiment(experiment)
            except StoreError:
                raise ToolsError(f"there is no experiment {experiment} in this lab; `labmind agent history` lists "
                                 "what exists.") from None
            by_id: dict[int, ExperimentRow] = {row.id: row}
            if row.parent_id is not None:
                by_id[row.parent_id] = store.experiment(row.parent_id)
        return experiment_record(row, by_id, self._read(experiment))

    # --------------------------------------------------------------------------------------- history

    def history(self, line: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """What was tried on each line (or one) and what happened, oldest first."""
        with self.store() as store:
            lab = store.lab()
            assert lab is not None
            lines, rows = store.lines(), store.experiments()
        if line is not None and line not in {ln.id for ln in lines}:
            raise ToolsError(f"line {line} does not exist in this lab (lines: "
                             f"{', '.join(str(ln.id) for ln in lines) or 'none yet'}); pick one, or leave it out.")
        by_id = {r.id: r for r in rows}
        offers = {s.offer.experiment: s for s in self.inbox.states()}
        baseline = by_id.get(lab.baseline_id) if lab.baseline_id is not None else None
        out = []
        for ln in lines:
            if line is not None and ln.id != line:
                continue
            records = [experiment_record(r, by_id, offers.get(r.id)) for r in rows
                       if r.line_id == ln.id and r.kind == ExperimentKind.CANDIDATE and not not_taken(r)]
            incumbent = by_id.get(ln.incumbent_id) if ln.incumbent_id is not None else None
            out.append({"id": ln.id, "name": ln.name, "status": ln.status,
                        "incumbent": _summary(incumbent), "experiments": records[-limit:] if limit else records})
        return {"metric": _metric(lab.task_json), "min_effect": lab.min_effect,
                "min_effect_text": _min_effect(lab.task_json).text(), "baseline": _summary(baseline),
                "lines": out, "task_dir": str(self.task_dir)}

    # ---------------------------------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """`labmind status` plus the lab's brain, its experiment limit and the offers agents can see."""
        with self.store() as store:
            data = lab_status(store, self.paths)
            settings = store.lab().settings  # type: ignore[union-attr]
        pid = data.get("pid")
        offers = []
        # Once claims have used up the limit, offers still open are about to be withdrawn: nobody can claim them.
        spent = self._limit_reached()
        for s in self.inbox.states():
            if pid is None or s.offer.lab_pid != pid or s.status in ("closed", "withdrawn"):
                continue
            if spent and s.status == "open":
                continue
            claim = s.claim if s.claim is not None and not s.claim.withdrawn else None
            offers.append({"experiment": s.offer.experiment, "line": s.offer.line, "status": s.status,
                           "agent": claim.agent if claim else None, "offered_at": s.offer.offered_at,
                           "claimed_at": claim.at if claim else None,
                           "submit_by": claim.submit_by(s.offer) if claim else None})
        data.update(brain=settings.get("brain"), max_experiments=settings.get("max_experiments"), offers=offers)
        return data


def _summary(row: ExperimentRow | None) -> dict[str, Any] | None:
    """A line's incumbent or the baseline: the figure of its record, and its idea's title."""
    if row is None:
        return None
    record = experiment_json(row)
    return {**{k: record[k] for k in ("id", "metric", "sd", "ci", "n_runs")}, "idea": row.idea.title}


def _min_effect(task_json: str) -> Any:
    """The task's `[noise] min_effect` (a `labmind.scale.MinEffect`)."""
    return Task.model_validate_json(task_json).noise.parsed_min_effect()


def _metric(task_json: str) -> dict[str, str]:
    task = Task.model_validate_json(task_json)
    return {"name": task.metric.name, "goal": task.metric.goal}


def _is_worktree_of(repo: Path, path: Path) -> bool:
    try:
        gitops.worktree_git_dir(repo, path)
    except gitops.GitError:
        return False
    return True
