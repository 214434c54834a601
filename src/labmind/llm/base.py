"""The one small interface every LLM provider implements, and the records labmind keeps of each call.

Brains talk to `LLMClient.complete` only; providers (Anthropic, OpenAI, any OpenAI-compatible server) turn
it into their SDK's request. `Metered` (labmind.llm.metered) wraps any client with budgets, rate limits,
the call log and the resume cache, so every call passes one choke point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: `parameters` is a JSON schema of its arguments (an object)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A tool call as the model made it. `arguments` is None when `raw_arguments` was not a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str = ""


@dataclass(frozen=True)
class Message:
    """One conversation turn. Assistant turns may carry tool calls; a `tool` turn answers one of them."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role == "tool"
    is_error: bool = False  # for role == "tool": the tool refused or failed


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0  # thinking/reasoning tokens included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    """A model's answer. `cost_usd` is None when the model has no known price."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    stop_reason: str = ""  # normalised: end | tool_use | max_tokens | other
    cost_usd: float | None = None
    latency_s: float = 0.0
    thinking: str = ""
    cached: bool = False  # served from the lab's store on resume: no tokens were bought

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        calls = tuple(ToolCall(**c) for c in data.get("tool_calls", ()))
        usage = Usage(**data.get("usage", {}))
        rest = {k: v for k, v in data.items() if k not in ("tool_calls", "usage")}
        return cls(tool_calls=calls, usage=usage, **rest)


@dataclass(frozen=True)
class RequestOptions:
    """What a call asks of the model besides the conversation: `complete`'s keyword arguments, less the context.

    Providers take it whole (`build_request(messages, options)`) rather than each re-declaring five arguments.
    """

    system: str = ""
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096
    temperature: float | None = None
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class CallContext:
    """Who makes a call and for what: recorded with the call, and part of its resume-cache key."""

    role: str  # ideate | implement | repair | reflect | director | audit | ...
    experiment_id: int | None = None
    line_id: int | None = None


class LLMError(Exception):
    """A model call failed for good (after the SDK's retries); the step that made it fails cleanly.

    `status` is the provider's HTTP status when it answered with an error, else None (network, timeout).
    """

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMBudgetExceeded(LLMError):
    """A hard cap (dollars for the lab, tokens for one experiment) would be passed: no call was made."""


class LLMBadResponse(LLMError):
    """The provider answered with something that is not a usable completion."""


class LLMClient(Protocol):
    """A chat model. Implementations raise LLMError (or a subclass) and nothing else for API failures."""

    spec: str  # the brain spec that built it, e.g. "anthropic:claude-sonnet-4-6"
    model: str

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
    ) -> Completion: ...
