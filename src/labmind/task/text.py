"""A task as prompts and briefs say it: its goal, command, files and the bar a change must clear.

The LLM brain's steps, the command brain's plain-text task and the LLM auditor all describe the same task, so
they share these words (and the prompt templates' names for them, see brains/llm/prompts/_state.md)."""

from __future__ import annotations

from typing import Any

from labmind.figures import bar_text
from labmind.task.model import Task


def bar_sentence(task: Task, incumbent_of: str) -> str:
    """"A change counts only if it beats ...", with `[noise] min_effect` as the task says it."""
    wanted = task.noise.parsed_min_effect()
    clause = bar_text(wanted.text(), wanted.kind == "auto", f"{incumbent_of}'s incumbent")
    return clause[0].upper() + clause[1:]


def task_values(task: Task, min_effect: float, brief: str) -> dict[str, Any]:
    """`min_effect`: the minimum effect in the metric's units at the incumbent (0 for "auto")."""
    wanted = task.noise.parsed_min_effect()
    shown = wanted.text() + (f" (about {min_effect:.4g} here)" if wanted.kind == "relative" and min_effect else "")
    return {
        "task_name": task.name, "goal": task.metric.goal, "metric": task.metric.name, "command": task.run.command,
        "min_effect": shown, "bar": bar_sentence(task, "its line"),
        "editable": ", ".join(task.task.editable),
        "protected": ", ".join(task.task.protected) or "none", "brief": brief.strip(),
    }  # fmt: skip
