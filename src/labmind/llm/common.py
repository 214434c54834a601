"""What the SDK-backed providers share: opening the SDK client, turning SDK exceptions into LLMError, and
reading tool arguments.

Both official SDKs come from the same generator and have the same exception tree (APIStatusError,
APIConnectionError, APITimeoutError, APIResponseValidationError under a base error) and the same client
constructor, so one translator and one constructor path serve both; they are handed the SDK module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, TypeVar

from labmind.llm.base import (
    CallContext,
    Completion,
    LLMBadResponse,
    LLMError,
    Message,
    RequestOptions,
    ToolCall,
    ToolSpec,
)
from labmind.llm.spec import ProviderSpec

T = TypeVar("T")

_RETRYABLE = {408, 409, 429}
_HINTS = {
    401: "check the API key (environment variable or config file)",
    403: "the key lacks access to this model or feature",
    404: "check the model name in the brain spec",
}


def call_sdk(fn: Callable[[], T], *, sdk: ModuleType, provider: str, max_retries: int) -> T:
    """Run one SDK request (which retries by itself) and turn what can go wrong into LLMError."""
    try:
        return fn()
    except sdk.APIResponseValidationError as e:
        raise LLMBadResponse(f"{provider} answered with a body that does not fit the API: {e}") from e
    except sdk.APIStatusError as e:
        raise LLMError(_status_message(e, provider, max_retries), status=e.status_code) from e
    except sdk.APITimeoutError as e:
        raise LLMError(f"{provider} request timed out (after up to {max_retries} retries)") from e
    except sdk.APIConnectionError as e:
        cause = f": {e.__cause__}" if e.__cause__ else ""
        raise LLMError(f"cannot reach {provider} (after up to {max_retries} retries){cause}") from e
    except json.JSONDecodeError as e:
        # The SDK decodes the body itself; a JSON-typed body that does not parse surfaces here.
        raise LLMBadResponse(f"{provider} answered with a body that is not valid JSON: {e}") from e
    except sdk_base_error(sdk) as e:
        raise LLMError(f"{provider} client error: {e}") from e


def sdk_base_error(sdk: ModuleType) -> type[Exception]:
    return getattr(sdk, "AnthropicError", None) or sdk.OpenAIError


def _status_message(e: Any, provider: str, max_retries: int) -> str:
    status = e.status_code
    detail = _provider_message(e.body) or str(getattr(e, "message", "")) or "no message"
    parts = [f"{provider} answered HTTP {status}: {detail}"]
    request_id = e.response.headers.get("request-id") or e.response.headers.get("x-request-id")
    if request_id:
        parts.append(f"(request id {request_id})")
    if status in _RETRYABLE or status >= 500:
        parts.append(f"after up to {max_retries} retries")
    if status in _HINTS:
        parts.append(f"- {_HINTS[status]}")
    return " ".join(parts)


def _provider_message(body: object) -> str:
    # Anthropic: {"type": "error", "error": {"type": ..., "message": ...}}; OpenAI: {"error": {"message": ...}}.
    if isinstance(body, dict):
        if "detail" in body and "error" not in body:  # FastAPI-based servers (llama-cpp-python, vLLM) on 4xx
            return str(body["detail"])[:500]
        err = body.get("error", body)
        if isinstance(err, dict):
            message, kind = err.get("message"), err.get("type")
            if isinstance(message, str) and message:
                return f"{message} [{kind}]" if isinstance(kind, str) and kind else message
        elif isinstance(err, str):
            return err
    if isinstance(body, str):
        return body[:500]
    return ""


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """A tool call's arguments as a dict, or None when `raw` is not a JSON object (the caller keeps `raw`)."""
    try:
        # strict=False: grammar-constrained local servers (llama.cpp) put raw newlines inside JSON strings.
        value = json.loads(raw, strict=False)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def tool_call(call_id: str, name: str, raw: Any) -> ToolCall:
    """A ToolCall from a wire value that is a JSON string (OpenAI) or already an object (Anthropic)."""
    if isinstance(raw, dict):
        return ToolCall(id=call_id, name=name, arguments=raw, raw_arguments=json.dumps(raw))
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return ToolCall(id=call_id, name=name, arguments=parse_arguments(text), raw_arguments=text)


