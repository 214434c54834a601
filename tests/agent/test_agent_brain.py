"""The agent brain: offers, waits and gives up cleanly (claim and submit timeouts, abandonment, close)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from labmind.brains.agent import STOPPED, AgentBrain, agent_spec, parse_agent_spec
from labmind.brains.agent_inbox import Inbox
from labmind.brains.base import BrainError
from labmind.brains.registry import make_brain
from labmind.execute.sandbox import resolve_sandbox

from .kit import context, git_task, idea, in_thread, offer, open_state, wait_for


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return git_task(tmp_path / "repo")


def brain(tmp_path: Path, **timeouts: float | None) -> AgentBrain:
    return AgentBrain(Inbox(tmp_path / "inbox"), poll_s=0.02, **timeouts)  # type: ignore[arg-type]


def test_propose_returns_the_submitted_idea_with_the_agent_recorded(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path)
    thread, out = in_thread(lambda: b.propose(context(task_dir, experiment_id=4, line_id=2)))
    state = open_state(b.inbox, 4)
    assert state.offer.line == 2 and state.offer.lab_pid == os.getpid()
    assert state.offer.worktree == str(task_dir)
    assert state.offer.brief["experiment_id"] == 4 and state.offer.brief["task"]["editable"] == ["train.py"]
    assert b.inbox.claim(4, "alice") is not None
    b.inbox.submit(4, idea("alice", "raise LR", rationale="loss falls faster early", expected_effect="loss -0.1",
                           family="lr"))
    thread.join(5)
    result = out["result"]
    assert result.title == "raise LR" and result.hypothesis == "a higher LR converges faster"
    assert result.rationale == "loss falls faster early" and result.expected_effect == "loss -0.1"
    assert result.params == {"_brain": "agent", "_agent": "alice", "family": "lr"}
    closed = b.inbox.read(4).closed  # type: ignore[union-attr]
    assert closed is not None and closed.outcome == "submitted"


def test_the_offer_records_the_worktree_commit(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path, claim_timeout_s=0.2)
    head = os.popen(f"git -C {task_dir} rev-parse HEAD").read().strip()
    with pytest.raises(BrainError):
        b.propose(context(task_dir))
    assert b.inbox.read(2).offer.base_commit == head  # type: ignore[union-attr]


def test_an_unclaimed_offer_is_withdrawn_at_the_claim_timeout(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path, claim_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(BrainError, match=r"no agent claimed experiment 2 within 0.3 s.*--claim-timeout"):
        b.propose(context(task_dir))
    assert 0.3 <= time.monotonic() - started < 3
    state = b.inbox.read(2)
    assert state is not None and state.status == "closed" and state.closed.outcome == "withdrawn"
    assert b.inbox.claim(2, "alice") is None  # an agent arriving late finds it gone


def test_a_claim_without_submission_is_withdrawn_at_the_submit_timeout(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path, submit_timeout_s=0.4)
    thread, out = in_thread(lambda: b.propose(context(task_dir)))
    open_state(b.inbox, 2)
    claim = b.inbox.claim(2, "alice")
    assert claim is not None and claim.submit_by(b.inbox.read(2).offer) == pytest.approx(claim.at + 0.4)  # type: ignore[union-attr]
    thread.join(5)
    error = out["error"]
    assert isinstance(error, BrainError)
    assert "agent 'alice' claimed experiment 2 but did not submit within 0.4 s" in str(error)
    assert "--submit-timeout" in str(error)
    late = b.inbox.submit(2, idea("alice"))
    assert late is not None and late.withdrawn and "did not submit" in late.withdrawn


def test_an_abandoned_experiment_is_a_brain_failure_with_the_agents_reason(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path)
    thread, out = in_thread(lambda: b.propose(context(task_dir)))
    open_state(b.inbox, 2)
    b.inbox.claim(2, "bob")
    b.inbox.submit(2, idea("bob", title="", abandon="this line needs a data change I may not make"))
    thread.join(5)
    assert isinstance(out["error"], BrainError)
    assert str(out["error"]) == "agent 'bob' abandoned experiment 2: this line needs a data change I may not make"
    closed = b.inbox.read(2).closed  # type: ignore[union-attr]
    assert closed is not None and closed.outcome == "abandoned"


def test_close_withdraws_every_offer_at_once_and_ends_the_waits(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path)  # no claim timeout: without close() these would wait for ever
    waiting = [in_thread(lambda i=i: b.propose(context(task_dir, experiment_id=i, line_id=i % 2 + 1)))
               for i in (2, 3, 4)]
    for i in (2, 3, 4):
        open_state(b.inbox, i)
    b.inbox.claim(3, "alice")  # one is claimed, its agent still editing
    started = time.monotonic()
    b.close()
    # Withdrawn synchronously: agents see it even if the lab process exits right after close().
    assert all(b.inbox.read(i).status == "closed" for i in (2, 3, 4))  # type: ignore[union-attr]
    for thread, out in waiting:
        thread.join(5)
        assert isinstance(out["error"], BrainError) and str(out["error"]) == STOPPED
    assert time.monotonic() - started < 2
    assert b.inbox.claim(2, "bob") is None
    late = b.inbox.submit(3, idea("alice"))
    assert late is not None and late.withdrawn == STOPPED
    with pytest.raises(BrainError, match="lab stopped"):
        b.propose(context(task_dir, experiment_id=5))  # nothing new is offered after close()
    assert b.inbox.read(5) is None
    b.close()  # a second close is harmless


def test_the_first_proposal_closes_offers_a_killed_lab_left_behind(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path, claim_timeout_s=0.1)
    b.inbox.publish(offer(1, pid=os.getpid() + 100000))
    with pytest.raises(BrainError):
        b.propose(context(task_dir))
    stale = b.inbox.read(1)
    assert stale is not None and stale.status == "closed" and "pid" in stale.closed.reason  # type: ignore[union-attr]


def test_a_late_agent_wins_when_it_claims_just_before_the_withdrawal(tmp_path: Path, task_dir: Path) -> None:
    b = brain(tmp_path, claim_timeout_s=0.5)
    thread, out = in_thread(lambda: b.propose(context(task_dir)))
    open_state(b.inbox, 2)
    wait_for(lambda: time.time() >= b.inbox.read(2).offer.offered_at + 0.45, timeout=5)  # type: ignore[union-attr]
    assert b.inbox.claim(2, "alice") is not None
    time.sleep(0.2)  # past the claim timeout: the claim stands, the brain waits for the submission
    assert thread.is_alive()
    b.inbox.submit(2, idea("alice"))
    thread.join(5)
    assert out["result"].title == "raise LR"


def test_spec_options_and_the_registry(tmp_path: Path, task_dir: Path) -> None:
    assert parse_agent_spec("agent") == (None, 3600.0)
    assert parse_agent_spec("agent:claim=10m,submit=none") == (600.0, None)
    assert parse_agent_spec("agent:submit=1h30m") == (None, 5400.0)
    assert parse_agent_spec(agent_spec(90.0, None)) == (90.0, None)
    with pytest.raises(ValueError, match=r"unknown option 'wait=1'.*claim=DURATION"):
        parse_agent_spec("agent:wait=1")
    with pytest.raises(ValueError, match=r"'claim=soon'.*e.g. agent:claim=10m"):
        parse_agent_spec("agent:claim=soon")
    sandbox, _ = resolve_sandbox("none")
    made = make_brain("agent:claim=5m", context(task_dir).task, seed=0, network=False, sandbox=sandbox,
                      task_dir=task_dir)
    assert isinstance(made, AgentBrain) and made.name == "agent"
    assert made.claim_timeout_s == 300.0 and made.submit_timeout_s == 3600.0
    assert made.inbox.root == task_dir.resolve() / ".labmind" / "agent"
