"""anthropic:<model> on the wire: the real SDK sends its requests to a scripted peer (httpx2.MockTransport)."""

from __future__ import annotations

import httpx2
import pytest

from labmind.llm import (
    CallContext,
    LLMBadResponse,
    LLMConfig,
    LLMConfigError,
    LLMError,
    Message,
    ToolCall,
    ToolSpec,
    make_llm,
)
from labmind.llm.anthropic_provider import supports_thinking

from . import bodies
from .wire import Wire, error, ok

READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file of the task",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
RUN_CHECK = ToolSpec(name="run_check", description="Run the quick check", parameters={"type": "object"})
SPEC = "anthropic:claude-sonnet-4-6"


def llm(wire: Wire, config: LLMConfig, **kw):
    return make_llm(SPEC, config=config, http_client=wire.client(), **kw)


def test_plain_text_call_sends_cached_system_and_maps_the_answer(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_text("Lower the learning rate.", input_tokens=25, output_tokens=12)))
    out = llm(wire, keyed).complete(
        [Message("user", "Propose one idea.")], system="You are a research engineer.", max_tokens=300
    )

    assert out.text == "Lower the learning rate."
    assert out.stop_reason == "end"
    assert out.model == "claude-sonnet-4-6"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (25, 12)
    assert out.cost_usd == pytest.approx((25 * 3 + 12 * 15) / 1e6)
    request = wire.requests[0]
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert "sk-ant-test" in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
    body = wire.last_body
    assert body["model"] == "claude-sonnet-4-6"
    assert body["max_tokens"] == 300
    assert body["system"] == [
        {"type": "text", "text": "You are a research engineer.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Propose one idea."}]}]
    assert "tools" not in body and "thinking" not in body and "temperature" not in body


def test_tools_are_sent_with_a_cache_breakpoint_on_the_last_and_tool_use_comes_back(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_tool_use()))
    out = llm(wire, keyed).complete([Message("user", "Improve train.py")], tools=[READ_FILE, RUN_CHECK])

    assert out.stop_reason == "tool_use"
    assert out.text == "I'll read the training script first."
    assert out.tool_calls == (
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            name="read_file",
            arguments={"path": "train.py"},
            raw_arguments='{"path": "train.py"}',
        ),
    )
    tools = wire.last_body["tools"]
    assert [t["name"] for t in tools] == ["read_file", "run_check"]
    assert tools[0] == {
        "name": "read_file",
        "description": "Read a file of the task",
        "input_schema": READ_FILE.parameters,
    }
    assert tools[1]["cache_control"] == {"type": "ephemeral"}


def test_a_tool_loop_turn_sends_tool_use_and_error_results_in_one_user_turn(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_text("Done.")))
    call_a = ToolCall(id="toolu_a", name="read_file", arguments={"path": "train.py"}, raw_arguments="")
    call_b = ToolCall(id="toolu_b", name="run_check", arguments={}, raw_arguments="{}")
    llm(wire, keyed).complete(
        [
            Message("user", "Improve train.py"),
            Message("assistant", "Reading.", tool_calls=(call_a, call_b)),
            Message("tool", "lr = 1e-3", tool_call_id="toolu_a"),
            Message("tool", "check failed: exit 1", tool_call_id="toolu_b", is_error=True),
        ],
        tools=[READ_FILE, RUN_CHECK],
    )

    messages = wire.last_body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Reading."},
        {"type": "tool_use", "id": "toolu_a", "name": "read_file", "input": {"path": "train.py"}},
        {"type": "tool_use", "id": "toolu_b", "name": "run_check", "input": {}},
    ]
    results = messages[2]["content"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "toolu_a", "content": "lr = 1e-3"}
    # The newest block is a cache breakpoint: the next turn re-reads the conversation from the cache.
    assert results[1] == {
        "type": "tool_result",
        "tool_use_id": "toolu_b",
        "content": "check failed: exit 1",
        "is_error": True,
        "cache_control": {"type": "ephemeral"},
    }


def test_extended_thinking_is_sent_without_temperature_and_its_text_is_kept(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_thinking_tool_use()), ok(bodies.anthropic_text("Changed the schedule.")))
    client = llm(wire, keyed, thinking_budget=2048)
    first = client.complete([Message("user", "Improve train.py")], tools=[READ_FILE], max_tokens=1000, temperature=0.7)

    body = wire.bodies[0]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 1000 + 2048  # the answer keeps its allowance; thinking comes on top
    assert "temperature" not in body
    assert first.thinking == "The loss plateaus early; the schedule is the likely cause."
    assert first.tool_calls[0].id == "toolu_thinking_1"

    # The next turn of the loop hands the signed thinking block back before the tool_use, as the API requires.
    client.complete(
        [
            Message("user", "Improve train.py"),
            Message("assistant", first.text, tool_calls=first.tool_calls),
            Message("tool", "lr = 1e-3", tool_call_id="toolu_thinking_1"),
        ],
        tools=[READ_FILE],
        max_tokens=1000,
    )
    second = wire.bodies[1]
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assistant = second["messages"][1]["content"]
    assert assistant[0] == {
        "type": "thinking",
        "thinking": "The loss plateaus early; the schedule is the likely cause.",
        "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
    }
    assert assistant[1]["type"] == "tool_use"


def test_a_tool_turn_whose_thinking_is_unknown_is_sent_without_thinking(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_text("ok")))
    call = ToolCall(id="toolu_from_a_previous_process", name="read_file", arguments={"path": "a"})
    llm(wire, keyed, thinking_budget=2048).complete(
        [
            Message("user", "go"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "x", tool_call_id=call.id),
        ],
        max_tokens=500,
        temperature=0.3,
    )
    body = wire.last_body
    assert "thinking" not in body
    assert body["max_tokens"] == 500
    assert body["temperature"] == 0.3


