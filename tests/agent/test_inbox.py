"""The inbox's file protocol: publishing, claiming (races included), submitting, withdrawing, sweeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from labmind.brains.agent_inbox import Inbox, InboxError

from .kit import idea, offer, wait_for


def test_an_offer_goes_from_open_to_claimed_to_submitted_to_closed(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "agent")
    inbox.publish(offer(4, line=2, worktree="/wt/exp-4"))
    state = inbox.read(4)
    assert state is not None and state.status == "open"
    assert state.offer.line == 2 and state.offer.worktree == "/wt/exp-4"

    claim = inbox.claim(4, "alice")
    assert claim is not None and claim.agent == "alice" and len(claim.token) == 16
    assert inbox.read(4).status == "claimed"  # type: ignore[union-attr]

    sub = idea("alice")
    assert inbox.submit(4, sub) is sub
    state = inbox.read(4)
    assert state.status == "submitted" and state.submission == sub  # type: ignore[union-attr]

    inbox.close(4, "submitted", "raise LR")
    state = inbox.read(4)
    assert state.status == "closed" and state.closed.outcome == "submitted"  # type: ignore[union-attr]
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in inbox.folder(4).iterdir()) == [
        "claim.json", "closed.json", "offer.json", "submission.json"]


def test_a_second_claim_and_a_second_submission_lose_to_the_first(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.publish(offer(2))
    first = inbox.claim(2, "alice")
    assert first is not None
    assert inbox.claim(2, "bob") is None
    assert inbox.read(2).claim == first  # type: ignore[union-attr]
    winner = idea("alice", "first")
    assert inbox.submit(2, winner) is winner
    standing = inbox.submit(2, idea("alice", "second"))
    assert standing == winner  # the second submission reads the first back, and nothing changed
    assert inbox.read(2).submission.title == "first"  # type: ignore[union-attr]


def test_threads_racing_for_one_offer_produce_exactly_one_winner(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    for exp in range(1, 21):
        inbox.publish(offer(exp))
        barrier = threading.Barrier(6)
        wins: list[str] = []

        def race(name: str, exp: int = exp, barrier: threading.Barrier = barrier, wins: list[str] = wins) -> None:
            barrier.wait()
            if inbox.claim(exp, name) is not None:
                wins.append(name)

        threads = [threading.Thread(target=race, args=(f"agent-{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert inbox.read(exp).claim.agent == wins[0]  # type: ignore[union-attr]


# Each process signals that it is ready, waits for the go file, then claims until nothing is left.
CLAIMER = """
import json, os, sys, time
from pathlib import Path
from labmind.brains.agent_inbox import Inbox
inbox, name, got = Inbox(Path(sys.argv[1])), sys.argv[2], []
Path(sys.argv[1], "ready-" + name).touch()
while not Path(sys.argv[1], "go").exists():
    time.sleep(0.001)
while (state := inbox.claim_next(name)) is not None:
    got.append(state.offer.experiment)
