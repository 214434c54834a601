"""Brain specs -> brains, including the agent presets (whose binaries are not installed here)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from labmind.brains.command import CommandBrain
from labmind.brains.knobs import KnobsBrain
from labmind.brains.registry import PRESETS, UnknownBrain, make_brain
from labmind.execute.sandbox import Sandbox

from .brainkit import make_ctx, make_task

NONE = Sandbox("none")


def build(spec: str, network: bool = False) -> object:
    return make_brain(spec, make_task(), seed=0, network=network, sandbox=NONE)


def test_knobs() -> None:
    assert isinstance(build("knobs"), KnobsBrain)


def test_command_keeps_network_setting() -> None:
    brain = build("command: python improve.py --fast")
    assert isinstance(brain, CommandBrain)
    assert brain.command == "python improve.py --fast"
    assert brain.name == "command" and brain.network is False
    assert build("command:true", network=True).network is True  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", ["nope", "command:", "command:   ", "llm-ish", ""])
def test_bad_specs_list_valid_ones(spec: str) -> None:
    with pytest.raises(UnknownBrain) as info:
        build(spec)
    if spec.strip() != "command:":
        assert "knobs" in str(info.value) and "claude-code" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "program", "flags"),
    [
        ("claude-code", "claude", ["-p", "--output-format", "json", "--permission-mode", "acceptEdits"]),
        ("codex", "codex", ["exec", "--json", "--sandbox", "workspace-write"]),
        ("aider", "aider", ["--message-file", "$LABMIND_PROMPT", "--yes-always", "--no-auto-commits"]),
    ],
)
def test_presets_expand_to_agent_command_lines(spec: str, program: str, flags: list[str]) -> None:
    brain = build(spec, network=False)
    assert isinstance(brain, CommandBrain)
    assert brain.name == spec
    assert brain.network is True  # hosted models: presets always need the network
    words = shlex.split(brain.command, posix=True)
    assert words[0] == program
    assert all(flag in words for flag in flags)
    assert spec in PRESETS
    assert brain.extra_writable  # the agent's own state directory stays writable in the sandbox


def test_aider_gets_the_editable_files_on_its_command_line(tmp_path: Path) -> None:
    task = make_task(editable=["*.py", "lib/*.py"])
    (tmp_path / "lib").mkdir()
    for name in ("train.py", "model file.py", "lib/util.py", "notes.txt"):
        (tmp_path / name).write_text("X = 1\n")
    brain = make_brain("aider", task, seed=0, network=False, sandbox=NONE)
    assert isinstance(brain, CommandBrain)
    ctx = make_ctx(task, tmp_path)
    argv = brain._argv(ctx, {"LABMIND_SCRATCH": str(tmp_path / "scratch")})
    words = shlex.split(argv[-1])
    assert words[-3:] == ["lib/util.py", "model file.py", "train.py"]
    assert "$LABMIND_SCRATCH/aider.chat.history.md" in argv[-1]  # its history stays out of the worktree