def test_thinking_on_a_model_without_it_is_a_config_error(keyed: LLMConfig) -> None:
    with pytest.raises(LLMConfigError, match="no extended thinking"):
        make_llm("anthropic:claude-3-5-haiku-20241022", config=keyed, thinking_budget=2048)
    assert supports_thinking("claude-3-7-sonnet-20250219")
    assert supports_thinking("claude-opus-4-5")
    assert not supports_thinking("claude-3-opus-20240229")


def test_temperature_and_json_schema_go_into_the_body(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_text('{"idea": "warmup"}')))
    schema = {"type": "object", "properties": {"idea": {"type": "string"}}, "required": ["idea"]}
    out = llm(wire, keyed).complete([Message("user", "One idea as JSON")], temperature=0.2, json_schema=schema)

    body = wire.last_body
    assert body["temperature"] == 0.2
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["additionalProperties"] is False  # made strict by the SDK's transform_schema
    assert fmt["schema"]["required"] == ["idea"]
    assert out.text == '{"idea": "warmup"}'


def test_cache_tokens_are_mapped_and_counted_in_the_input(keyed: LLMConfig) -> None:
    wire = Wire(ok(bodies.anthropic_text(input_tokens=25, output_tokens=12, cache_read=1000, cache_write=200)))
    out = llm(wire, keyed).complete([Message("user", "hi")], system="long stable prompt")
    assert out.usage.input_tokens == 25 + 1000 + 200
    assert (out.usage.cache_read_tokens, out.usage.cache_write_tokens) == (1000, 200)
    assert out.cost_usd == pytest.approx((25 * 3 + 1000 * 0.3 + 200 * 3.75 + 12 * 15) / 1e6)


@pytest.mark.parametrize(
    ("api_stop", "expected"),
    [("end_turn", "end"), ("stop_sequence", "end"), ("max_tokens", "max_tokens"), ("refusal", "other")],
)
def test_stop_reasons_are_normalised(keyed: LLMConfig, api_stop: str, expected: str) -> None:
    wire = Wire(ok(bodies.anthropic_text(stop_reason=api_stop)))
    assert llm(wire, keyed).complete([Message("user", "hi")]).stop_reason == expected


def test_429_is_retried_after_the_wait_the_server_asked_for(keyed: LLMConfig) -> None:
    limited = error(
        429, bodies.anthropic_error("rate_limit_error", "Number of requests exceeded"), {"retry-after": "1"}
    )
    wire = Wire(limited, ok(bodies.anthropic_text("after the wait")))
    out = llm(wire, keyed, max_retries=2).complete([Message("user", "hi")])

    assert out.text == "after the wait"
    assert len(wire.requests) == 2
    # The SDK's own first backoff is at most 0.5 s; waiting a full second means it honoured retry-after.
    assert wire.gaps()[0] >= 1.0


def test_500_then_success_is_retried(keyed: LLMConfig) -> None:
    wire = Wire(error(500, bodies.anthropic_error("api_error", "Internal server error")), ok(bodies.anthropic_text()))
    out = llm(wire, keyed, max_retries=2).complete([Message("user", "hi")])
    assert out.stop_reason == "end"
    assert len(wire.requests) == 2


def test_persistent_500_becomes_llm_error_with_status_and_message(keyed: LLMConfig) -> None:
    fail = error(500, bodies.anthropic_error("api_error", "Internal server error"), {"retry-after-ms": "10"})
    wire = Wire(fail)
    with pytest.raises(LLMError) as caught:
        llm(wire, keyed, max_retries=2).complete([Message("user", "hi")])
    assert type(caught.value) is LLMError
    assert caught.value.status == 500
    assert "Internal server error" in str(caught.value)
    assert len(wire.requests) == 3  # the first try and two retries


def test_401_fails_at_once_with_a_hint_and_without_the_key(keyed: LLMConfig) -> None:
    wire = Wire(error(401, bodies.anthropic_error("authentication_error", "invalid x-api-key")))
    with pytest.raises(LLMError) as caught:
        llm(wire, keyed).complete([Message("user", "hi")])
    assert caught.value.status == 401
    assert "check the API key" in str(caught.value)
    assert "sk-ant-test" not in str(caught.value)
    assert len(wire.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        ok({"unexpected": True}),
        ok(bodies.anthropic_message([{"type": "text", "text": "hi"}]) | {"usage": None}),
        httpx2.Response(200, text="{not json", headers={"content-type": "application/json"}),
        httpx2.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"}),
    ],
    ids=["wrong-object", "no-usage", "broken-json", "html"],
)
def test_a_body_that_is_not_a_completion_raises_bad_response(keyed: LLMConfig, reply: httpx2.Response) -> None:
    with pytest.raises(LLMBadResponse):
        llm(Wire(reply), keyed).complete([Message("user", "hi")])


def test_tool_input_that_is_not_an_object_gives_no_arguments(keyed: LLMConfig) -> None:
    body = bodies.anthropic_tool_use()
    body["content"][1]["input"] = "path=train.py"
    out = llm(Wire(ok(body)), keyed).complete([Message("user", "hi")], tools=[READ_FILE])
    assert out.tool_calls[0].arguments is None
    assert out.tool_calls[0].raw_arguments == "path=train.py"


def test_network_failure_becomes_llm_error(keyed: LLMConfig) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(LLMError, match="cannot reach anthropic") as caught:
        llm(Wire(refuse), keyed, max_retries=0).complete([Message("user", "hi")], context=CallContext(role="ideate"))
    assert caught.value.status is None