print(json.dumps(got))
"""


def test_processes_claiming_concurrently_never_get_the_same_offer(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    for exp in range(1, 81):
        inbox.publish(offer(exp, line=exp % 2 + 1))
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path), f"agent-{i}"], stdout=subprocess.PIPE,
                              text=True) for i in range(4)]
    wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 4, timeout=120)
    (tmp_path / "go").touch()
    claimed = {f"agent-{i}": json.loads(p.communicate(timeout=120)[0]) for i, p in enumerate(procs)}
    everything = [exp for got in claimed.values() for exp in got]
    assert sorted(everything) == list(range(1, 81))  # each offer exactly once
    assert sum(1 for got in claimed.values() if got) >= 2  # they really did claim side by side
    for name, got in claimed.items():
        assert all(inbox.read(exp).claim.agent == name for exp in got)  # type: ignore[union-attr]


def test_claim_next_takes_the_oldest_open_offer_of_the_line_and_of_the_live_lab(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.publish(offer(3, line=1))
    inbox.publish(offer(5, line=2, pid=os.getpid() + 100000))  # made by a lab process that is not the live one
    inbox.publish(offer(6, line=2))
    inbox.publish(offer(7, line=2))
    assert inbox.claim(6, "carol") is not None
    got = inbox.claim_next("bob", line=2, lab_pid=os.getpid())
    assert got is not None and got.offer.experiment == 7 and got.claim.agent == "bob"  # type: ignore[union-attr]
    assert inbox.claim_next("bob", line=2, lab_pid=os.getpid()) is None
    got = inbox.claim_next("alice")
    assert got is not None and got.offer.experiment == 3


def test_withdrawal_and_a_late_claim_or_submission_settle_on_whoever_was_first(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.publish(offer(2))
    withdrawal = inbox.withdraw_offer(2, "no agent came")
    assert withdrawal is not None and withdrawal.withdrawn == "no agent came"
    assert inbox.claim(2, "alice") is None  # too late
    assert inbox.read(2).status == "withdrawn"  # type: ignore[union-attr]
    assert inbox.read(2).withdrawn_reason == "no agent came"  # type: ignore[union-attr]

    inbox.publish(offer(3))
    claim = inbox.claim(3, "alice")
    assert inbox.withdraw_offer(3, "too late") == claim  # the agent was first: its claim stands
    sub = inbox.withdraw_claim(3, "no submission in time")
    assert sub is not None and sub.withdrawn == "no submission in time"
    standing = inbox.submit(3, idea("alice"))
    assert standing is not None and standing.withdrawn == "no submission in time"

    inbox.publish(offer(4))
    inbox.claim(4, "bob")
    mine = idea("bob")
    inbox.submit(4, mine)
    assert inbox.withdraw_claim(4, "too late") == mine  # submitted first: the lab takes it


def test_republishing_an_experiment_replaces_the_old_offer_and_its_claim(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.publish(offer(9, worktree="/old"))
    old = inbox.claim(9, "alice")
    inbox.publish(offer(9, worktree="/new"))  # a resumed lab offers its unfinished experiment again
    state = inbox.read(9)
    assert state is not None and state.status == "open" and state.offer.worktree == "/new"
    new = inbox.claim(9, "bob")
    assert new is not None and old is not None and new.token != old.token
    assert not any(p.name.startswith((".old-", ".new-")) for p in inbox.offers.iterdir())


def test_sweep_closes_offers_of_dead_labs_and_prunes_old_closed_ones(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.publish(offer(1, pid=os.getpid() + 100000))
    inbox.publish(offer(2))
    for exp in (3, 4, 5):
        inbox.publish(offer(exp))
        inbox.close(exp, "submitted", "done")
    assert inbox.sweep(os.getpid(), keep_closed=2) == 1
    state = inbox.read(1)
    assert state is not None and state.status == "closed" and "ended before it was done" in state.closed.reason
    assert inbox.read(2).status == "open"  # type: ignore[union-attr]
    # Of the offers that were closed already (3, 4, 5) the two newest stay; the one just closed stays too, so an
    # agent can still read why.
    assert [s.offer.experiment for s in inbox.states()] == [1, 2, 4, 5]


def test_a_corrupt_file_is_an_error_that_says_what_to_delete(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.publish(offer(2))
    (inbox.folder(2) / "claim.json").write_text("{not json")
    with pytest.raises(InboxError, match=r"claim.json is not valid JSON .* delete its folder"):
        inbox.read(2)


def test_a_gone_offer_cannot_be_claimed_submitted_or_withdrawn(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    assert inbox.read(8) is None and inbox.states() == []
    inbox.offers.mkdir(parents=True)
    assert inbox.claim(8, "alice") is None
    assert inbox.submit(8, idea("alice")) is None
    assert inbox.withdraw_offer(8, "x") is None and inbox.withdraw_claim(8, "x") is None
