"""The lab's side of executor faults, with the real local executor behind a wrapper that loses slots or is
unavailable for a while: a lost run is re-queued exactly once, a second loss is a crash, and a pause waits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labmind.execute.base import RunOutcome, RunRequest, Slot, SlotLost
from labmind.lab import LabError
from labmind.lab.open import open_lab
from labmind.observe.live import PlainReporter

from .toy import make_toy


class _Quiet(PlainReporter):
    def event(self, kind: str, message: str) -> None:
        return None


class Flaky:
    """The local executor, except that the runs named in `lose` lose their slot, and `unavailable()` says
    no for its first `paused_checks` calls."""

    def __init__(self, inner, lose: set[int], paused_checks: int = 0) -> None:
        self.inner, self.lose, self.paused_checks = inner, lose, paused_checks

    def __getattr__(self, name):  # slots, sandbox_name, limits_mechanism, adopt, kill_leftovers, close
        return getattr(self.inner, name)

    async def run(self, request: RunRequest, slot: Slot) -> RunOutcome:
        if request.run_id in self.lose:
            raise SlotLost("its test worker was lost")
        return await self.inner.run(request, slot)

    def unavailable(self) -> str | None:
        if self.paused_checks > 0:
            self.paused_checks -= 1
            return "the test cluster has no worker"
        return None


def _lab(tmp_path: Path, lose: set[int], paused_checks: int = 0):
    task = make_toy(tmp_path / "task")
    opened = open_lab(task, flags={}, given={"max_experiments": 0, "sandbox": "none"}, reporter=_Quiet(),
                      gpus=None, slots=1)
    opened.lab.executor = Flaky(opened.lab.executor, lose, paused_checks)
    return opened


def test_a_lost_run_is_requeued_once_with_its_seed(tmp_path: Path) -> None:
    opened = _lab(tmp_path, lose={1})
    try:
        asyncio.run(opened.lab.run())
        runs = {r.id: r for r in opened.store.runs()}
        assert runs[1].status == "interrupted" and any(f.rule == "slot_lost" for f in runs[1].flags)
        again = [r for r in runs.values() if r.requeued_from == 1]
        assert len(again) == 1 and again[0].status == "done" and again[0].outcome == "ok"
        assert again[0].seed == runs[1].seed and again[0].purpose == "baseline"
        assert sum(1 for r in runs.values() if r.status == "done") == 3
    finally:
        opened.close()


def test_a_requeued_run_that_is_lost_again_is_a_crash(tmp_path: Path) -> None:
    # Run 4 is the re-queue of run 1 (runs 2 and 3 are the baseline's others); a crashed baseline stops the lab.
    opened = _lab(tmp_path, lose={1, 4})
    try:
        with pytest.raises(LabError, match="baseline itself failed"):
            asyncio.run(opened.lab.run())
        runs = {r.id: r for r in opened.store.runs()}
        assert runs[4].requeued_from == 1
        assert runs[4].status == "done" and runs[4].outcome == "crashed"
        assert "lost" in (runs[4].log_tail or "")
        assert not [r for r in runs.values() if r.requeued_from == 4], "never re-queued twice"
    finally:
        opened.close()


def test_the_lab_pauses_while_the_executor_cannot_run_and_goes_on_after(tmp_path: Path) -> None:
    opened = _lab(tmp_path, lose=set(), paused_checks=3)
    try:
        asyncio.run(opened.lab.run())
        kinds = [e.kind for e in opened.store.events(limit=1000)]
        assert kinds.count("paused") == 1 and kinds.count("resumed") == 1
        paused = next(e for e in opened.store.events(limit=1000) if e.kind == "paused")
        assert "the test cluster has no worker" in paused.message
        assert sum(1 for r in opened.store.runs() if r.status == "done" and r.outcome == "ok") == 3
    finally:
        opened.close()
