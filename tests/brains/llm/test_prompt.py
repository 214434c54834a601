"""The implement loop's system prompt (prompts/implement.md) rendered for a task."""

from __future__ import annotations

from pathlib import Path

from labmind.brains.llm.implement import system_prompt

from ..brainkit import make_task


def test_prompt_names_the_task_rules_and_tools(worktree: Path) -> None:
    task = make_task(["train.py", "model.py"], run={"command": "python train.py", "smoke": "python train.py --quick"})
    text = system_prompt(task, worktree, check=True)
    assert 'working on the task "toy"' in text
    assert "(`python train.py`) itself and measures loss (goal: minimize)" in text
    assert "- Edit only files matching: train.py, model.py." in text
    assert "- Never change the protected files (prepare.py)" in text
    assert "`run_check` runs a quick smoke check (`python train.py --quick`)" in text
    assert "it runs again when\n  you finish." in text
    assert "When you finish, the smoke check runs" in text
    assert "<<<<<<< SEARCH\nthe exact lines now in the file" in text
    assert "## Current editable files" not in text


def test_prompt_without_a_check_or_finish_check(worktree: Path) -> None:
    task = make_task(run={"command": "python train.py", "smoke": "python train.py --quick"})
    assert "run_check" not in system_prompt(task, worktree, check=False)
    quiet = system_prompt(task, worktree, check=True, check_before_finish=False)
    assert "`run_check` runs" in quiet and "runs again when" not in quiet and "When you finish, the smoke" not in quiet


def test_prompt_can_show_editable_files_inline(worktree: Path) -> None:
    task = make_task(["train.py", "model.py", "missing.py"])
    small = len((worktree / "model.py").read_text())
    text = system_prompt(task, worktree, check=False, inline_chars=small + 10)
    assert "## Current editable files" in text
    assert "model.py\n```\nclass Net:\n" in text
    assert "import model" not in text  # train.py did not fit in what was left of the budget