def parse_or_bad(parse: Callable[[Any], T], response: Any, provider: str) -> T:
    """Run a provider's parser; a shape it did not foresee is a bad response, not a crash of the caller."""
    try:
        return parse(response)
    except (AttributeError, TypeError, KeyError, IndexError) as e:
        raise LLMBadResponse(f"{provider} answered with an unusable completion: {type(e).__name__}: {e}") from e


def require(condition: bool, provider: str, what: str) -> None:
    """Raise LLMBadResponse unless a response has the shape the API promises."""
    if not condition:
        raise LLMBadResponse(f"{provider} answered with an unusable completion: {what}")


def arguments_text(call: ToolCall) -> str:
    """The arguments to send back to a provider: what the model wrote, else the parsed dict as JSON."""
    if call.raw_arguments:
        return call.raw_arguments
    return json.dumps(call.arguments or {})


def check_messages(messages: list[Message]) -> None:
    """Reject conversations no provider can take, with the fix in the message (a caller's bug, not an API error)."""
    if not messages:
        raise ValueError("complete() needs at least one message; pass [Message(role='user', content=...)]")
    for i, m in enumerate(messages):
        if not isinstance(m, Message):
            raise ValueError(f"messages[{i}] is a {type(m).__name__}, not a labmind.llm.base.Message")
        if m.role == "tool" and not m.tool_call_id:
            raise ValueError(
                f"messages[{i}] is a tool result without tool_call_id; set it to the ToolCall.id it answers"
            )
        if m.role != "assistant" and m.tool_calls:
            raise ValueError(f"messages[{i}] has role {m.role!r} but carries tool_calls; only assistant turns may")


def count(value: object, provider: str, what: str, *, optional: bool = False) -> int:
    """A token count from a response: a non-negative int; a missing optional count is 0."""
    if value is None and optional:
        return 0
    require(isinstance(value, int) and not isinstance(value, bool) and value >= 0, provider, f"{what} is {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Connection:
    """How a provider reaches its API: the key, the HTTP client (None: the SDK's own), the SDK's retries and
    its timeout per request."""

    api_key: str
    http_client: Any = None
    max_retries: int = 3
    timeout_s: float = 600.0


class SDKProvider:
    """What every provider shares: its SDK client, and one timed SDK call through `call_sdk`, parsed into a
    Completion. A subclass imports its SDK and hands it to `__init__`, sets `provider_label` and defines
    `build_request`, `_create` (the SDK call) and `parse`; it may override `_send` to ask again."""

    provider_label = ""

    def __init__(
        self, spec: ProviderSpec, connection: Connection, *, sdk: ModuleType, client: Callable[..., Any], base_url: str
    ) -> None:
        # The base URL is always explicit: an *_BASE_URL environment variable must never redirect a key unseen.
        self.spec = str(spec)
        self.model = spec.model
        self.max_retries = connection.max_retries
        self.timeout_s = connection.timeout_s
        self._sdk = sdk
        self._client = client(
            api_key=connection.api_key,
            base_url=base_url,
            max_retries=connection.max_retries,
            timeout=connection.timeout_s,
            http_client=connection.http_client,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def close(self) -> None:
        self._client.close()

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
        options = RequestOptions(
            system=system,
            tools=tuple(tools or ()),
            max_tokens=max_tokens,
            temperature=temperature,
            json_schema=json_schema,
        )
        started = time.monotonic()
        response = self._send(messages, options)
        completion = parse_or_bad(self.parse, response, self.provider_label)
        return replace(completion, latency_s=time.monotonic() - started)

    def _send(self, messages: list[Message], options: RequestOptions) -> Any:
        """One request through the SDK (which retries by itself); a provider overrides it to ask again."""
        request = self.build_request(messages, options)
        return call_sdk(
            lambda: self._create(request), sdk=self._sdk, provider=self.provider_label, max_retries=self.max_retries
        )

    def build_request(self, messages: list[Message], options: RequestOptions) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, response: Any) -> Completion:
        raise NotImplementedError

    def _create(self, request: dict[str, Any]) -> Any:
        raise NotImplementedError
