"""How the implement loop stops: caps on steps, tokens and wall clock, and errors from the client."""

from __future__ import annotations

from pathlib import Path

from labmind.brains.llm.implement import ImplementLimits, ImplementResult, implement
from labmind.llm.base import CallContext, LLMBudgetExceeded, LLMError

from .conftest import EDITABLE, PROTECTED
from .scripted import ScriptedClient, call, reply


def run(client: ScriptedClient, worktree: Path, limits: ImplementLimits) -> ImplementResult:
    return implement(
        client, system="SYSTEM", instructions="Tune the learning rate.", workdir=worktree, editable=EDITABLE,
        protected=PROTECTED, smoke=None, run_check=None, limits=limits, context=CallContext(role="implement"),
    )  # fmt: skip


def reading(n: int, tokens: int = 100) -> list:
    return [reply(call("read_file", path="train.py"), tokens=tokens) for _ in range(n)]


EDIT = reply(call("edit", path="train.py", old="LR = 0.1", new="LR = 0.2"))


def test_step_cap_keeps_edits_in_place(worktree: Path) -> None:
    client = ScriptedClient([EDIT, *reading(10)])
    result = run(client, worktree, ImplementLimits(max_steps=3))
    assert result.reason == "step cap (3)" and result.steps == 3 and len(client.requests) == 3
    assert result.ok and result.edited == ["train.py"]
    assert result.transcript[-1]["reason"] == "step cap (3)"


def test_step_cap_without_edits_is_not_ok(worktree: Path) -> None:
    result = run(ScriptedClient(reading(5)), worktree, ImplementLimits(max_steps=2))
    assert result.reason == "step cap (2)" and not result.ok and result.edited == []


def test_token_cap(worktree: Path) -> None:
    client = ScriptedClient(reading(10, tokens=600))
    result = run(client, worktree, ImplementLimits(max_tokens=1_000))
    assert result.reason == "token cap" and result.tokens == 1_200 and result.steps == 2 and not result.ok


def test_wall_clock_cap(worktree: Path) -> None:
    client = ScriptedClient([EDIT, *reading(10)], delay_s=0.25)
    result = run(client, worktree, ImplementLimits(wall_s=0.6))
    assert result.reason == "wall-clock cap" and result.steps == 3 and result.ok


def test_llm_errors_stop_the_loop_and_keep_the_edit_listed(worktree: Path) -> None:
    client = ScriptedClient([EDIT, LLMBudgetExceeded("lab budget of $5.00 reached")])
    result = run(client, worktree, ImplementLimits())
    assert result.reason == "llm error: lab budget of $5.00 reached"
    assert not result.ok and result.edited == ["train.py"] and result.steps == 1
    assert "LR = 0.2" in (worktree / "train.py").read_text()


def test_llm_error_on_first_call(worktree: Path) -> None:
    result = run(ScriptedClient([LLMError("connection refused after 3 retries")]), worktree, ImplementLimits())
    assert result.reason == "llm error: connection refused after 3 retries"
    assert not result.ok and result.steps == 0 and result.tokens == 0
    assert [e["role"] for e in result.transcript] == ["system", "user", "end"]


def test_output_limit_is_passed_to_every_call(worktree: Path) -> None:
    client = ScriptedClient([EDIT, reply(call("finish", summary="ok"))])
    result = run(client, worktree, ImplementLimits(max_output_tokens=1234))
    assert result.ok and [r.max_tokens for r in client.requests] == [1234, 1234]
