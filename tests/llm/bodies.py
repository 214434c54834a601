"""Response bodies as the providers send them (shapes and field sets follow the APIs' reference examples)."""

from __future__ import annotations

import json
from typing import Any

# --- Anthropic Messages API -------------------------------------------------------------------------------


def anthropic_message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 12,
    cache_read: int = 0,
    cache_write: int = 0,
    model: str = "claude-sonnet-4-6",
) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def anthropic_text(text: str = "Lower the learning rate to 3e-4.", **kw: Any) -> dict[str, Any]:
    return anthropic_message([{"type": "text", "text": text}], **kw)


def anthropic_tool_use(arguments: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return anthropic_message(
        [
            {"type": "text", "text": "I'll read the training script first."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "read_file",
                "input": arguments if arguments is not None else {"path": "train.py"},
            },
        ],
        stop_reason="tool_use",
        **kw,
    )


def anthropic_thinking_tool_use() -> dict[str, Any]:
    return anthropic_message(
        [
            {
                "type": "thinking",
                "thinking": "The loss plateaus early; the schedule is the likely cause.",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
            },
            {"type": "tool_use", "id": "toolu_thinking_1", "name": "read_file", "input": {"path": "train.py"}},
        ],
        stop_reason="tool_use",
    )


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


# --- OpenAI Responses API ---------------------------------------------------------------------------------


def openai_response(
    output: list[dict[str, Any]],
    *,
    status: str = "completed",
    incomplete: str | None = None,
    input_tokens: int = 36,
    output_tokens: int = 87,
    cached: int = 0,
    model: str = "gpt-5-2025-08-07",
) -> dict[str, Any]:
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 64},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
        "metadata": {},
    }


def openai_message_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def openai_reasoning_item(summary: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": "rs_6820f383d7c08191846711c5df8233bc",
        "summary": [{"type": "summary_text", "text": summary}],
    }


def openai_function_call_item(arguments: str, call_id: str = "call_12345xyz") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_12345xyz",
        "call_id": call_id,
        "name": "read_file",
        "arguments": arguments,
        "status": "completed",
    }


def openai_error(message: str, kind: str = "server_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --- OpenAI Chat Completions (what compatible servers speak) ---------------------------------------------


def chat_completion(
    message: dict[str, Any],
    *,
    finish_reason: str = "stop",
    prompt_tokens: int = 19,
    completion_tokens: int = 10,
    model: str = "Qwen/Qwen2.5-Coder-7B-Instruct",
    usage: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "system_fingerprint": None,
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
    return body


def chat_text(text: str = "Try a cosine schedule.", **kw: Any) -> dict[str, Any]:
    # vLLM's message carries reasoning_content (null unless a reasoning parser is on) and tool_calls [].
    return chat_completion({"role": "assistant", "content": text, "tool_calls": [], "reasoning_content": None}, **kw)


def chat_tool_call(arguments: str | dict[str, Any] = '{"path": "train.py"}', **kw: Any) -> dict[str, Any]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return chat_completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_abc123", "type": "function", "function": {"name": "read_file", "arguments": raw}}
            ],
        },
        finish_reason="tool_calls",
        **kw,
    )
