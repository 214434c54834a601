"""The reflect step: a short analysis of a finished experiment, stored with it and shown to later steps."""

from __future__ import annotations

from labmind.brains.base import BrainError
from labmind.brains.llm import render
from labmind.brains.llm.state import LOG_TAIL_CHARS, describe
from labmind.llm.base import CallContext, LLMClient, LLMError, Message
from labmind.model import PastExperiment
from labmind.task.model import Task
from labmind.task.text import task_values

WORDS = 80
DIFF_CHARS = 12_000


def reflect(client: LLMClient, task: Task, result: PastExperiment, parent: PastExperiment | None, diff: str, *,
            min_effect: float) -> str:
    prompt = render(
        "reflect", **task_values(task, min_effect, ""), words=WORDS, experiment=describe(result)[2:],
        parent=describe(parent)[2:] if parent else "none", directive=result.directive,
        hypothesis=result.idea.hypothesis or result.idea.title, log_tail=result.log_tail[-LOG_TAIL_CHARS:],
        diff=(diff or "(no diff)")[:DIFF_CHARS],
    )  # fmt: skip
    context = CallContext(role="reflect", experiment_id=result.id, line_id=result.line_id)
    try:
        answer = client.complete([Message(role="user", content=prompt)], max_tokens=600, context=context)
    except LLMError as exc:
        raise BrainError(f"reflect: the model call failed: {exc}") from exc
    text = " ".join(answer.text.split())
    if not text:
        raise BrainError("reflect: the model returned no text")
    # Keep it as short as asked: analyses are fed back into every later prompt of the line.
    cut = text.split()
    return " ".join(cut[: WORDS * 2]) + (" …" if len(cut) > WORDS * 2 else "")
