"""SandboxedCheck with real processes, a real git worktree, and the real sandboxes (none and bwrap)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labmind.brains.llm.check import CheckResult
from labmind.execute.sandbox import Sandbox

from .conftest import PROTECTED, changed_files, make_check


def test_exit_code_and_output_tail(worktree: Path, sandbox: Sandbox) -> None:
    check = make_check(sandbox, worktree, protected=PROTECTED)
    result = check("for i in $(seq 3000); do echo line$i; done; echo oops >&2; exit 3", 60)
    assert result.exit_code == 3 and not result.timed_out and not result.passed
    assert result.output_tail.startswith("…") and result.output_tail.endswith("line3000\noops\n")
    assert len(result.output_tail) == 4_001
    assert result.describe().startswith("exit code 3 after ") and "(FAILED)" in result.describe()

    ok = check("python3 train.py", 60)
    assert ok.passed and ok.output_tail == "loss: 0.1216\n"
    assert "(passed)\n--- end of output ---\nloss: 0.1216" in ok.describe()


def test_runs_in_the_task_directory(worktree: Path, sandbox: Sandbox) -> None:
    result = make_check(sandbox, worktree)("pwd; ls", 60)
    assert result.output_tail.splitlines()[0] == str(worktree.resolve())
    assert "train.py" in result.output_tail.splitlines()


def test_timeout_kills_the_whole_process_group(worktree: Path, sandbox: Sandbox) -> None:
    check = make_check(sandbox, worktree, restore=False)
    started = time.monotonic()
    result = check("echo started; (sleep 2; echo late > late.txt) & sleep 60", 1.0)
    assert result.timed_out and result.exit_code is None and result.output_tail == "started\n"
    assert time.monotonic() - started < 15
    assert result.describe().startswith("the check timed out after 1s and was killed")
    time.sleep(2.5)
    assert not (worktree / "late.txt").exists()  # the background child died with its group


def test_environment_is_scrubbed(worktree: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    result = make_check(sandbox, worktree)("env", 60)
    env = dict(line.split("=", 1) for line in result.output_tail.splitlines() if "=" in line)
    assert "ANTHROPIC_API_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_worktree_is_left_as_found(worktree: Path, sandbox: Sandbox) -> None:
    # Before the check: the agent edited train.py and created lib/new.py.
    (worktree / "train.py").write_text("print('loss: 0.5')\n")
    (worktree / "lib").mkdir()
    (worktree / "lib" / "new.py").write_text("X = 1\n")
    before = changed_files(worktree)
    command = (
        "echo junk > out.log; mkdir -p ckpt/deep && echo w > ckpt/deep/a.pt; echo more >> README.md; "
        "echo broken > train.py; echo changed > lib/new.py; rm model.py; "
        "mkdir -p ../cache && echo kept > ../cache/data.bin"
    )
    result = make_check(sandbox, worktree)(command, 60)
    assert result.passed
    assert changed_files(worktree) == before == ["task/lib/new.py", "task/train.py"]
    assert (worktree / "train.py").read_text() == "print('loss: 0.5')\n"
    assert (worktree / "lib" / "new.py").read_text() == "X = 1\n"
    assert (worktree / "README.md").read_text() == "# toy task\n" and (worktree / "model.py").exists()
    assert not (worktree / "ckpt").exists() and not (worktree / "out.log").exists()
    assert (worktree.parent / "cache" / "data.bin").read_text() == "kept\n"  # ignored by git: left alone


def test_a_command_that_cannot_start(worktree: Path) -> None:
    class Missing:
        name = "missing"

        def wrap(self, argv: list[str], **_: object) -> list[str]:
            return ["/nonexistent/sandbox-binary", *argv]

    result = make_check(Missing(), worktree)("true", 10)
    assert result == CheckResult(None, result.output_tail, False, result.seconds)
    assert result.output_tail.startswith("cannot start the check:")
    assert result.describe().startswith("the check could not run")


@pytest.mark.sandbox
def test_bwrap_confines_the_check(worktree: Path, bwrap: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("KEY")
    outside = tmp_path / "outside.txt"
    check = make_check(bwrap, worktree, protected=PROTECTED, hidden=[secret])
    result = check(
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; "
        f"echo x >> prepare.py || echo protected-ro; cat {secret}/key.txt || echo hidden; "
        f"echo out > {outside}; echo done",
        60,
    )
    lines = result.output_tail.splitlines()
    assert lines[0] == "lo" and lines[1].endswith("prepare.py: Read-only file system")  # only loopback
    assert "protected-ro" in lines and "hidden" in lines and "KEY" not in result.output_tail
    assert lines[-1] == "done"
    assert (worktree / "prepare.py").read_text() == "DATA = [1, 2, 3]\n"
    assert not outside.exists()  # /tmp inside the sandbox is private


@pytest.mark.sandbox
def test_hide_files_are_hidden_from_the_check(worktree: Path, bwrap: Sandbox) -> None:
    # The check's output goes back to the model: evaluation data hidden from runs must stay hidden here too,
    # in the worktree and in the repository's history.
    repo = worktree.parent.parent.parent / "repo"
    hidden = [repo / ".git", repo / "task" / "data" / "eval.txt"]  # as the lab hides them (hidden_paths)
    check = make_check(bwrap, worktree, hide=["data/*"], hidden=hidden)
    result = check(f"cat data/eval.txt; cat {repo}/task/data/eval.txt; git --git-dir={repo}/.git show "
                   "HEAD:task/data/eval.txt; echo done", 60)
    assert "secret targets" not in result.output_tail
    assert result.output_tail.rstrip().endswith("done")
