"""The implement loop with a real smoke check: run_check results reach the model, finishing runs the check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labmind.brains.llm.check import CheckResult, SandboxedCheck
from labmind.brains.llm.implement import ImplementLimits, ImplementResult, implement
from labmind.execute.sandbox import Sandbox
from labmind.llm.base import CallContext

from .conftest import EDITABLE, PROTECTED, changed_files, make_check
from .scripted import ScriptedClient, call, reply

SMOKE = "python3 train.py && echo w > ckpt.pt"
BREAK = dict(path="model.py", old="return self.w * self.w", new="return self.w * undefined_name")
FIX = dict(path="model.py", old="return self.w * undefined_name", new="return self.w * self.w * 0.5")


@dataclass
class Counting:
    """The real SandboxedCheck, counting its calls and the timeouts it was given."""

    check: SandboxedCheck
    timeouts: list[float] = field(default_factory=list)

    def __call__(self, command: str, timeout_s: float) -> CheckResult:
        self.timeouts.append(timeout_s)
        return self.check(command, timeout_s)


def run(client: ScriptedClient, worktree: Path, sandbox: Sandbox, **kwargs: object) -> tuple[ImplementResult, Counting]:
    counting = Counting(make_check(sandbox, worktree, protected=PROTECTED))
    options: dict = dict(
        system="SYSTEM", instructions="Halve the loss.", workdir=worktree, editable=EDITABLE, protected=PROTECTED,
        smoke=SMOKE, run_check=counting, limits=ImplementLimits(), context=CallContext(role="implement"),
    )  # fmt: skip
    options.update(kwargs)
    return implement(client, **options), counting


def test_check_output_reaches_the_model(worktree: Path, sandbox: Sandbox) -> None:
    client = ScriptedClient([
        reply(call("edit", **BREAK)),
        reply(call("run_check")),
        reply(call("edit", **FIX), call("run_check")),
        reply(call("finish", summary="Halved the loss.")),
    ])  # fmt: skip
    result, counting = run(client, worktree, sandbox)

    assert client.requests[0].tool_names == [
        "list_files", "read_file", "search", "edit", "write_file", "run_check", "finish",
    ]  # fmt: skip
    failing, passing = client.tool_results()[1], client.tool_results()[3]
    assert not failing.is_error  # bad news from a working tool
    assert failing.content.startswith("exit code 1 after ") and "(FAILED)" in failing.content
    assert "NameError: name 'undefined_name' is not defined" in failing.content
    assert passing.content.startswith("exit code 0 after ") and passing.content.endswith("loss: 0.0608")
    assert result.ok and result.reason == "finished" and result.edited == ["model.py"]
    assert len(counting.timeouts) == 2  # the passing check was current: finishing did not run it again
    assert result.check is not None and result.check.passed
    assert changed_files(worktree) == ["task/model.py"]  # the check's ckpt.pt was cleaned up


def test_finish_runs_the_check_and_refuses_once(worktree: Path, sandbox: Sandbox) -> None:
    client = ScriptedClient([
        reply(call("edit", **BREAK)),
        reply(call("finish", summary="first try")),
        reply(call("finish", summary="the failure is expected")),
    ])  # fmt: skip
    result, counting = run(client, worktree, sandbox)
    refusal = client.tool_results()[1]
    assert refusal.is_error and refusal.content.startswith("Not finished: the smoke check fails on your current files.")
    assert "NameError" in refusal.content and "Finishing again without changing anything accepts" in refusal.content
    assert result.ok and result.reason == "finished" and result.summary == "the failure is expected"
    assert len(counting.timeouts) == 1
    assert result.check is not None and result.check.exit_code == 1


def test_finish_after_a_fix_checks_again(worktree: Path) -> None:
    client = ScriptedClient([
        reply(call("edit", **BREAK)),
        reply(call("finish", summary="first try")),
        reply(call("edit", **FIX)),
        reply(call("finish", summary="fixed")),
    ])  # fmt: skip
    result, counting = run(client, worktree, Sandbox("none"))
    assert result.reason == "finished" and result.summary == "fixed"
    assert len(counting.timeouts) == 2 and result.check is not None and result.check.passed


def test_refused_finishes_do_not_count_as_a_stuck_loop(worktree: Path) -> None:
    worse = dict(path="model.py", old="return self.w * undefined_name", new="return self.w * other_name")
    client = ScriptedClient([
        reply(call("edit", **BREAK)),
        reply(call("finish", summary="done")),
        reply(call("edit", **worse)),
        reply(call("finish", summary="done")),
        reply(call("edit", path="model.py", old="other_name", new="self.w * 0.5")),
        reply(call("finish", summary="done")),
    ])  # fmt: skip
    result, counting = run(client, worktree, Sandbox("none"))
    assert result.reason == "finished" and result.steps == 6 and len(counting.timeouts) == 3
    assert result.check is not None and result.check.passed


def test_text_mode_finish_runs_the_check(worktree: Path) -> None:
    broken = "model.py\n<<<<<<< SEARCH\n        return self.w * self.w\n=======\n        return oops\n>>>>>>> REPLACE\n"
    fixed = "model.py\n<<<<<<< SEARCH\n        return oops\n=======\n        return self.w\n>>>>>>> REPLACE\n"
    client = ScriptedClient([reply(text=broken), reply(text="Done."), reply(text=fixed), reply(text="Done now.")])
    result, counting = run(client, worktree, Sandbox("none"))
    refusal = client.requests[2].messages[-1]
    assert refusal.role == "user" and refusal.content.startswith("Not finished: the smoke check fails")
    assert "NameError: name 'oops' is not defined" in refusal.content
    assert result.ok and result.summary == "Done now." and result.check is not None and result.check.passed
    assert len(counting.timeouts) == 2


def test_no_check_on_finish_when_disabled(worktree: Path) -> None:
    client = ScriptedClient([reply(call("edit", **BREAK)), reply(call("finish", summary="done"))])
    result, counting = run(client, worktree, Sandbox("none"), check_before_finish=False)
    assert result.ok and counting.timeouts == [] and result.check is None


def test_check_timeout_is_bounded_by_the_wall_clock(worktree: Path) -> None:
    client = ScriptedClient([reply(call("run_check")), reply(call("edit", **BREAK))])
    limits = ImplementLimits(wall_s=30.0, check_timeout_s=300.0, max_steps=2)
    result, counting = run(client, worktree, Sandbox("none"), limits=limits)
    assert len(counting.timeouts) == 1 and 25.0 < counting.timeouts[0] <= 30.0
    assert result.reason == "step cap (2)" and result.check is None  # the check saw the files before the edit


def test_no_run_check_tool_without_a_smoke_command(worktree: Path) -> None:
    client = ScriptedClient([reply(call("edit", **BREAK)), reply(call("finish", summary="done"))])
    result, counting = run(client, worktree, Sandbox("none"), smoke=None)
    assert "run_check" not in client.requests[0].tool_names
    assert result.ok and counting.timeouts == []
