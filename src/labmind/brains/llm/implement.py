"""The implement step of the llm brain: a bounded agent loop that turns one idea into edits in a worktree.

`implement()` talks to the model through `LLMClient.complete` only. Each model turn either calls tools
(list_files, read_file, search, edit, write_file, run_check, finish: see tools.py) or, for models without
tool calling, answers in text with SEARCH/REPLACE blocks (see edits.py), which are applied with the same
scope rules. Every refusal goes back to the model as a tool error or a user message; nothing the model
sends raises.

The system prompt is prompts/implement.md, rendered by `system_prompt()` (or by the caller with
`templates.render("implement", ...)`) with these variables:

    task_name  the task's name                  command    the run command of an experiment
    metric     the metric's name                goal       "minimize" or "maximize"
    editable   task-relative globs the model may edit
    protected  task-relative globs it must never change
    smoke      the smoke command when run_check is offered (smoke set and a run_check given), else None
    finish_check  whether finishing runs the smoke check first (implement's check_before_finish)
    files      [{"path", "text"}]: editable files shown inline, for models that cannot call read_file

How the loop ends (`ImplementResult.reason`):

- "finished": the model called finish, or (the text rule, for models without tools) answered without
  tool calls or blocks after editing. When a smoke check exists and `check_before_finish` is set, finishing
  first runs the check on the current files; if it fails the model sees the output and goes on. Finishing
  again without changing anything accepts the files as they are (the model may judge the failure unrelated).
- "no edit": the model tried to stop with nothing changed, was nudged once, and again changed nothing (or
  finished after undoing its own edits).
- "step cap (N)", "token cap", "wall-clock cap": a limit was reached before the next model turn. The wall
  clock cannot interrupt a model call in flight, and a run_check never runs past what is left of it.
- "stopped early: the same failing <tool> call was made N times": the model is stuck in a loop.
- "llm error: ...": the client raised LLMError (LLMBudgetExceeded included).

`ok` is True when files changed and the loop ended by finishing or at a cap (a capped model's edits are
usually a complete change it had not yet declared done). It is False when nothing changed, after an LLM
error or when the model got stuck: those edits may be half-made. `edited` always lists what changed, so the
caller decides whether to keep a partial change. `check` is the last smoke check when it ran on the final
files, else None.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labmind.brains.command import expand_globs
from labmind.brains.llm import render
from labmind.brains.llm.check import CheckResult
from labmind.brains.llm.edits import Block, Editor, EditRefused, Scope, parse_blocks
from labmind.brains.llm.tools import BadArguments, FileTools, ToolResult, check_arguments, tool_specs
from labmind.llm.base import CallContext, Completion, LLMClient, LLMError, Message, ToolCall
from labmind.task.model import Task

__all__ = ["CheckResult", "ImplementLimits", "ImplementResult", "RunCheck", "implement", "system_prompt"]

#: Runs the smoke command with a timeout in seconds (SandboxedCheck in check.py is the lab's one).
RunCheck = Callable[[str, float], CheckResult]

#: How much of a tool result or argument the transcript keeps (the model itself sees tools.py's caps).
_TRANSCRIPT_CHARS = 4_000
_CAPS = ("step cap", "token cap", "wall-clock cap")

NUDGE = (
    "You have not changed any file yet, so there is nothing to finish. Make the change now: edit files with "
    "the edit or write_file tool (or, if you cannot call tools, answer with SEARCH/REPLACE blocks), then finish."
)
REPEATED = " (You made this exact call before and it failed the same way: do something different.)"


@dataclass(frozen=True)
class ImplementLimits:
    max_steps: int = 30  # model turns
    max_tokens: int = 300_000  # input+output tokens over the loop (Completion.usage.total)
    wall_s: float = 900.0
    check_timeout_s: float = 300.0
    max_output_tokens: int = 8_192  # per model turn
    max_repeats: int = 3  # identical failing calls before the loop stops


@dataclass
class ImplementResult:
    ok: bool  # files changed and the model finished (or a cap was hit with edits in place)
    summary: str  # the model's own summary (for the record only; labmind computes the diff from git)
    reason: str  # why it stopped: see the module docstring
    steps: int
    edited: list[str]  # task-relative paths whose content changed
    tokens: int
    transcript: list[dict[str, Any]]  # every turn, JSON-serialisable, for saving beside the experiment
    check: CheckResult | None = None  # the last smoke check when it ran on the final files


def system_prompt(
    task: Task, workdir: Path, *, check: bool, check_before_finish: bool = True, inline_chars: int = 0
) -> str:
    """prompts/implement.md for a task. `check`: whether run_check will be offered (pass the same
    check_before_finish as to implement). `inline_chars`: show editable files inline up to this many
    characters in all (for models without tool calling)."""
    return render(
        "implement",
        task_name=task.name,
        metric=task.metric.name,
        goal=task.metric.goal,
        command=task.run.command,
        editable=list(task.task.editable),
        protected=list(task.task.protected),
        smoke=task.run.smoke if check else None,
        finish_check=check and check_before_finish,
        files=inline_files(workdir, task.task.editable, inline_chars),
    )


def inline_files(workdir: Path, editable: Sequence[str], budget: int) -> list[dict[str, str]]:
    """Editable text files, in path order, while their total size stays within budget characters."""
    out: list[dict[str, str]] = []
    for path in expand_globs(workdir, editable):
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "\0" in text or len(text) > budget:
            continue
        budget -= len(text)
        out.append({"path": path.relative_to(workdir).as_posix(), "text": text.rstrip("\n")})
    return out


def implement(
    client: LLMClient,
    *,
    system: str,
    instructions: str,
    workdir: Path,
    editable: list[str],
    protected: list[str],
    smoke: str | None,
    run_check: RunCheck | None,
    limits: ImplementLimits,
    context: CallContext,
    hidden: Sequence[str] = (),
    check_before_finish: bool = True,
    refuse_shadowing: bool = True,
) -> ImplementResult:
    """Run the loop in `workdir` (the task directory inside the experiment's worktree).

    `hidden`: task-relative globs the model may not read (e.g. `[run] hide`). `refuse_shadowing`: refuse new
    files that shadow a module (pass False when the task's [guard] allows shadow_module)."""
    scope = Scope(workdir, tuple(editable), tuple(protected), tuple(hidden), refuse_shadowing)
    loop = _Loop(client, system, Editor(scope), smoke, run_check, limits, context, check_before_finish)
    return loop.run(instructions)


def _clip(value: Any, limit: int = _TRANSCRIPT_CHARS) -> Any:
    """Long strings (also inside argument dicts) cut for the transcript."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"…[{len(value) - limit} more characters]"
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in value.items()}
    return value


def _call_key(call: ToolCall) -> str:
    args = json.dumps(call.arguments, sort_keys=True) if call.arguments is not None else call.raw_arguments
    return f"{call.name}\0{args}"


@dataclass
class _Loop:
    client: LLMClient
    system: str
    editor: Editor
    smoke: str | None
    run_check: RunCheck | None
    limits: ImplementLimits
    context: CallContext
    check_before_finish: bool
    messages: list[Message] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    nudged: bool = False
    summary: str = ""
    last_text: str = ""
    failures: Counter[str] = field(default_factory=Counter)
    last_check: tuple[int, CheckResult] | None = None  # (editor version it saw, result)
    refused_at: int | None = None  # editor version at which finish was refused for a failing check
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.files = FileTools(self.editor)
        self.specs = tool_specs(check=self.can_check)
        self.by_name = {spec.name: spec for spec in self.specs}

    @property
    def can_check(self) -> bool:
        return self.smoke is not None and self.run_check is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ---- the loop

    def run(self, instructions: str) -> ImplementResult:
        self.transcript.append({"role": "system", "text": self.system})
        self.say(instructions)
        while True:
            reason = self.cap_reached()
            if reason:
                return self.end(reason)
            try:
                completion = self.client.complete(
                    self.messages, system=self.system, tools=self.specs, max_tokens=self.limits.max_output_tokens,
                    context=self.context,
                )  # fmt: skip
            except LLMError as exc:
                return self.end(f"llm error: {exc}")
            self.steps += 1
            self.tokens += completion.usage.total
            self.record(completion)
            stop = self.tool_turn(completion.tool_calls) if completion.tool_calls else self.text_turn(completion)
            if stop:
                return self.end(stop)

    def cap_reached(self) -> str | None:
        if self.steps >= self.limits.max_steps:
            return f"step cap ({self.limits.max_steps})"
        if self.tokens >= self.limits.max_tokens:
            return "token cap"
        if self.elapsed() >= self.limits.wall_s:
            return "wall-clock cap"
        return None

    def end(self, reason: str) -> ImplementResult:
        edited = self.editor.changed()
        if reason == "finished" and not edited:
            reason = "no edit"  # it undid its own changes
        ok = bool(edited) and (reason == "finished" or reason.startswith(_CAPS))
        last = self.last_check
        check = last[1] if last is not None and last[0] == self.editor.version else None
        self.transcript.append(
            {"role": "end", "reason": reason, "ok": ok, "steps": self.steps, "tokens": self.tokens, "edited": edited}
        )
        return ImplementResult(
            ok=ok, summary=self.summary or self.last_text, reason=reason, steps=self.steps, edited=edited,
            tokens=self.tokens, transcript=self.transcript, check=check,
        )  # fmt: skip

    # ---- conversation and transcript

    def say(self, text: str) -> None:
        self.messages.append(Message(role="user", content=text))
        self.transcript.append({"role": "user", "step": self.steps, "text": text})

    def record(self, completion: Completion) -> None:
        if completion.text.strip():
            self.last_text = completion.text.strip()
        # Some APIs reject an empty assistant turn; the transcript keeps what the model really sent.
        content = completion.text if completion.text or completion.tool_calls else "(empty answer)"
        self.messages.append(Message(role="assistant", content=content, tool_calls=completion.tool_calls))
        entry: dict[str, Any] = {
            "role": "assistant", "step": self.steps, "text": completion.text, "tokens": completion.usage.total,
            "stop_reason": completion.stop_reason,
        }  # fmt: skip
        if completion.thinking:
            entry["thinking"] = _clip(completion.thinking)
        if completion.tool_calls:
            entry["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": _clip(c.arguments)}
                | ({} if c.arguments is not None else {"raw_arguments": _clip(c.raw_arguments)})
                for c in completion.tool_calls
            ]
        self.transcript.append(entry)

    def answer(self, call: ToolCall, result: ToolResult) -> None:
        self.messages.append(Message(role="tool", content=result.text, tool_call_id=call.id, is_error=result.is_error))
        self.transcript.append(
            {"role": "tool", "step": self.steps, "id": call.id, "name": call.name, "is_error": result.is_error,
             "result": _clip(result.text)}
        )  # fmt: skip

    def failed(self, key: str) -> int:
        self.failures[key] += 1
        return self.failures[key]

    def stuck(self, name: str, count: int) -> str | None:
        if count >= self.limits.max_repeats:
            return f"stopped early: the same failing {name} call was made {count} times"
        return None

    # ---- tool calling

    def tool_turn(self, calls: tuple[ToolCall, ...]) -> str | None:
        for call in calls:
            result, finished = self.call(call)
            # A refused finish is not a stuck loop: the model may finish with the same words after each fix.
            count = self.failed(_call_key(call)) if result.is_error and call.name != "finish" else 0
            if count > 1:
                result = ToolResult(result.text + REPEATED, is_error=True)
            self.answer(call, result)
            if finished:
                return finished
            stop = self.stuck(call.name, count)
            if stop:
                return stop
        return None

    def call(self, call: ToolCall) -> tuple[ToolResult, str | None]:
        """The tool's result, and a stop reason when the call ends the loop."""
        spec = self.by_name.get(call.name)
        if spec is None:
            names = ", ".join(self.by_name)
            return ToolResult(f"unknown tool {call.name!r}; the tools are: {names}", is_error=True), None
        try:
            args = check_arguments(spec, call.arguments, call.raw_arguments)
        except BadArguments as exc:
            return ToolResult(str(exc), is_error=True), None
        if call.name == "finish":
            stop, message = self.try_finish(args["summary"])
            return ToolResult(message or "finished", is_error=stop is None), stop
        if call.name == "run_check":
            checked = self.check()
            if isinstance(checked, str):
                return ToolResult(checked, is_error=True), None
            # A failing check is a working tool with bad news, not a tool error (nor a "repeated failure").
            return ToolResult(checked.describe()), None
        return self.files.call(call.name, args), None

    # ---- text answers (models without tool calling)

    def text_turn(self, completion: Completion) -> str | None:
        items = parse_blocks(completion.text)
        if not items and completion.stop_reason == "max_tokens":
            # Cut off before any block was complete: not a final answer, whatever it says so far.
            self.say("Your answer was cut off at the output limit before any complete block: send fewer or "
                     "smaller blocks.")  # fmt: skip
            return None
        if not items:
            stop, message = self.try_finish(completion.text.strip())
            if stop is None:
                self.say(message)
            return stop
        report: list[str] = []
        stop = None
        for number, item in enumerate(items, 1):
            if isinstance(item, str):
                report.append(item)
                continue
            line, count = self.apply(number, item)
            report.append(line)
            stop = stop or self.stuck("edit block", count)
        if completion.stop_reason == "max_tokens":
            report.append("Your answer was cut off at the output limit: send fewer or smaller blocks.")
        report.append("Send more blocks if needed; when the change is complete, answer with a short summary and no "
                      "blocks.")  # fmt: skip
        self.say("\n".join(report))
        return stop

    def apply(self, number: int, block: Block) -> tuple[str, int]:
        """A line reporting one block, and how often this exact block has failed (0 when it applied)."""
        try:
            message = self.editor.apply_block(block)
        except (EditRefused, OSError, ValueError) as exc:
            count = self.failed(f"block\0{block.path}\0{block.search}\0{block.replace}")
            note = REPEATED if count > 1 else ""
            return f"block {number} ({block.path}): NOT applied: {exc}{note}", count
        return f"block {number} ({block.path}): applied; {message}", 0

    # ---- finishing and checking

    def try_finish(self, summary: str) -> tuple[str | None, str]:
        """(stop reason, "") when the loop ends here, else (None, why finishing was refused)."""
        if not self.editor.changed():
            if self.nudged:
                return "no edit", ""
            self.nudged = True
            return None, NUDGE
        refusal = self.finish_check()
        if refusal:
            return None, refusal
        self.summary = summary
        return "finished", ""

    def finish_check(self) -> str | None:
        """Why finishing is refused (the smoke check fails on the current files), or None."""
        version = self.editor.version
        if not (self.check_before_finish and self.can_check) or self.refused_at == version:
            return None  # no check, or refused once already for these very files: the model insists
        if self.last_check is not None and self.last_check[0] == version:
            result: CheckResult | str = self.last_check[1]
        else:
            result = self.check()
        if isinstance(result, str) or result.passed:
            return None  # no time left for a check is no reason to throw the work away
        self.refused_at = version
        return (
            f"Not finished: the smoke check fails on your current files.\n{result.describe()}\n"
            "Fix the problem and finish again. Finishing again without changing anything accepts the files "
            "as they are."
        )

    def check(self) -> CheckResult | str:
        """Run the smoke check on the current files; a str says why it could not run."""
        if self.run_check is None or self.smoke is None:
            return "this task has no smoke check"
        remaining = self.limits.wall_s - self.elapsed()
        if remaining <= 0:
            return "no wall-clock time is left to run the check"
        try:
            result = self.run_check(self.smoke, min(self.limits.check_timeout_s, remaining))
        except OSError as exc:
            return f"the check could not run: {exc}"
        self.last_check = (self.editor.version, result)
        return result
