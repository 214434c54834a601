"""openai:<model> on the wire: the Responses API through the real SDK against a scripted peer."""

from __future__ import annotations

import httpx2
import pytest

from labmind.llm import LLMBadResponse, LLMConfig, LLMError, Message, ToolCall, ToolSpec, make_llm
from labmind.llm.openai_provider import is_reasoning_model, is_strict_schema

from . import bodies
from .wire import Wire, error, ok

READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file of the task",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    },
)
LOOSE = ToolSpec(name="note", description="Take a note", parameters={"type": "object", "properties": {"t": {}}})


def llm(wire: Wire, config: LLMConfig, spec: str = "openai:gpt-5", **kw):
    return make_llm(spec, config=config, http_client=wire.client(), **kw)


def test_plain_text_call_uses_the_responses_api(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.openai_response([bodies.openai_message_item("Use a cosine schedule.")])))
    out = llm(wire, keyed).complete(
        [Message("user", "One idea")], system="You are a research engineer.", max_tokens=500, temperature=0.7
    )

    assert out.text == "Use a cosine schedule."
    assert out.stop_reason == "end"
    assert out.model == "gpt-5-2025-08-07"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (36, 87)
    assert out.cost_usd == pytest.approx((36 * 1.25 + 87 * 10) / 1e6)
    request = wire.requests[0]
    assert request.url == "https://api.openai.com/v1/responses"
    assert request.headers["authorization"] == "Bearer sk-openai-test"
    body = wire.last_body
    assert body == {
        "model": "gpt-5",
        "input": [{"role": "user", "content": "One idea"}],
        "instructions": "You are a research engineer.",
        "max_output_tokens": 500,
        "store": False,
    }  # gpt-5 is a reasoning model: the temperature is left out


def test_a_non_reasoning_model_gets_its_temperature(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.openai_response([bodies.openai_message_item("ok")], model="gpt-4.1-2025-04-14")))
    llm(wire, keyed, "openai:gpt-4.1").complete([Message("user", "hi")], temperature=0.2)
    assert wire.last_body["temperature"] == 0.2
    assert is_reasoning_model("o3-mini") and is_reasoning_model("gpt-5-mini")
    assert not is_reasoning_model("gpt-5-chat-latest") and not is_reasoning_model("gpt-4o")


def test_reasoning_effort_and_summary_become_request_and_thinking(keyed: LLMConfig) -> None:
    output = [bodies.openai_reasoning_item("Compare schedules first."), bodies.openai_message_item("Cosine.")]
    wire = Wire(ok(bodies.openai_response(output)))
    out = llm(wire, keyed, reasoning_effort="high").complete([Message("user", "hi")])
    assert wire.last_body["reasoning"] == {"effort": "high"}
    assert out.thinking == "Compare schedules first."
    assert out.text == "Cosine."


def test_function_tools_and_calls(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.openai_response([bodies.openai_function_call_item('{"path": "train.py"}')])))
    out = llm(wire, keyed).complete([Message("user", "Improve train.py")], tools=[READ_FILE, LOOSE])

    assert out.stop_reason == "tool_use"
    assert out.tool_calls == (
        ToolCall(
            id="call_12345xyz", name="read_file", arguments={"path": "train.py"}, raw_arguments='{"path": "train.py"}'
        ),
    )
    assert wire.last_body["tools"] == [
        {
            "type": "function",
            "name": "read_file",
            "description": "Read a file of the task",
            "parameters": READ_FILE.parameters,
            "strict": True,  # closed and fully required: OpenAI can enforce it
        },
        {
            "type": "function",
            "name": "note",
            "description": "Take a note",
            "parameters": LOOSE.parameters,
            "strict": False,
        },
    ]


def test_a_tool_loop_turn_sends_function_call_items_and_outputs(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.openai_response([bodies.openai_message_item("Done.")])))
    call = ToolCall(id="call_1", name="read_file", arguments={"path": "a.py"}, raw_arguments='{"path":"a.py"}')
    llm(wire, keyed).complete(
        [
            Message("user", "go"),
            Message("assistant", "Reading a.py.", tool_calls=(call,)),
            Message("tool", "no such file", tool_call_id="call_1", is_error=True),
        ],
        tools=[READ_FILE],
    )
    assert wire.last_body["input"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Reading a.py."},
        {"type": "function_call", "call_id": "call_1", "name": "read_file", "arguments": '{"path":"a.py"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "ERROR: no such file"},
    ]


def test_invalid_tool_arguments_give_none_and_keep_the_raw_text(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.openai_response([bodies.openai_function_call_item('{"path": "train.py"')])))
    out = llm(wire, keyed).complete([Message("user", "hi")], tools=[READ_FILE])
    assert out.tool_calls[0].arguments is None
    assert out.tool_calls[0].raw_arguments == '{"path": "train.py"'


