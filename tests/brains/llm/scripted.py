"""A scripted LLMClient for the implement loop's tests: it answers with queued Completions (or raises queued
LLMErrors) and records every request it got, so tests can assert what the model was shown."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from labmind.llm.base import CallContext, Completion, LLMError, Message, ToolCall, ToolSpec, Usage

_ids = itertools.count(1)


def call(name: str, **arguments: Any) -> ToolCall:
    """A well-formed tool call."""
    return ToolCall(id=f"call_{next(_ids)}", name=name, arguments=arguments, raw_arguments=json.dumps(arguments))


def broken_call(name: str, raw: str) -> ToolCall:
    """A tool call whose arguments were not valid JSON (providers pass arguments=None then)."""
    return ToolCall(id=f"call_{next(_ids)}", name=name, arguments=None, raw_arguments=raw)


def reply(*calls: ToolCall, text: str = "", tokens: int = 100, stop_reason: str = "") -> Completion:
    stop = stop_reason or ("tool_use" if calls else "end")
    usage = Usage(input_tokens=tokens - tokens // 4, output_tokens=tokens // 4)
    return Completion(text=text, tool_calls=calls, usage=usage, model="scripted", stop_reason=stop)


@dataclass(frozen=True)
class Request:
    messages: list[Message]
    system: str
    tools: list[ToolSpec] | None
    max_tokens: int
    context: CallContext | None

    @property
    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools or []]


@dataclass
class ScriptedClient:
    """Answers from `script` in order; an LLMError in the script is raised instead. `delay_s` per call."""

    script: list[Completion | LLMError]
    delay_s: float = 0.0
    spec: str = "scripted:test"
    model: str = "scripted"
    requests: list[Request] = field(default_factory=list)

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
        # A copy: the loop keeps appending to its list, and tests want what this call saw.
        self.requests.append(Request(list(messages), system, tools, max_tokens, context))
        if not self.script:
            raise AssertionError(f"the script ran out after {len(self.requests) - 1} answers")
        if self.delay_s:
            time.sleep(self.delay_s)
        answer = self.script.pop(0)
        if isinstance(answer, LLMError):
            raise answer
        return answer

    def tool_results(self) -> list[Message]:
        """Every tool message the model was sent, in order (from the last request, which holds them all)."""
        return [m for m in self.requests[-1].messages if m.role == "tool"] if self.requests else []

    def user_turns(self) -> list[str]:
        return [m.content for m in self.requests[-1].messages if m.role == "user"] if self.requests else []
