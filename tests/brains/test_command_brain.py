"""The command brain with real subprocesses, real git worktrees and the real sandboxes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labmind.brains.base import BrainError
from labmind.brains.command import CommandBrain, parse_idea, render_prompt
from labmind.execute.sandbox import Sandbox, resolve_sandbox

from .brainkit import make_ctx, make_task, past

FILES = {"train.py": "LR = 0.1\nprint('loss: 1.0')\n", "prepare.py": "DATA = 1\n"}
RepoFactory = Callable[[dict[str, str]], Path]


def sandboxes() -> list[Sandbox]:
    found = [Sandbox("none")]
    sandbox, _ = resolve_sandbox("auto")
    if sandbox.name == "bwrap":
        found.append(sandbox)
    return found


@pytest.fixture(params=sandboxes(), ids=lambda s: s.name)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return request.param


def brain_for(command: str, sandbox: Sandbox, **kwargs: object) -> CommandBrain:
    return CommandBrain(command, make_task(), sandbox=sandbox, **kwargs)  # type: ignore[arg-type]


def test_command_edits_the_worktree(repo: RepoFactory, sandbox: Sandbox, tmp_path: Path) -> None:
    task_dir = repo(FILES)
    logs = tmp_path / "logs"
    brain = brain_for("sed -i 's/LR = 0.1/LR = 0.2/' train.py && echo 'double the LR'", sandbox,
                      transcript_dir=logs)  # fmt: skip
    idea = brain.propose(make_ctx(make_task(), task_dir, experiment_id=7))
    assert (task_dir / "train.py").read_text().startswith("LR = 0.2\n")
    assert idea.title == "double the LR"
    assert "double the LR" in (logs / "exp-7.log").read_text()


def test_command_receives_brief_and_environment(repo: RepoFactory, sandbox: Sandbox) -> None:
    task_dir = repo(FILES)
    script = (
        "import json, os; b = json.load(open(os.environ['LABMIND_BRIEF'])); "
        "env = {k: v for k, v in os.environ.items() if k.startswith('LABMIND_')}; "
        "env['prompt'] = open(os.environ['LABMIND_PROMPT']).read(); "
        "open('seen.json', 'w').write(json.dumps({'brief': b, 'env': env}))"
    )
    history = (past(1, title="try a bigger LR", verdict="crashed", metric=None),)
    ctx = make_ctx(make_task(), task_dir, experiment_id=3, history=history)
    brain_for(f'python3 -c "{script}"', sandbox).propose(ctx)
    seen = json.loads((task_dir / "seen.json").read_text())
    brief, env = seen["brief"], seen["env"]
    assert brief["task"]["editable"] == ["train.py"]
    assert brief["metric"] == {"name": "loss", "goal": "minimize"}
    assert brief["experiment_id"] == 3
    assert brief["history"][0]["idea"]["title"] == "try a bigger LR"
    assert brief["parent"]["id"] == 0
    assert env["LABMIND_TASK"] == "toy"
    assert env["LABMIND_METRIC"] == "loss"
    assert env["LABMIND_GOAL"] == "minimize"
    assert env["LABMIND_EXPERIMENT"] == "3"
    assert env["LABMIND_LINE"] == "0"
    assert env["LABMIND_WORKTREE"] == str(task_dir)
    # The brief lives outside the worktree, so it never shows up in the experiment's diff.
    assert not Path(env["LABMIND_BRIEF"]).is_relative_to(task_dir.parent)
    assert "try a bigger LR" in env["prompt"] and env["LABMIND_IDEA"] in env["prompt"]


def test_idea_file_json_is_parsed(repo: RepoFactory, sandbox: Sandbox) -> None:
    task_dir = repo(FILES)
    idea = {"title": "warmup", "hypothesis": "stabler start", "rationale": "r", "expected_effect": "-1%"}
    command = f"echo noise; cat > \"$LABMIND_IDEA\" <<'X'\n{json.dumps(idea)}\nX\n"
    got = brain_for(command, sandbox).propose(make_ctx(make_task(), task_dir))
    assert got.to_dict() == {**idea, "params": {}}


def test_idea_file_plain_text_is_parsed(repo: RepoFactory) -> None:
    task_dir = repo(FILES)
    command = "printf 'cosine schedule\\nsmoother decay helps late training\\n' > \"$LABMIND_IDEA\""
    got = brain_for(command, Sandbox("none")).propose(make_ctx(make_task(), task_dir))
    assert got.title == "cosine schedule"
    assert got.hypothesis == "smoother decay helps late training"


def test_title_falls_back(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    assert parse_idea(missing, "").title == "command edit"
    assert parse_idea(missing, '{"type": "event"}\n\n  tune LR  \nmore\n').title == "tune LR"
    claude = json.dumps({"type": "result", "result": "Raised the LR.\nDetails", "total_cost_usd": 0.1})
    assert parse_idea(missing, claude).title == "Raised the LR."
    assert parse_idea(missing, "x" * 500).title == "x" * 120


def test_nonzero_exit_raises_with_output_tail(repo: RepoFactory, sandbox: Sandbox) -> None:
    task_dir = repo(FILES)
    brain = brain_for("for i in $(seq 2000); do echo line$i; done; echo boom >&2; exit 3", sandbox)
    with pytest.raises(BrainError, match="exited with 3") as info:
        brain.propose(make_ctx(make_task(), task_dir))
    message = str(info.value)
    assert "boom" in message and "line2000" in message and "line1\n" not in message


def test_timeout_kills_the_process_group(repo: RepoFactory, sandbox: Sandbox) -> None:
    task_dir = repo(FILES)
    brain = brain_for("(sleep 60; echo late > late.txt) & sleep 60", sandbox, timeout_s=1)
    start = time.monotonic()
    with pytest.raises(BrainError, match="timed out"):
        brain.propose(make_ctx(make_task(), task_dir))
    assert time.monotonic() - start < 15


def test_api_keys_hidden_without_network(
    repo: RepoFactory, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_dir = repo(FILES)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-123")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-456")
    brain_for("env > env.txt", sandbox).propose(make_ctx(make_task(), task_dir))
    env = (task_dir / "env.txt").read_text()
    assert "sk-secret-123" not in env and "tok-456" not in env
    assert "LABMIND_TASK=toy" in env

    brain_for("env > env.txt", sandbox, network=True).propose(make_ctx(make_task(), task_dir))
    assert "ANTHROPIC_API_KEY=sk-secret-123" in (task_dir / "env.txt").read_text()


def test_bwrap_confines_writes(repo: RepoFactory, tmp_path: Path) -> None:
    sandbox, _ = resolve_sandbox("auto")
    if sandbox.name != "bwrap":
        pytest.skip("bubblewrap is not usable here")
    task_dir = repo(FILES)
    outside = tmp_path / "outside.txt"
    state = tmp_path / "agent-state"  # e.g. ~/.claude for a preset
    state.mkdir()
    command = (
        f"echo escaped > {outside} ; echo hacked >> prepare.py ; echo s > {state}/session ; "
        "echo ok > ../other.txt && echo fine"  # elsewhere in the worktree: allowed
    )
    brain_for(command, sandbox, extra_writable=[state]).propose(make_ctx(make_task(), task_dir,
                                                                         worktree=task_dir.parent))
    assert not outside.exists()
    assert (state / "session").read_text() == "s\n"
    assert (task_dir / "prepare.py").read_text() == FILES["prepare.py"]  # protected: read-only
    assert (task_dir.parent / "other.txt").read_text() == "ok\n"


def test_prompt_names_rules_and_state(tmp_path: Path) -> None:
    failure = past(2, title="huge batch", verdict="crashed", metric=None)
    ctx = make_ctx(make_task(), tmp_path, history=(failure,))
    text = render_prompt(ctx, tmp_path / "idea.json")
    assert "minimize the metric 'loss'" in text
    assert "train.py" in text and "prepare.py" in text
    assert "huge batch" in text and "crashed" in text
    assert str(tmp_path / "idea.json") in text
    assert "Make loss small." in text
