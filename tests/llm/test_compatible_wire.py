"""openai-compatible:<model>@<url> on the wire: Chat Completions through the real SDK against a scripted peer."""

from __future__ import annotations

import httpx2
import pytest

from labmind.llm import LLMBadResponse, LLMConfig, LLMError, Message, ToolCall, ToolSpec, make_llm

from . import bodies
from .wire import Wire, error, ok

URL = "http://127.0.0.1:8000/v1"
SPEC = f"openai-compatible:Qwen/Qwen2.5-Coder-7B-Instruct@{URL}"
READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file of the task",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
SCHEMA = {"type": "object", "properties": {"idea": {"type": "string"}}, "required": ["idea"]}


def llm(wire: Wire, spec: str = SPEC, config: LLMConfig | None = None, **kw):
    return make_llm(spec, config=config or LLMConfig(), http_client=wire.client(), **kw)


def test_plain_text_call_uses_chat_completions_with_a_dummy_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")  # must never travel to another server
    wire = Wire(ok(bodies.chat_text("Try a cosine schedule.", prompt_tokens=19, completion_tokens=10)))
    out = llm(wire).complete([Message("user", "One idea")], system="Be brief.", max_tokens=64, temperature=0.0)

    assert out.text == "Try a cosine schedule."
    assert out.stop_reason == "end"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (19, 10)
    assert out.cost_usd == 0.0  # a server on this machine costs nothing
    request = wire.requests[0]
    assert str(request.url) == f"{URL}/chat/completions"
    assert request.headers["authorization"] == "Bearer not-needed"
    assert wire.last_body == {
        "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "One idea"}],
        "max_tokens": 64,
        "temperature": 0.0,
    }


def test_a_key_from_the_config_file_is_sent() -> None:
    config = LLMConfig.from_dict({"providers": {"openai-compatible": {"api_key": "sk-or-test"}}})
    wire = Wire(ok(bodies.chat_text()))
    llm(wire, config=config).complete([Message("user", "hi")])
    assert wire.requests[0].headers["authorization"] == "Bearer sk-or-test"


def test_tools_and_tool_calls() -> None:
    wire = Wire(ok(bodies.chat_tool_call('{"path": "train.py"}')))
    out = llm(wire).complete([Message("user", "Improve train.py")], tools=[READ_FILE])

    assert out.stop_reason == "tool_use"
    assert out.text == ""
    assert out.tool_calls == (
        ToolCall(
            id="call_abc123", name="read_file", arguments={"path": "train.py"}, raw_arguments='{"path": "train.py"}'
        ),
    )
    body = wire.last_body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file of the task",
                "parameters": READ_FILE.parameters,
            },
        }
    ]
    assert body["tool_choice"] == "auto"


def test_a_tool_loop_turn_is_sent_as_chat_messages() -> None:
    wire = Wire(ok(bodies.chat_text("Done.")))
    call = ToolCall(id="call_1", name="read_file", arguments={"path": "a.py"})
    llm(wire).complete(
        [
            Message("user", "go"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "Traceback ...", tool_call_id="call_1", is_error=True),
        ]
    )
    assert wire.last_body["messages"] == [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "ERROR: Traceback ..."},
    ]


def test_raw_newlines_inside_argument_strings_still_parse() -> None:
    out = llm(Wire(ok(bodies.chat_tool_call('{"path": "train.py\nold"}')))).complete([Message("user", "hi")])
    assert out.tool_calls[0].arguments == {"path": "train.py\nold"}


@pytest.mark.parametrize("raw", ['{"path": ', "[1, 2]", "null", ""])
def test_tool_arguments_that_are_not_a_json_object_give_none(raw: str) -> None:
    out = llm(Wire(ok(bodies.chat_tool_call(raw)))).complete([Message("user", "hi")], tools=[READ_FILE])
    assert out.tool_calls[0].arguments is None
    assert out.tool_calls[0].raw_arguments == raw


def test_json_schema_goes_into_response_format() -> None:
    wire = Wire(ok(bodies.chat_text('{"idea": "warmup"}')))
    llm(wire).complete([Message("user", "hi")], json_schema=SCHEMA)
    assert wire.last_body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": False},
    }


