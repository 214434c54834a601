"""The agent inbox: work offers the lab publishes and agents claim, as files under `.labmind/agent/offers/`.

One folder per offered experiment, `exp-<id>/`:

    offer.json       the lab's offer: experiment, line, the brief, the offering process, its timeouts
    claim.json       first writer wins: an agent's claim {agent, token, at}, or the lab's withdrawal
    submission.json  first writer wins: the agent's idea or abandonment, or the lab's withdrawal
    closed.json      the lab is done with the offer: {outcome, reason, at}

Why files: agents are other processes (CLI calls, MCP servers), and the store has exactly one writer, the
lab. The inbox lets them talk without a second writer, as `.labmind/inbox/` does for people's reviews.

Every file is complete before it has its name. A new offer's folder is filled under a temporary name and
renamed into place; closed.json is renamed into place. claim.json and submission.json are hard-linked into
place: link(2) fails when the name exists, so of two writers racing for one claim or one submission (two
agents; an agent and the lab withdrawing at its timeout) exactly one wins, and the loser reads the winner.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labmind.paths import LabPaths

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Closed offers kept for `labmind agent results` (newest first); older folders are removed.
KEEP_CLOSED = 200


class InboxError(Exception):
    """An inbox file is unreadable; the message names it and what to do."""


def inbox_dir(paths: LabPaths) -> Path:
    return paths.root / "agent"


@dataclass(frozen=True)
class Offer:
    experiment: int
    line: int
    lab_pid: int  # the lab process that waits for the answer; offers of a dead lab are stale
    offered_at: float
    base_commit: str  # the worktree's commit when offered (what the agent's change is measured against)
    claim_timeout_s: float | None
    submit_timeout_s: float | None
    brief: dict[str, Any]  # BrainContext.to_dict()
    offer_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def worktree(self) -> str:
        return str(self.brief.get("worktree", ""))


@dataclass(frozen=True)
class Claim:
    agent: str  # "" when the lab took the claim slot to withdraw the offer
    token: str
    at: float
    withdrawn: str | None = None  # the lab's reason, when this is a withdrawal

    def submit_by(self, offer: Offer) -> float | None:
        return self.at + offer.submit_timeout_s if offer.submit_timeout_s else None


@dataclass(frozen=True)
class Submission:
    agent: str
    at: float
    title: str = ""
    hypothesis: str = ""
    rationale: str = ""
    expected_effect: str = ""
    family: str = ""
    abandon: str | None = None  # the agent gives the experiment up, for this reason
    withdrawn: str | None = None  # the lab's reason, when the lab took the submission slot


@dataclass(frozen=True)
class Closed:
    outcome: str  # submitted | abandoned | withdrawn
    reason: str
    at: float


@dataclass(frozen=True)
class OfferState:
    offer: Offer
    claim: Claim | None
    submission: Submission | None
    closed: Closed | None

    @property
    def status(self) -> str:
        """open | claimed | submitted | withdrawn | closed."""
        if self.closed is not None:
            return "closed"
        if (self.claim and self.claim.withdrawn) or (self.submission and self.submission.withdrawn):
            return "withdrawn"
        if self.submission is not None:
            return "submitted"
        return "claimed" if self.claim is not None else "open"

    @property
    def withdrawn_reason(self) -> str | None:
        for item in (self.submission, self.claim):
            if item is not None and item.withdrawn:
                return item.withdrawn
        if self.closed is not None and self.closed.outcome == "withdrawn":
            return self.closed.reason
        return None


# ------------------------------------------------------------------------------------------- file helpers


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InboxError(f"{path} is not valid JSON ({exc}); delete its folder {path.parent} and the lab "
                         "offers the experiment again when it resumes") from exc
    if not isinstance(data, dict):
        raise InboxError(f"{path} holds no JSON object; delete its folder {path.parent}")
    return data


def _temp(folder: Path, data: dict[str, Any]) -> Path:
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return tmp


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    os.replace(_temp(path.parent, data), path)


def _write_exclusive(path: Path, data: dict[str, Any]) -> bool:
    """Give `path` this content unless it exists; True when this call created it. Raises FileNotFoundError
    when the folder is gone (the offer was discarded)."""
    tmp = _temp(path.parent, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _known(cls: type[DataclassInstance], data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


# ------------------------------------------------------------------------------------------------ inbox


class Inbox:
    """The offers folder of one lab. Safe to use from many threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.offers = root / "offers"

    def folder(self, experiment: int) -> Path:
        return self.offers / f"exp-{experiment}"

    # -- the lab's side

    def publish(self, offer: Offer) -> None:
        """Make `offer` visible to agents, replacing any earlier offer of the same experiment (a resumed lab
        offers its unfinished experiments again; claims on the old offer lapse with it)."""
        self.offers.mkdir(parents=True, exist_ok=True)
        staging = self.offers / f".new-{uuid.uuid4().hex}"
        staging.mkdir()
        _write_atomic(staging / "offer.json", asdict(offer))
        target = self.folder(offer.experiment)
        if target.exists():
            self._discard(target)
        os.rename(staging, target)

    def withdraw_offer(self, experiment: int, reason: str) -> Claim | None:
        """Take the claim slot so no agent can claim the offer. Returns the claim that stands: the lab's
        withdrawal, or an agent's claim that came first; None when the offer is gone."""
        withdrawal = Claim(agent="", token="", at=time.time(), withdrawn=reason)
        try:
            if _write_exclusive(self.folder(experiment) / "claim.json", asdict(withdrawal)):
                return withdrawal
        except FileNotFoundError:
            return None
        state = self.read(experiment)
        return state.claim if state else None

    def withdraw_claim(self, experiment: int, reason: str) -> Submission | None:
        """Take the submission slot so the claimer can no longer submit. Returns the submission that stands:
        the lab's withdrawal, or the agent's submission that came first; None when the offer is gone."""
        withdrawal = Submission(agent="", at=time.time(), withdrawn=reason)
        try:
            if _write_exclusive(self.folder(experiment) / "submission.json", asdict(withdrawal)):
                return withdrawal
        except FileNotFoundError:
            return None
        state = self.read(experiment)
        return state.submission if state else None

    def close(self, experiment: int, outcome: str, reason: str) -> None:
        folder = self.folder(experiment)
        if folder.is_dir():
            _write_atomic(folder / "closed.json", asdict(Closed(outcome=outcome, reason=reason, at=time.time())))

    def sweep(self, live_pid: int, keep_closed: int = KEEP_CLOSED) -> int:
        """Close offers left open by a lab process that is gone, and remove the oldest closed folders.
        Returns how many stale offers were closed."""
        stale = 0
        closed: list[tuple[float, int]] = []
        for state in self.states():
            if state.closed is None and state.offer.lab_pid != live_pid:
                self.close(state.offer.experiment, "withdrawn",
                           f"the lab process that offered it (pid {state.offer.lab_pid}) ended before it was done")
                stale += 1
            elif state.closed is not None:
                closed.append((state.closed.at, state.offer.experiment))
        for _, experiment in sorted(closed, reverse=True)[keep_closed:]:
            self._discard(self.folder(experiment))
        return stale

    # -- the agents' side

    def claim(self, experiment: int, agent: str) -> Claim | None:
        """Claim an open offer for `agent`; None when someone (an agent, or the lab withdrawing) was first."""
        claim = Claim(agent=agent, token=secrets.token_hex(8), at=time.time())
        try:
            return claim if _write_exclusive(self.folder(experiment) / "claim.json", asdict(claim)) else None
        except FileNotFoundError:
            return None

    def claim_next(self, agent: str, *, line: int | None = None, lab_pid: int | None = None) -> OfferState | None:
        """Claim the oldest open offer (on `line`, from the lab process `lab_pid`, when given)."""
        for experiment in self._ids():
            folder = self.folder(experiment)
            # Agents poll this while they wait: a file's presence rules an offer out without parsing anything.
            if (folder / "claim.json").exists() or (folder / "closed.json").exists():
                continue
            state = self.read(experiment)
            if state is None or state.status != "open":
                continue
            offer = state.offer
            if line is not None and offer.line != line:
                continue
            if lab_pid is not None and offer.lab_pid != lab_pid:
                continue
            claim = self.claim(offer.experiment, agent)
            if claim is None:
                continue
            # Read it again: the claim landed in whatever folder had the name at that moment.
            claimed = self.read(offer.experiment)
            if claimed is not None and claimed.claim is not None and claimed.claim.token == claim.token:
                return claimed
        return None

    def submit(self, experiment: int, submission: Submission) -> Submission | None:
        """Hand in the answer. Returns the submission that stands: this one, or whatever was there first
        (an earlier submission, or the lab's withdrawal); None when the offer is gone."""
        try:
            if _write_exclusive(self.folder(experiment) / "submission.json", asdict(submission)):
                return submission
        except FileNotFoundError:
            return None
        state = self.read(experiment)
        return state.submission if state else None

    # -- reading

    def read(self, experiment: int) -> OfferState | None:
        folder = self.folder(experiment)
        offer = _read(folder / "offer.json")
        if offer is None:
            return None
        claim, submission, closed = (_read(folder / name) for name in ("claim.json", "submission.json",
                                                                        "closed.json"))
        return OfferState(
            offer=Offer(**_known(Offer, offer)),
            claim=Claim(**_known(Claim, claim)) if claim else None,
            submission=Submission(**_known(Submission, submission)) if submission else None,
            closed=Closed(**_known(Closed, closed)) if closed else None,
        )

    def states(self) -> list[OfferState]:
        """Every offer in the folder, oldest experiment first."""
        return [state for i in self._ids() if (state := self.read(i)) is not None]

    def _ids(self) -> list[int]:
        if not self.offers.is_dir():
            return []
        return sorted(int(p.name.removeprefix("exp-")) for p in self.offers.glob("exp-*")
                      if p.name.removeprefix("exp-").isdigit())

    def _discard(self, folder: Path) -> None:
        # Renamed away first, so agents never see a half-deleted offer under its real name.
        doomed = self.offers / f".old-{uuid.uuid4().hex}"
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)