def test_json_schema_goes_into_text_format(keyed: LLMConfig) -> None:
    schema = {
        "type": "object",
        "properties": {"idea": {"type": "string"}},
        "required": ["idea"],
        "additionalProperties": False,
    }
    wire = Wire(ok(bodies.openai_response([bodies.openai_message_item('{"idea": "warmup"}')])))
    llm(wire, keyed).complete([Message("user", "hi")], json_schema=schema)
    assert wire.last_body["text"] == {
        "format": {"type": "json_schema", "name": "response", "schema": schema, "strict": True}
    }
    assert not is_strict_schema({"type": "object", "properties": {"a": {"type": "string"}}})


def test_output_cut_by_max_tokens_is_reported(keyed: LLMConfig) -> None:
    body = bodies.openai_response(
        [bodies.openai_message_item("partial")], status="incomplete", incomplete="max_output_tokens"
    )
    out = llm(Wire(ok(body)), keyed).complete([Message("user", "hi")])
    assert out.stop_reason == "max_tokens"
    assert out.text == "partial"


def test_cached_prompt_tokens_are_mapped(keyed: LLMConfig) -> None:
    body = bodies.openai_response([bodies.openai_message_item("ok")], input_tokens=2000, output_tokens=10, cached=1536)
    out = llm(Wire(ok(body)), keyed).complete([Message("user", "hi")])
    assert out.usage.cache_read_tokens == 1536
    assert out.cost_usd == pytest.approx(((2000 - 1536) * 1.25 + 1536 * 0.125 + 10 * 10) / 1e6)


def test_openai_base_url_in_the_environment_is_not_used(keyed: LLMConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://evil.example/v1")
    wire = Wire(ok(bodies.openai_response([bodies.openai_message_item("ok")])))
    llm(wire, keyed).complete([Message("user", "hi")])
    assert wire.requests[0].url.host == "api.openai.com"


def test_429_is_retried_after_the_wait_the_server_asked_for(keyed: LLMConfig) -> None:
    limited = error(
        429,
        bodies.openai_error("Rate limit reached for gpt-5", "requests", "rate_limit_exceeded"),
        {"retry-after": "1"},
    )
    wire = Wire(limited, ok(bodies.openai_response([bodies.openai_message_item("after the wait")])))
    out = llm(wire, keyed, max_retries=2).complete([Message("user", "hi")])
    assert out.text == "after the wait"
    assert len(wire.requests) == 2
    assert wire.gaps()[0] >= 1.0  # the SDK's own first backoff is at most 0.5 s


def test_500_then_success_is_retried(keyed: LLMConfig) -> None:
    wire = Wire(
        error(500, bodies.openai_error("The server had an error")),
        ok(bodies.openai_response([bodies.openai_message_item("ok")])),
    )
    assert llm(wire, keyed, max_retries=1).complete([Message("user", "hi")]).text == "ok"
    assert len(wire.requests) == 2


def test_persistent_500_becomes_llm_error(keyed: LLMConfig) -> None:
    wire = Wire(
        error(500, bodies.openai_error("The server had an error processing your request."), {"retry-after-ms": "10"})
    )
    with pytest.raises(LLMError) as caught:
        llm(wire, keyed, max_retries=2).complete([Message("user", "hi")])
    assert caught.value.status == 500
    assert "The server had an error processing your request." in str(caught.value)
    assert len(wire.requests) == 3


def test_a_failed_response_object_is_an_llm_error(keyed: LLMConfig) -> None:
    body = bodies.openai_response([], status="failed") | {"error": {"code": "server_error", "message": "model crashed"}}
    with pytest.raises(LLMError, match="model crashed"):
        llm(Wire(ok(body)), keyed).complete([Message("user", "hi")])


@pytest.mark.parametrize(
    "reply",
    [
        ok({"object": "list", "data": []}),
        ok(bodies.openai_response([]) | {"output": "nothing"}),
        ok(bodies.openai_response([bodies.openai_message_item("x")]) | {"usage": None}),
        httpx2.Response(200, text="{truncated", headers={"content-type": "application/json"}),
    ],
    ids=["wrong-object", "output-not-a-list", "no-usage", "broken-json"],
)
def test_a_body_that_is_not_a_completion_raises_bad_response(keyed: LLMConfig, reply: httpx2.Response) -> None:
    with pytest.raises(LLMBadResponse):
        llm(Wire(reply), keyed).complete([Message("user", "hi")])
