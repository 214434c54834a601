"""`openai:` and `openai-compatible:` providers through the official `openai` SDK (non-streaming).

- `openai:<model>` uses the Responses API at api.openai.com: function tools, `text.format` json_schema,
  `store: false` (labmind sends the whole conversation each time and keeps its own log). Reasoning models
  (o-series, gpt-5 except its chat variants) take no temperature, so none is sent to them.
- `openai-compatible:<model>@<url>` uses Chat Completions, which every compatible server speaks (vLLM,
  Ollama, llama.cpp server, OpenRouter, DeepSeek): tools, `response_format` json_schema.

The base URL is always passed explicitly: OPENAI_BASE_URL in the environment is never used, so a key for
api.openai.com cannot be sent elsewhere by accident. A JSON schema is marked strict only when it already
meets OpenAI's strict rules (every object closed and all its properties required); otherwise it is sent
as a non-strict hint rather than rewritten behind the caller's back.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from labmind.llm.base import Completion, LLMError, Message, RequestOptions, ToolCall, Usage
from labmind.llm.common import (
    Connection,
    SDKProvider,
    arguments_text,
    check_messages,
    count,
    require,
    tool_call,
)
from labmind.llm.spec import ProviderSpec

log = logging.getLogger(__name__)

API_URL = "https://api.openai.com/v1"
_REASONING = re.compile(r"^(o\d|gpt-5|codex)")
_CHAT_STOP = {"stop": "end", "tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens"}
_ERROR_PREFIX = "ERROR: "  # neither OpenAI API has an error flag on tool results; say it in the text


def is_reasoning_model(model: str) -> bool:
    return _REASONING.match(model) is not None and "-chat" not in model


def is_strict_schema(schema: Any) -> bool:
    """True when `schema` already satisfies OpenAI's strict structured-output rules."""
    if isinstance(schema, list):
        return all(is_strict_schema(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(props):
            return False
    nested = [schema.get(k) for k in ("items", "anyOf", "allOf")]
    nested += list(schema.get("properties", {}).values()) + list(schema.get("$defs", {}).values())
    return all(is_strict_schema(s) for s in nested if s is not None)


class OpenAIResponsesProvider(SDKProvider):
    """`openai:<model>` over the Responses API."""

    provider_label = "openai"

    def __init__(self, spec: ProviderSpec, connection: Connection, *, reasoning_effort: str | None = None) -> None:
        import openai  # imported here: the SDK is heavy and most labmind commands never call a model

        if spec.provider != "openai":
            raise ValueError(f"OpenAIResponsesProvider serves openai:<model> specs, not {spec}")
        if os.environ.get("OPENAI_BASE_URL"):
            log.warning(
                "OPENAI_BASE_URL is set but %s talks to %s; for another server use openai-compatible:%s@<url>",
                spec,
                API_URL,
                spec.model,
            )
        super().__init__(spec, connection, sdk=openai, client=openai.OpenAI, base_url=API_URL)
        self.reasoning_effort = reasoning_effort

    def build_request(self, messages: list[Message], options: RequestOptions) -> dict[str, Any]:
        check_messages(messages)
        request: dict[str, Any] = {
            "model": self.model,
            "input": _response_items(messages),
            "max_output_tokens": options.max_tokens,
            "store": False,
        }
        if options.system:
            request["instructions"] = options.system
        if options.tools:
            request["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": is_strict_schema(t.parameters),
                }
                for t in options.tools
            ]
        reasoning = is_reasoning_model(self.model)
        if options.temperature is not None and not reasoning:
            request["temperature"] = options.temperature
        if reasoning and self.reasoning_effort:
            request["reasoning"] = {"effort": self.reasoning_effort}
        if options.json_schema is not None:
            request["text"] = {
                "format": {
                    "type": "json_schema",
                    "name": "response",
                    "schema": options.json_schema,
                    "strict": is_strict_schema(options.json_schema),
                }
            }
        return request

    def _create(self, request: dict[str, Any]) -> Any:
        return self._client.responses.create(**request, timeout=self.timeout_s)

    def parse(self, response: Any) -> Completion:
        p = "openai"
        require(
            getattr(response, "object", None) == "response", p, f"expected a response object, got {_kind(response)}"
        )
        if response.status == "failed":
            error = response.error
            message = getattr(error, "message", None) or "no message"
            raise LLMError(f"openai reported the response as failed: {message}")
        output = response.output
        require(isinstance(output, list), p, "output is not a list of items")
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for item in output:
            kind = getattr(item, "type", None)
            if kind == "message":
                require(isinstance(item.content, list), p, "a message item has no content list")
                for part in item.content:
                    if getattr(part, "type", None) == "output_text":
                        require(isinstance(part.text, str), p, "an output_text part has no text")
                        texts.append(part.text)
                    elif getattr(part, "type", None) == "refusal":
                        texts.append(part.refusal or "")
            elif kind == "function_call":
                require(
                    isinstance(item.call_id, str) and isinstance(item.name, str), p, "a function_call lacks call_id"
                )
                calls.append(tool_call(item.call_id, item.name, item.arguments))
            elif kind == "reasoning":
                thoughts.extend(s.text for s in (item.summary or []) if getattr(s, "text", None))
        usage = response.usage
        require(usage is not None, p, "usage is missing")
        details = usage.input_tokens_details
        incomplete = getattr(response.incomplete_details, "reason", None)
        if calls:
            stop = "tool_use"
        elif response.status == "incomplete" and incomplete == "max_output_tokens":
            stop = "max_tokens"
        elif response.status in ("completed", None):
            stop = "end"
        else:
            stop = "other"
        return Completion(
            text="".join(texts),
            tool_calls=tuple(calls),
            usage=Usage(
                input_tokens=count(usage.input_tokens, p, "usage.input_tokens"),
                output_tokens=count(usage.output_tokens, p, "usage.output_tokens"),
                cache_read_tokens=count(getattr(details, "cached_tokens", None), p, "cached_tokens", optional=True),
                cache_write_tokens=count(
                    getattr(details, "cache_write_tokens", None), p, "cache_write_tokens", optional=True
                ),
            ),
            model=response.model if isinstance(response.model, str) else self.model,
            stop_reason=stop,
            thinking="\n\n".join(thoughts),
        )


class OpenAICompatibleProvider(SDKProvider):
    """`openai-compatible:<model>@<base_url>` over Chat Completions."""

    def __init__(self, spec: ProviderSpec, connection: Connection) -> None:
        import openai  # imported here: the SDK is heavy and most labmind commands never call a model

        if spec.provider != "openai-compatible" or not spec.base_url:
            raise ValueError(f"OpenAICompatibleProvider serves openai-compatible:<model>@<url> specs, not {spec}")
        self.provider_label = f"openai-compatible server {spec.base_url}"
        # Servers that reject response_format json_schema but take llama-cpp-python's json_object + schema form.
        self._json_object_form = False
        super().__init__(spec, connection, sdk=openai, client=openai.OpenAI, base_url=spec.base_url)

    def build_request(self, messages: list[Message], options: RequestOptions) -> dict[str, Any]:
        check_messages(messages)
        wire: list[dict[str, Any]] = [{"role": "system", "content": options.system}] if options.system else []
        wire += [_chat_message(m) for m in messages]
        # max_tokens rather than max_completion_tokens: every compatible server understands it.
        request: dict[str, Any] = {"model": self.model, "messages": wire, "max_tokens": options.max_tokens}
        if options.tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in options.tools
            ]
            # "auto" is the API's default, but llama-cpp-python's function-calling formats ignore the tools
            # unless it is said out loud.
            request["tool_choice"] = "auto"
        if options.temperature is not None:
            request["temperature"] = options.temperature
        schema = options.json_schema
        if schema is not None and self._json_object_form:
            request["response_format"] = {"type": "json_object", "schema": schema}
        elif schema is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": schema, "strict": is_strict_schema(schema)},
            }
        return request

    def _send(self, messages: list[Message], options: RequestOptions) -> Any:
        try:
            return super()._send(messages, options)
        except LLMError as e:
            if not self._rejects_json_schema(e, options.json_schema):
                raise
        # llama-cpp-python's server (and the older vLLM/Anyscale convention) only knows
        # {"type": "json_object", "schema": ...}; remember that and ask again in that form.
        log.info("%s rejected response_format json_schema; using its json_object form from now on", self.spec)
        self._json_object_form = True
        return super()._send(messages, options)

    def _rejects_json_schema(self, error: LLMError, json_schema: dict[str, Any] | None) -> bool:
        return (
            json_schema is not None
            and not self._json_object_form
            # llama-cpp-python answers its own validation errors with 500 (after which the SDK has retried)
            and error.status in (400, 422, 500)
            and "response_format" in str(error)
        )

    def _create(self, request: dict[str, Any]) -> Any:
        return self._client.chat.completions.create(**request, timeout=self.timeout_s)

    def parse(self, response: Any) -> Completion:
        p = self.provider_label
        choices = getattr(response, "choices", None)
        require(isinstance(choices, list) and len(choices) > 0, p, f"no choices in the answer ({_kind(response)})")
        choice = choices[0]
        message = getattr(choice, "message", None)
        require(message is not None, p, "the first choice has no message")
        content = message.content
        require(content is None or isinstance(content, str), p, "message.content is not text")
        calls: list[ToolCall] = []
        for call in message.tool_calls or []:
            function = getattr(call, "function", None)
            name = getattr(function, "name", None)
            require(isinstance(name, str) and bool(name), p, "a tool call has no function name")
            # Some servers leave out the id; the next turn must echo one, so make a stable one up.
            call_id = call.id if isinstance(call.id, str) and call.id else f"call_{len(calls)}"
            calls.append(tool_call(call_id, name, function.arguments if function.arguments is not None else ""))
        usage = response.usage
        prompt_details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
        finish = choice.finish_reason
        stop = "tool_use" if calls else _CHAT_STOP.get(finish or "", "other")
        # vLLM and DeepSeek send reasoning_content, OpenRouter and Ollama send reasoning.
        extra = message.model_extra or {}
        thinking = extra.get("reasoning_content") or extra.get("reasoning") or ""
        return Completion(
            text=content or "",
            tool_calls=tuple(calls),
            # Some servers send no usage at all; that is zero tokens known, not a broken answer.
            usage=Usage(
                input_tokens=count(getattr(usage, "prompt_tokens", None), p, "usage.prompt_tokens", optional=True),
                output_tokens=count(
                    getattr(usage, "completion_tokens", None), p, "usage.completion_tokens", optional=True
                ),
                cache_read_tokens=count(
                    getattr(prompt_details, "cached_tokens", None), p, "cached_tokens", optional=True
                ),
            ),
            model=response.model if isinstance(getattr(response, "model", None), str) else self.model,
            stop_reason=stop,
            thinking=thinking if isinstance(thinking, str) else "",
        )


def _response_items(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            output = _ERROR_PREFIX + m.content if m.is_error else m.content
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": output})
            continue
        if m.content or m.role == "user":
            items.append({"role": m.role, "content": m.content})
        for call in m.tool_calls:
            items.append(
                {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": arguments_text(call)}
            )
    return items


def _chat_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        content = _ERROR_PREFIX + m.content if m.is_error else m.content
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": content}
    if m.role == "assistant" and m.tool_calls:
        return {
            "role": "assistant",
            # "" rather than null: the API allows both, llama-cpp-python's server only a string.
            "content": m.content,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments_text(c)}}
                for c in m.tool_calls
            ],
        }
    return {"role": m.role, "content": m.content}


def _kind(response: Any) -> str:
    if isinstance(response, str):
        return "plain text"
    return f"object {getattr(response, 'object', None)!r}"
