"""The `command` brain: an external program (a script, or a coding agent like `claude -p`) edits the worktree.

How a command is run, once per proposal:

- cwd = ctx.task_dir (the task directory inside the experiment's worktree), its own process group, killed
  as a group at the timeout;
- inside the lab's sandbox: writable are only the worktree root and a scratch directory holding the brief,
  the prompt and the idea file; protected files are read-only; `hidden` paths (e.g. the lab's store) masked;
- environment: `LABMIND_BRIEF` (the JSON brief, `BrainContext.to_dict()`), `LABMIND_PROMPT` (the same as
  plain text for coding agents), `LABMIND_IDEA` (where the program MAY write its idea), `LABMIND_TASK`,
  `LABMIND_METRIC`, `LABMIND_GOAL`, `LABMIND_EXPERIMENT`, `LABMIND_LINE`, `LABMIND_WORKTREE` (= task dir),
  `LABMIND_SCRATCH` (the scratch directory).

Network and secrets, the trade-off: with network=False the program gets no network and a scrubbed
environment (PATH, HOME, locale, terminal only: no API keys, tokens or cloud credentials). A hosted coding
agent cannot work like that, so with network=True the user's whole environment passes through, keys
included, and the sandbox shares the network: the program (and any code it decides to run) can then use
those keys and reach the internet. It still cannot write outside the worktree and scratch directory when
the sandbox is bwrap (plus `extra_writable`: the presets add the agent's own state directory such as
~/.claude, which it needs to run). The agent presets (claude-code, codex, aider) always run with network=True.

The idea: `$LABMIND_IDEA` as JSON {"title", "hypothesis", "rationale", "expected_effect"} or plain text (first
line = title, the rest = hypothesis). Without it, the title is the first non-empty line of stdout (or of
Claude Code's JSON `result`), else "command edit". A nonzero exit or a timeout raises BrainError with the
tail of the output. The transcript (stdout then stderr) is saved as `<transcript_dir>/exp-<id>.log`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from labmind.brains.base import BrainContext, BrainError
from labmind.execute.programs import kill_group, scrubbed_env
from labmind.execute.sandbox import Sandbox
from labmind.figures import metric_text, spread_of
from labmind.library.record import insight_lines, parse_applies
from labmind.model import Idea, PastExperiment
from labmind.task.model import Task
from labmind.task.text import bar_sentence
from labmind.workspace.scope import hide_targets

DEFAULT_TIMEOUT_S = 30 * 60.0
_TITLE_MAX = 120
_TAIL_CHARS = 4000
#: Placeholder in preset templates, replaced by the shell-quoted editable files of the worktree.
EDITABLE_PLACEHOLDER = "{editable}"


# ------------------------------------------------------------------------------------------ helpers


def hidden_files(task_dir: Path, hide: Sequence[str]) -> list[Path]:
    """The task's `[run] hide` files and directories in this checkout: what runs cannot see, brains cannot
    either (a brain could otherwise copy evaluation data into its idea or its change)."""
    return hide_targets(task_dir, list(hide))


def expand_globs(task_dir: Path, patterns: Sequence[str]) -> list[Path]:
    """Existing files matching globs relative to task_dir, sorted, without duplicates."""
    found: set[Path] = set()
    for pattern in patterns:
        found.update(p for p in task_dir.glob(pattern) if p.is_file())
    return sorted(found)


def past_metric(p: PastExperiment) -> str:
    """A past experiment's metric as `figures.metric_text` writes it, the baseline's with its sd."""
    return metric_text(p.to_dict(), spread_of(p.kind))


def _line(p: PastExperiment) -> str:
    return f"- #{p.id} {p.idea.title!r}: {p.verdict}, {past_metric(p)}. {p.reason}".rstrip()


def render_prompt(ctx: BrainContext, idea_path: Path) -> str:
    """The plain-text task for a coding agent: goal, state of the lab, history, and the rules."""
    task = ctx.task
    protected = ", ".join(task.task.protected) or "none"
    parts = [
        f"You are improving the research task '{task.name}' as one experiment (#{ctx.experiment_id}, "
        f"line {ctx.line_id}) of an automated research lab.",
        f"Goal: {task.metric.goal} the metric '{task.metric.name}', printed by `{task.run.command}`. "
        f"{bar_sentence(ctx.task, 'the line')}.",
        "",
        f"Baseline: {past_metric(ctx.baseline)}",
        f"Parent (the code in this directory): #{ctx.parent.id} {ctx.parent.idea.title!r}, "
        f"{past_metric(ctx.parent)}",
        f"Line incumbent: #{ctx.incumbent.id}, {past_metric(ctx.incumbent)}",
        f"Best in the lab: #{ctx.best.id} {ctx.best.idea.title!r}, {past_metric(ctx.best)}",
    ]
    if ctx.brief_text.strip():
        parts += ["", "Research brief:", ctx.brief_text.strip()]
    for heading, items in (
        ("This line's experiments so far (oldest first):", ctx.history[-20:]),
        ("Near misses worth revisiting:", ctx.near_misses),
        ("Recent failures (avoid repeating them):", ctx.recent_failures),
    ):
        if items:
            parts += ["", heading, *(_line(p) for p in items)]
    if ctx.insights:
        parts += ["", "From your other labs (insight library; they may or may not transfer):",
                  *(f"- {line}" for line in insight_lines(ctx.insights))]
    parts += [
        "",
        "Rules:",
        f"- Edit only files matching: {', '.join(task.task.editable)} (in {ctx.task_dir}).",
        f"- Never modify protected files ({protected}) or anything else; do not commit.",
        "- Make ONE focused change that tests a clear hypothesis; do not run the full experiment.",
        f"- When done, write your idea as JSON to {idea_path} (also in $LABMIND_IDEA):",
        '  {"title": "<short>", "hypothesis": "...", "rationale": "...", "expected_effect": "...", "applies": []}',
        '  ("applies": the numbers of the library insights your change builds on, if any)',
    ]
    return "\n".join(parts) + "\n"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:_TITLE_MAX]
    return ""


def _title_from_stdout(stdout: str) -> str:
    """The first plain line of stdout; Claude Code's JSON result is unwrapped, JSON event lines skipped."""
    try:
        data = json.loads(stdout)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("result"), str):
        return _first_line(data["result"])
    plain = [ln for ln in stdout.splitlines() if not ln.lstrip().startswith(("{", "["))]
    return _first_line("\n".join(plain))


