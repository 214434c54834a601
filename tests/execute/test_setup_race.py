"""A sandbox whose setup loses a race with the host (a socket it masks removed meanwhile) is built again, so
the run is not recorded as crashed for something it never did."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from labmind.execute.base import Slot
from labmind.execute.prepared import SETUP_ATTEMPTS, PreparedRunner
from labmind.execute.sandbox import Sandbox

from .conftest import Tree

RACE = "echo \"bwrap: Can't mkdir parents for /var/tmp/x/host.sock: Read-only file system\" >&2; exit 1"


@dataclass(frozen=True)
class Flaky(Sandbox):
    """Loses the setup race `losses` times (printing bubblewrap's message), then runs the command as is."""

    losses: int = 1
    calls: list[int] = field(default_factory=list)

    def wrap(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append(1)
        return ["bash", "-c", RACE] if len(self.calls) <= self.losses else list(argv)


def test_a_lost_setup_race_is_retried_and_leaves_no_trace_in_the_log(tree: Tree) -> None:
    sandbox = Flaky("none", losses=1)
    out = asyncio.run(PreparedRunner([Slot(0)], sandbox).run(tree.spec("echo score: 3"), Slot(0)))
    assert out.status == "ok" and out.metric == 3.0 and len(sandbox.calls) == 2
    assert "bwrap:" not in tree.log.read_text()


def test_a_sandbox_that_keeps_failing_is_a_crash_after_a_few_attempts(tree: Tree) -> None:
    sandbox = Flaky("none", losses=99)
    out = asyncio.run(PreparedRunner([Slot(0)], sandbox).run(tree.spec("echo score: 3"), Slot(0)))
    assert out.status == "crashed" and len(sandbox.calls) == SETUP_ATTEMPTS
    assert "Can't mkdir parents" in tree.log.read_text()


def test_a_command_that_fails_is_not_retried(tree: Tree) -> None:
    sandbox = Flaky("none", losses=0)
    spec = tree.spec("echo \"bwrap: Can't mkdir parents for /x: Read-only file system\"; echo more; exit 1")
    out = asyncio.run(PreparedRunner([Slot(0)], sandbox).run(spec, Slot(0)))
    assert out.status == "crashed" and len(sandbox.calls) == 1  # two lines: the command itself ran
