"""`anthropic:<model>`: the Messages API through the official `anthropic` SDK (non-streaming).

- Prompt caching: `cache_control: ephemeral` on the system prompt and the last tool (the long, stable prefix
  every call of a brain shares); in a tool loop also on the newest turn, so each turn re-reads the
  conversation so far from the cache instead of paying for it again.
- Extended thinking (`thinking_budget`): sent as `thinking: {type: enabled, budget_tokens}`; the caller's
  `max_tokens` stays the answer's allowance and the budget is added on top; temperature is not sent (the API
  refuses it with thinking). In a tool loop the API wants the previous turn's thinking blocks back, signed;
  labmind's Message has no room for them, so this provider remembers them by tool-call id. A turn it has
  not seen (e.g. after a resume) is sent without thinking for that one call, as the API itself would do.
- JSON output (`json_schema`): the API's structured outputs, `output_config.format = {type: json_schema}`,
  with the schema made strict by the SDK's `transform_schema`. Unlike a forced tool, this works together
  with thinking and with other tools, and the answer arrives as the text.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from labmind.llm.base import Completion, Message, RequestOptions, ToolCall, Usage
from labmind.llm.common import Connection, SDKProvider, check_messages, count, require, tool_call
from labmind.llm.spec import ProviderSpec

API_URL = "https://api.anthropic.com"  # passed explicitly so ANTHROPIC_BASE_URL never redirects keys unseen
_CACHE = {"type": "ephemeral"}
_STOP = {
    "end_turn": "end",
    "stop_sequence": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
}
_REMEMBERED_TURNS = 256  # thinking blocks kept for tool loops; a loop only ever needs its latest turn
# Families before extended thinking existed; every later one (3.7, 4.x and on) has it.
_NO_THINKING = re.compile(r"^claude-(instant|2|3-(?!7))")


def supports_thinking(model: str) -> bool:
    return _NO_THINKING.match(model) is None


class AnthropicProvider(SDKProvider):
    provider_label = "anthropic"

    def __init__(self, spec: ProviderSpec, connection: Connection, *, thinking_budget: int | None = None) -> None:
        import anthropic  # imported here: the SDK is heavy and most labmind commands never call a model

        if spec.provider != "anthropic":
            raise ValueError(f"AnthropicProvider serves anthropic:<model> specs, not {spec}")
        if thinking_budget is not None:
            if not supports_thinking(spec.model):
                raise ValueError(
                    f"{spec.model} has no extended thinking; drop thinking_budget or use a Claude 3.7/4+ model"
                )
            if thinking_budget < 1024:
                raise ValueError(
                    f"thinking_budget must be at least 1024 tokens (the API's minimum), not {thinking_budget}"
                )
        super().__init__(spec, connection, sdk=anthropic, client=anthropic.Anthropic, base_url=API_URL)
        self.thinking_budget = thinking_budget
        self._thinking: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def _create(self, request: dict[str, Any]) -> Any:
        return self._client.messages.create(**request, timeout=self.timeout_s)

    def build_request(self, messages: list[Message], options: RequestOptions) -> dict[str, Any]:
        """The keyword arguments for `messages.create` (public so tests and the docs can show them)."""
        check_messages(messages)
        wire, complete_turns = self._messages(messages)
        request: dict[str, Any] = {"model": self.model, "max_tokens": options.max_tokens, "messages": wire}
        if options.system:
            request["system"] = [{"type": "text", "text": options.system, "cache_control": _CACHE}]
        if options.tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in options.tools
            ]
            request["tools"][-1]["cache_control"] = _CACHE
        if any(m.role == "tool" for m in messages):
            _mark_last_block(wire)
        thinking = self.thinking_budget is not None and complete_turns
        if thinking:
            request["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
            request["max_tokens"] = options.max_tokens + self.thinking_budget
        elif options.temperature is not None:
            # The SDK has no typed temperature parameter; the API still takes it in the body.
            request["extra_body"] = {"temperature": options.temperature}
        if options.json_schema is not None:
            request["output_config"] = {
                "format": {"type": "json_schema", "schema": self._sdk.transform_schema(options.json_schema)}
            }
        return request

    def _messages(self, messages: list[Message]) -> tuple[list[dict[str, Any]], bool]:
        """Wire messages, and whether the last assistant turn has its thinking blocks if it called tools."""
        wire: list[dict[str, Any]] = []
        complete = True
        for m in messages:
            if m.role == "assistant":
                blocks: list[dict[str, Any]] = []
                remembered = self._recall(m.tool_calls[0].id) if m.tool_calls else None
                # Only the latest assistant turn must open with its thinking; earlier ones the API ignores.
                complete = not m.tool_calls or remembered is not None
                blocks.extend(dict(b) for b in remembered or [])  # copies: the request may mark its last block
                if m.content:
                    blocks.append({"type": "text", "text": m.content})
                for call in m.tool_calls:
                    blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments or {}})
                if not blocks:
                    continue  # an empty assistant turn carries nothing; the API rejects empty content
                wire.append({"role": "assistant", "content": blocks})
                continue
            if m.role == "tool":
                block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
                if m.is_error:
                    block["is_error"] = True
            else:
                block = {"type": "text", "text": m.content or "(empty)"}
            # Tool results and the user's words after them form one user turn, as the API requires.
            if wire and wire[-1]["role"] == "user":
                wire[-1]["content"].append(block)
            else:
                wire.append({"role": "user", "content": [block]})
        return wire, complete

    def parse(self, response: Any) -> Completion:
        """A Completion from a Messages API response; anything unusable raises LLMBadResponse."""
        p = "anthropic"
        require(getattr(response, "type", None) == "message", p, f"expected a message object, got {_kind(response)}")
        content = response.content
        require(isinstance(content, list), p, "content is not a list of blocks")
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        thinking_blocks: list[dict[str, Any]] = []
        for block in content:
            kind = getattr(block, "type", None)
            if kind == "text":
                require(isinstance(block.text, str), p, "a text block has no text")
                texts.append(block.text)
            elif kind == "tool_use":
                require(
                    isinstance(block.id, str) and isinstance(block.name, str), p, "a tool_use block lacks id or name"
                )
                calls.append(tool_call(block.id, block.name, block.input))
            elif kind == "thinking":
                thoughts.append(block.thinking or "")
                thinking_blocks.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
            elif kind == "redacted_thinking":
                thinking_blocks.append({"type": "redacted_thinking", "data": block.data})
        usage = response.usage
        require(usage is not None, p, "usage is missing")
        cache_read = count(usage.cache_read_input_tokens, p, "usage.cache_read_input_tokens", optional=True)
        cache_write = count(usage.cache_creation_input_tokens, p, "usage.cache_creation_input_tokens", optional=True)
        # The API's input_tokens leaves out cached tokens; labmind's Usage counts every prompt token.
        uncached = count(usage.input_tokens, p, "usage.input_tokens")
        if calls and thinking_blocks:
            self._remember(calls[0].id, thinking_blocks)
        return Completion(
            text="".join(texts),
            tool_calls=tuple(calls),
            usage=Usage(
                input_tokens=uncached + cache_read + cache_write,
                output_tokens=count(usage.output_tokens, p, "usage.output_tokens"),
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
            ),
            model=response.model if isinstance(response.model, str) else self.model,
            stop_reason=_STOP.get(response.stop_reason or "", "other"),
            thinking="\n\n".join(t for t in thoughts if t),
        )

    def _remember(self, tool_call_id: str, blocks: list[dict[str, Any]]) -> None:
        with self._lock:
            self._thinking[tool_call_id] = blocks
            while len(self._thinking) > _REMEMBERED_TURNS:
                self._thinking.popitem(last=False)

    def _recall(self, tool_call_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            return self._thinking.get(tool_call_id)


def _mark_last_block(wire: list[dict[str, Any]]) -> None:
    last = wire[-1]["content"][-1]
    last["cache_control"] = _CACHE


def _kind(response: Any) -> str:
    return f"type {getattr(response, 'type', None)!r}" if not isinstance(response, str) else "plain text"
