"""A scripted LLMClient for tests of what wraps providers (Metered, budgets): no SDK, no wire."""

from __future__ import annotations

import threading
from typing import Any

from labmind.llm.base import CallContext, Completion, Message, ToolSpec, Usage


class FakeClient:
    """Answers with `answers` in turn (an exception in the list is raised instead); counts its calls."""

    def __init__(self, *answers: Completion | Exception, spec: str = "anthropic:claude-sonnet-4-6") -> None:
        self.spec = spec
        self.model = spec.split(":", 1)[1].split("@", 1)[0]
        self._answers = list(answers) or [answer()]
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def complete(
        self,
        messages: list[Message],
        *,
        system: str = "",
        tools: list[ToolSpec] | None = None,
        max_tokens: int = 4096,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
        context: CallContext | None = None,
    ) -> Completion:
        with self._lock:
            self.calls.append({"messages": messages, "system": system, "context": context})
            reply = self._answers[min(len(self.calls), len(self._answers)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply


def answer(text: str = "an idea", input_tokens: int = 1000, output_tokens: int = 200, model: str = "") -> Completion:
    return Completion(
        text=text,
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model=model or "claude-sonnet-4-6",
        stop_reason="end",
    )
