"""Lab state as prompt text: the values the prompt templates share (see prompts/_state.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labmind.brains.base import BrainContext
from labmind.brains.command import expand_globs, past_metric
from labmind.model import PastExperiment
from labmind.task.model import Task
from labmind.task.text import task_values

#: How much code the ideate prompt shows (per file, and over all files).
FILE_CHARS = 24_000
TOTAL_CHARS = 60_000
LOG_TAIL_CHARS = 3_000


def describe(p: PastExperiment) -> str:
    """One line per experiment: what was tried, what happened, why, and what was learned."""
    title = p.idea.title or "baseline"
    text = f"- #{p.id} {title!r}: {p.verdict or 'baseline'}, {past_metric(p)}."
    if p.reason:
        text += f" {p.reason}"
    if p.analysis:
        text += f" Lesson: {p.analysis}"
    return text


def state_values(ctx: BrainContext) -> dict[str, Any]:
    """Everything prompts/_state.md needs, from a proposal's context."""
    failures = []
    for p in ctx.recent_failures:
        tail = p.log_tail.strip()[-600:]
        failures.append(describe(p) + (f"\n  last output: {tail}" if tail else ""))
    return {
        **task_values(ctx.task, ctx.min_effect, ctx.brief_text),
        "baseline": describe(ctx.baseline)[2:], "best": describe(ctx.best)[2:],
        "incumbent": describe(ctx.incumbent)[2:], "direction": ctx.direction,
        "history": [describe(p) for p in ctx.history], "near_misses": [describe(p) for p in ctx.near_misses],
        "failures": failures,
    }  # fmt: skip


def editable_files(task_dir: Path, task: Task) -> list[dict[str, Any]]:
    """The editable files' current text, capped so the prompt stays bounded."""
    out: list[dict[str, Any]] = []
    budget = TOTAL_CHARS
    for path in expand_globs(task_dir, task.task.editable):
        if budget <= 0:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # binary or unreadable: the model cannot use it in a prompt anyway
        cap = min(FILE_CHARS, budget)
        out.append({"path": path.relative_to(task_dir).as_posix(), "text": text[:cap], "truncated": len(text) > cap})
        budget -= min(len(text), cap)
    return out
