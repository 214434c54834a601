"""Brain specs from the CLI/config to Brain objects.

Specs:
  knobs                   TPE over the task's numeric settings (no LLM; the default brain)
  command:<shell>         run <shell> in the worktree to edit it (see labmind.brains.command)
  claude-code | codex | aider
                          presets: a coding agent CLI driven headless with the plain-text prompt in
                          $LABMIND_PROMPT. They call hosted models, so they always run with network on and
                          the user's environment (API keys) passed through, whatever `network` says.
  agent[:claim=10m,submit=2h]
                          an interactive agent drives the lab through `labmind agent`/`labmind mcp`
                          (see labmind.brains.agent)
"""

from __future__ import annotations

from pathlib import Path

from labmind.brains.agent import make_agent_brain
from labmind.brains.base import Brain
from labmind.brains.command import DEFAULT_TIMEOUT_S, EDITABLE_PLACEHOLDER, CommandBrain
from labmind.brains.knobs import KnobsBrain
from labmind.brains.llm.brain import LLMBrain
from labmind.brains.llm.clients import LLMClients, is_llm_spec
from labmind.execute.sandbox import Sandbox
from labmind.task.model import Task

#: Agent presets. The prompt tells the agent to write its idea JSON to $LABMIND_IDEA.
PRESETS: dict[str, str] = {
    # acceptEdits lets it edit without asking; Bash is allowed so it can read code and run quick checks.
    "claude-code": (
        'claude -p "$(cat "$LABMIND_PROMPT")" --output-format json '
        '--permission-mode acceptEdits --allowedTools "Read,Edit,Write,Bash"'
    ),
    # workspace-write: codex's own sandbox lets it write the cwd (and /tmp, where $LABMIND_IDEA lives).
    "codex": 'codex exec --json --sandbox workspace-write --skip-git-repo-check "$(cat "$LABMIND_PROMPT")"',
    # aider would otherwise write .aider* history files and a .gitignore entry into the worktree, which the
    # scope check would reject as edits outside `editable`; keep its files in the scratch directory. --no-git:
    # the repository's git directory is hidden in the sandbox (labmind commits the change itself).
    "aider": (
        'aider --message-file "$LABMIND_PROMPT" --yes-always --no-auto-commits --no-gitignore --no-git '
        "--no-check-update --analytics-disable "
        '--input-history-file "$LABMIND_SCRATCH/aider.input.history" '
        '--chat-history-file "$LABMIND_SCRATCH/aider.chat.history.md" '
        f"{EDITABLE_PLACEHOLDER}"
    ),
}

#: Where each agent keeps its session state and login; it fails when these are read-only in the sandbox.
PRESET_STATE: dict[str, tuple[str, ...]] = {
    "claude-code": ("~/.claude", "~/.claude.json"),
    "codex": ("~/.codex",),
    "aider": ("~/.aider",),
}

VALID_SPECS = ("knobs", "anthropic:MODEL", "openai:MODEL", "openai-compatible:MODEL@URL", "command:<shell command>",
               *PRESETS, "agent[:claim=DURATION,submit=DURATION]")


class UnknownBrain(ValueError):
    """A brain spec that names no brain."""


def make_brain(
    spec: str,
    task: Task,
    *,
    seed: int,
    network: bool,
    sandbox: Sandbox,
    task_dir: Path | None = None,
    transcript_dir: Path | None = None,
    hidden: list[Path] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    llm: LLMClients | None = None,
    ideas_model: str | None = None,
    max_repairs: int = 2,
) -> Brain:
    """Build the brain a spec names.

    Optional extras: `task_dir`, the task directory with the baseline's code (anchors the knobs brain's
    search space; recommended on resume); `transcript_dir`, where command brains save exp-<id>.log;
    `hidden`, paths command brains must not see (e.g. the lab's .labmind directory); `timeout_s` for
    command brains; `llm` (the lab's model clients), `ideas_model` and `max_repairs` for the llm brain.
    """
    spec = spec.strip()
    if spec == "knobs":
        return KnobsBrain(task, seed=seed, anchor_dir=task_dir)
    if is_llm_spec(spec):
        llm = llm or LLMClients()
        return LLMBrain(task, implementer=llm.get(spec), thinker=llm.get(ideas_model) if ideas_model else None,
                        sandbox=sandbox, hidden=hidden or [], transcript_dir=transcript_dir, max_repairs=max_repairs)
    if spec == "agent" or spec.startswith("agent:"):
        return make_agent_brain(spec, task_dir)

    def command_brain(command: str, *, network: bool, name: str, preset: bool) -> CommandBrain:
        return CommandBrain(
            command, task, sandbox=sandbox, network=network, timeout_s=timeout_s,
            transcript_dir=transcript_dir, hidden=hidden or [], name=name, expand_editable=preset,
            extra_writable=[Path(p) for p in PRESET_STATE.get(name, ())],
        )  # fmt: skip

    if spec.startswith("command:"):
        command = spec.removeprefix("command:").strip()
        if not command:
            raise UnknownBrain("brain spec 'command:' needs a shell command after the colon")
        return command_brain(command, network=network, name="command", preset=False)
    if spec in PRESETS:
        return command_brain(PRESETS[spec], network=True, name=spec, preset=True)
    raise UnknownBrain(f"unknown brain {spec!r}; valid brains: {', '.join(VALID_SPECS)}")
