"""The provider layer against a real OpenAI-compatible server on loopback (llama-cpp-python + SmolLM2-135M).

Structure only: a 135M model's answers are not meant to be good, only well-formed.
"""

from __future__ import annotations

import json

import pytest

from labmind.llm import CallContext, LLMConfig, MemoryCallLog, Message, ToolSpec, make_llm

pytestmark = pytest.mark.llm_server

READ_FILE = ToolSpec(
    name="read_file",
    description="Read one file of the project and return its text",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
IDEA = {"type": "object", "properties": {"idea": {"type": "string"}}, "required": ["idea"]}


def client(url: str, log: MemoryCallLog | None = None):
    # Retries stay low so a broken server fails fast; the timeout is generous for a busy 2-core machine.
    return make_llm(f"openai-compatible:smollm2@{url}", config=LLMConfig(), log=log, max_retries=1, timeout_s=240)


def test_a_plain_call_counts_and_records_tokens_and_resumes_from_the_log(llm_server_url: str) -> None:
    log = MemoryCallLog()
    ctx = CallContext(role="ideate", experiment_id=1)
    out = client(llm_server_url, log).complete([Message("user", "Say hello.")], max_tokens=16, context=ctx)

    assert isinstance(out.text, str)
    assert out.usage.input_tokens > 0 and out.usage.output_tokens > 0
    assert out.stop_reason in ("end", "max_tokens")
    assert out.cost_usd == 0.0  # a loopback server is free
    [rec] = log.records
    assert rec.status == "ok"
    assert (rec.input_tokens, rec.output_tokens) == (out.usage.input_tokens, out.usage.output_tokens)
    assert rec.completion is not None and rec.completion["text"] == out.text

    again = client(llm_server_url, log).complete([Message("user", "Say hello.")], max_tokens=16, context=ctx)
    assert again.cached and again.text == out.text
    assert [r.status for r in log.records] == ["ok", "cached"]


def test_a_json_schema_call_gets_grammar_constrained_json(llm_server_url: str) -> None:
    llm = client(llm_server_url)
    ask = [Message("user", "Give one idea to speed up training, as JSON.")]
    out = llm.complete(ask, json_schema=IDEA, max_tokens=96)

    assert out.usage.output_tokens > 0
    # llama-cpp-python takes only the json_object form of response_format; labmind switched to it by itself.
    assert llm.client._json_object_form is True
    if out.stop_reason == "end":  # a finished answer is complete JSON of the schema's shape
        # llama.cpp's JSON grammar lets raw control characters (newlines) into strings: strict=False takes them.
        assert isinstance(json.loads(out.text, strict=False)["idea"], str)


def test_a_call_with_tools_is_handled_whatever_comes_back(llm_server_url: str) -> None:
    llm = client(llm_server_url)
    ask = [Message("user", "Read the file train.py, then say what it does.")]
    out = llm.complete(ask, tools=[READ_FILE], max_tokens=64)

    assert out.stop_reason in ("tool_use", "end", "max_tokens")
    if not out.tool_calls:
        assert isinstance(out.text, str)
        return
    assert out.stop_reason == "tool_use"
    for call in out.tool_calls:
        assert call.name == "read_file"
        assert call.id and isinstance(call.raw_arguments, str)
        assert call.arguments is None or isinstance(call.arguments, dict)
    # The server takes labmind's tool-loop turn back: the assistant's calls and a result for each.
    follow = [*ask, Message("assistant", out.text, tool_calls=out.tool_calls)]
    follow += [Message("tool", "print('training')", tool_call_id=c.id) for c in out.tool_calls]
    second = llm.complete(follow, tools=[READ_FILE], max_tokens=32)
    assert second.usage.input_tokens > out.usage.input_tokens