def parse_idea(idea_path: Path, stdout: str, offered: set[int] | None = None) -> Idea:
    """The program's idea from its idea file (JSON or text), else from its stdout. `offered`: the library
    insights the brief listed; an idea's "applies" may name only those."""
    text = idea_path.read_text(errors="replace") if idea_path.is_file() else ""
    fallback = _title_from_stdout(stdout) or "command edit"
    if not text.strip():
        return Idea(title=fallback)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        keys = ("title", "hypothesis", "rationale", "expected_effect")
        fields = {k: str(data[k]) for k in keys if k in data}
        fields["title"] = _first_line(fields.get("title", "")) or fallback
        applies = parse_applies(data.get("applies"), offered) if offered else []
        return Idea(**fields, params={"applies": applies} if applies else {})
    title, _, rest = text.strip().partition("\n")
    return Idea(title=title.strip()[:_TITLE_MAX] or fallback, hypothesis=rest.strip())


def _tail(text: str, n: int = _TAIL_CHARS) -> str:
    return text if len(text) <= n else "…" + text[-n:]


# -------------------------------------------------------------------------------------------- brain


class CommandBrain:
    """Runs a shell command that edits the worktree. See the module docstring for its contract."""

    def __init__(
        self,
        command: str,
        task: Task,
        *,
        sandbox: Sandbox,
        network: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transcript_dir: Path | None = None,
        hidden: Sequence[Path] = (),
        name: str = "command",
        expand_editable: bool = False,
        extra_writable: Sequence[Path] = (),
    ) -> None:
        if not command.strip():
            raise ValueError("the command brain needs a command, e.g. command:'python improve.py'")
        self.command = command
        self.task = task
        self.sandbox = sandbox
        self.network = network
        self.timeout_s = timeout_s
        self.transcript_dir = transcript_dir
        self.hidden = list(hidden)
        self.name = name
        #: Presets name files on their command line: replace EDITABLE_PLACEHOLDER with the editable files.
        self.expand_editable = expand_editable
        #: Also writable in the sandbox when they exist, e.g. a coding agent's own state (~/.claude).
        self.extra_writable = [p.expanduser() for p in extra_writable]
        self._live: set[subprocess.Popen[bytes]] = set()  # programs running now, for close()
        self._live_lock = threading.Lock()

    def close(self) -> None:
        """The lab is stopping: end every running program's process group (its proposal then fails, and
        `resume` makes it again)."""
        with self._live_lock:
            live = list(self._live)
        for proc in live:
            kill_group(proc, graceful=True)

    def learn(self, result: PastExperiment) -> None:
        """Nothing to keep: the program sees the history in every brief."""

    def propose(self, ctx: BrainContext) -> Idea:
        with tempfile.TemporaryDirectory(prefix="labmind-brain-") as tmp:
            scratch = Path(tmp).resolve()
            paths = self._write_inputs(ctx, scratch)
            env = self._env(ctx, paths)
            argv = self._argv(ctx, env)
            code, stdout, stderr, seconds, timed_out = self._run(argv, ctx, env, scratch)
            transcript = self._transcript(ctx, argv, code, stdout, stderr, seconds)
            if timed_out:
                raise BrainError(
                    f"brain command timed out after {self.timeout_s:.0f}s and was killed; "
                    f"output tail:\n{_tail(transcript)}"
                )
            if code != 0:
                raise BrainError(f"brain command exited with {code}; output tail:\n{_tail(transcript)}")
            return parse_idea(paths["LABMIND_IDEA"], stdout, {i.id for i in ctx.insights if i.id is not None})

    # ---- steps of propose

    def _write_inputs(self, ctx: BrainContext, scratch: Path) -> dict[str, Path]:
        paths = {
            "LABMIND_BRIEF": scratch / "brief.json",
            "LABMIND_PROMPT": scratch / "prompt.md",
            "LABMIND_IDEA": scratch / "idea.json",
        }
        paths["LABMIND_BRIEF"].write_text(json.dumps(ctx.to_dict(), indent=2, default=str))
        paths["LABMIND_PROMPT"].write_text(render_prompt(ctx, paths["LABMIND_IDEA"]))
        return paths

    def _env(self, ctx: BrainContext, paths: dict[str, Path]) -> dict[str, str]:
        env = dict(os.environ) if self.network else scrubbed_env()
        env.update({k: str(v) for k, v in paths.items()})
        env.update(
            LABMIND_TASK=ctx.task.name,
            LABMIND_METRIC=ctx.task.metric.name,
            LABMIND_GOAL=ctx.task.metric.goal,
            LABMIND_EXPERIMENT=str(ctx.experiment_id),
            LABMIND_LINE=str(ctx.line_id),
            LABMIND_WORKTREE=str(ctx.task_dir),
            LABMIND_SCRATCH=str(paths["LABMIND_IDEA"].parent),
        )
        return env

    def _argv(self, ctx: BrainContext, env: dict[str, str]) -> list[str]:
        command = self.command
        if self.expand_editable:
            files = expand_globs(ctx.task_dir, ctx.task.task.editable)
            quoted = " ".join(shlex.quote(str(f.relative_to(ctx.task_dir))) for f in files)
            command = command.replace(EDITABLE_PLACEHOLDER, quoted)
        shell = shutil.which("bash") or "/bin/sh"
        scratch = Path(env["LABMIND_SCRATCH"])
        return self.sandbox.wrap(
            [shell, "-c", command],
            workdir=ctx.task_dir,
            writable=[ctx.worktree or ctx.task_dir, scratch, *(p for p in self.extra_writable if p.exists())],
            readonly=expand_globs(ctx.task_dir, ctx.task.task.protected),
            hidden=[*self.hidden, *hidden_files(ctx.task_dir, ctx.task.run.hide)],
            gpus=False,
            network=self.network,
            env=env,
        )

    def _run(
        self, argv: list[str], ctx: BrainContext, env: dict[str, str], scratch: Path
    ) -> tuple[int | None, str, str, float, bool]:
        """(exit code, stdout, stderr, seconds, timed out). Output goes to files, not pipes, so a
        background process holding stdout open cannot hang us after the group is killed."""
        out_path, err_path = scratch / "stdout.txt", scratch / "stderr.txt"
        start = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            try:
                proc = subprocess.Popen(
                    argv, cwd=ctx.task_dir, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise BrainError(f"cannot start brain command {argv[0]!r}: {exc}") from exc
            timed_out = False
            with self._live_lock:
                self._live.add(proc)
            try:
                proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                kill_group(proc, graceful=timed_out)
                with self._live_lock:
                    self._live.discard(proc)
        seconds = time.monotonic() - start
        stdout, stderr = (p.read_text(errors="replace") for p in (out_path, err_path))
        return proc.returncode, stdout, stderr, seconds, timed_out

    def _transcript(
        self, ctx: BrainContext, argv: list[str], code: int | None, stdout: str, stderr: str, seconds: float
    ) -> str:
        text = (
            f"$ {self.command}\n[sandbox {self.sandbox.name}, network {'on' if self.network else 'off'}]\n"
            f"{stdout}"
            + (f"\n--- stderr ---\n{stderr}" if stderr else "")
            + f"\n[exit {code} after {seconds:.1f}s]\n"
        )
        if self.transcript_dir is not None:
            self.transcript_dir.mkdir(parents=True, exist_ok=True)
            (self.transcript_dir / f"exp-{ctx.experiment_id}.log").write_text(text)
        return text