def test_a_server_without_json_schema_gets_the_json_object_form_from_then_on() -> None:
    # llama-cpp-python's reply to response_format json_schema (it answers validation errors with 500).
    rejection = error(
        500,
        {
            "error": {
                "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
                "'type'), 'msg': \"Input should be 'text' or 'json_object'\"}",
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        },
    )
    wire = Wire(rejection, ok(bodies.chat_text('{"idea": "a"}')), ok(bodies.chat_text('{"idea": "b"}')))
    client = llm(wire, max_retries=0)
    assert client.complete([Message("user", "hi")], json_schema=SCHEMA).text == '{"idea": "a"}'
    assert client.complete([Message("user", "again")], json_schema=SCHEMA).text == '{"idea": "b"}'

    formats = [b["response_format"] for b in wire.bodies]
    assert formats[0]["type"] == "json_schema"
    assert formats[1] == formats[2] == {"type": "json_object", "schema": SCHEMA}


def test_reasoning_content_becomes_thinking() -> None:
    body = bodies.chat_completion({"role": "assistant", "content": "42", "reasoning_content": "6 times 7"})
    out = llm(Wire(ok(body))).complete([Message("user", "hi")])
    assert out.thinking == "6 times 7"


def test_a_server_that_reports_no_usage_gives_zero_tokens() -> None:
    out = llm(Wire(ok(bodies.chat_text(usage=False)))).complete([Message("user", "hi")])
    assert out.usage.total == 0
    assert out.text == "Try a cosine schedule."


@pytest.mark.parametrize(("finish", "expected"), [("length", "max_tokens"), ("content_filter", "other")])
def test_finish_reasons_are_normalised(finish: str, expected: str) -> None:
    assert (
        llm(Wire(ok(bodies.chat_text(finish_reason=finish)))).complete([Message("user", "x")]).stop_reason == expected
    )


def test_a_hosted_server_is_priced_by_its_base_url() -> None:
    spec = "openai-compatible:deepseek-chat@https://api.deepseek.com/v1"
    body = bodies.chat_text(prompt_tokens=1000, completion_tokens=1000, model="deepseek-chat")
    out = llm(Wire(ok(body)), spec).complete([Message("user", "hi")])
    assert out.cost_usd is not None and out.cost_usd > 0


def test_429_is_retried_after_the_wait_the_server_asked_for() -> None:
    limited = error(
        429,
        {"object": "error", "message": "too many requests", "type": "RateLimitError", "code": 429},
        {"retry-after": "1"},
    )
    wire = Wire(limited, ok(bodies.chat_text("ok")))
    assert llm(wire, max_retries=1).complete([Message("user", "hi")]).text == "ok"
    assert len(wire.requests) == 2
    assert wire.gaps()[0] >= 1.0


def test_500_then_success_is_retried() -> None:
    wire = Wire(error(500, "Internal Server Error"), ok(bodies.chat_text("ok")))
    assert llm(wire, max_retries=1).complete([Message("user", "hi")]).text == "ok"


def test_persistent_500_becomes_llm_error() -> None:
    wire = Wire(error(503, "upstream busy", {"retry-after-ms": "10"}))
    with pytest.raises(LLMError) as caught:
        llm(wire, max_retries=2).complete([Message("user", "hi")])
    assert caught.value.status == 503
    assert "upstream busy" in str(caught.value)
    assert len(wire.requests) == 3


def test_a_server_that_is_down_is_an_llm_error() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(LLMError) as caught:
        llm(Wire(refuse), max_retries=0).complete([Message("user", "hi")])
    assert f"cannot reach openai-compatible server {URL}" in str(caught.value)
    assert "Connection refused" in str(caught.value)


@pytest.mark.parametrize(
    "reply",
    [
        ok({"object": "chat.completion", "choices": []}),
        ok({"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop"}]}),
        ok(bodies.chat_completion({"role": "assistant", "content": ["not", "text"]})),
        ok({"object": "chat.completion", "choices": [{"index": 0, "message": "hello", "finish_reason": "stop"}]}),
        httpx2.Response(200, text="<html>502 Bad Gateway</html>", headers={"content-type": "text/html"}),
    ],
    ids=["no-choices", "no-message", "content-not-text", "message-not-an-object", "html"],
)
def test_a_body_that_is_not_a_completion_raises_bad_response(reply: httpx2.Response) -> None:
    with pytest.raises(LLMBadResponse):
        llm(Wire(reply)).complete([Message("user", "hi")])
