"""make_llm: spec + config + arguments -> a Metered client over the right provider."""

from __future__ import annotations

import pytest

from labmind.llm import (
    Budget,
    LLMConfig,
    LLMConfigError,
    MemoryCallLog,
    Message,
    Metered,
    RateLimiter,
    SpecError,
    make_llm,
)
from labmind.llm.anthropic_provider import AnthropicProvider
from labmind.llm.openai_provider import OpenAICompatibleProvider, OpenAIResponsesProvider

from . import bodies
from .wire import Wire, ok


def test_each_spec_gets_its_provider_behind_metered(keyed: LLMConfig) -> None:
    cases = {
        "anthropic:claude-sonnet-4-6": AnthropicProvider,
        "openai:gpt-5": OpenAIResponsesProvider,
        "openai-compatible:llama3@http://localhost:11434/v1": OpenAICompatibleProvider,
    }
    for spec, provider in cases.items():
        llm = make_llm(spec, config=keyed)
        assert isinstance(llm, Metered)
        assert isinstance(llm.client, provider)
        assert llm.spec == spec
        assert isinstance(llm.log, MemoryCallLog)
        assert (llm.budget.usd_cap, llm.budget.tokens_per_experiment) == (None, None)
        llm.close()


def test_arguments_win_over_the_file_which_wins_over_defaults() -> None:
    config = LLMConfig.from_dict({"providers": {"anthropic": {"api_key": "k", "max_retries": 6, "timeout_s": 90}}})
    from_file = make_llm("anthropic:claude-sonnet-4-6", config=config).client
    assert (from_file.max_retries, from_file.timeout_s) == (6, 90.0)
    from_args = make_llm("anthropic:claude-sonnet-4-6", config=config, max_retries=0, timeout_s=5).client
    assert (from_args.max_retries, from_args.timeout_s) == (0, 5.0)
    default = make_llm(
        "anthropic:claude-sonnet-4-6", config=LLMConfig.from_dict({"providers": {"anthropic": {"api_key": "k"}}})
    )
    assert (default.client.max_retries, default.client.timeout_s) == (3, 600.0)


def test_a_configured_rate_limit_is_shared_by_clients_of_one_provider() -> None:
    config = LLMConfig.from_dict({"providers": {"openai": {"api_key": "k", "requests_per_minute": 77}}})
    a = make_llm("openai:gpt-5", config=config)
    b = make_llm("openai:gpt-5-mini", config=config)
    assert a.limiter is not None and a.limiter is b.limiter
    assert a.limiter.requests_per_minute == 77
    own = RateLimiter(5)
    assert make_llm("openai:gpt-5", config=config, limiter=own).limiter is own


def test_budget_and_log_are_used_as_given(keyed: LLMConfig) -> None:
    log = MemoryCallLog()
    budget = Budget(usd_cap=2.0, log=log)
    wire = Wire(ok(bodies.anthropic_text()))
    llm = make_llm("anthropic:claude-sonnet-4-6", config=keyed, budget=budget, log=log, http_client=wire.client())
    llm.complete([Message("user", "hi")])
    assert llm.budget is budget and llm.log is log
    assert len(log.records) == 1 and budget.spent_usd > 0


def test_the_key_does_not_show_in_the_client_repr(keyed: LLMConfig) -> None:
    llm = make_llm("anthropic:claude-sonnet-4-6", config=keyed)
    assert "sk-ant-test" not in repr(llm) and "sk-ant-test" not in repr(llm.client)


@pytest.mark.parametrize(
    ("spec", "kw", "error", "problem"),
    [
        ("anthropic:claude-sonnet-4-6", {}, LLMConfigError, "set ANTHROPIC_API_KEY"),
        ("openai:gpt-5", {}, LLMConfigError, "set OPENAI_API_KEY"),
        ("gpt-5", {}, SpecError, "no provider prefix"),
        ("openai-compatible:m@http://x:1/v1", {"thinking_budget": 2048}, LLMConfigError, "anthropic:<model> only"),
        ("openai-compatible:m@http://x:1/v1", {"reasoning_effort": "low"}, LLMConfigError, "openai:<model> only"),
        ("openai-compatible:m@http://x:1/v1", {"max_retries": -1}, LLMConfigError, "max_retries must be"),
        ("openai-compatible:m@http://x:1/v1", {"timeout_s": 0}, LLMConfigError, "timeout_s must be"),
    ],
)
def test_bad_requests_for_a_client_are_clear_errors(spec: str, kw: dict, error: type, problem: str) -> None:
    with pytest.raises(error) as caught:
        make_llm(spec, config=LLMConfig(), **kw)
    assert problem in str(caught.value)


def test_importing_the_package_loads_no_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, labmind.llm; print('anthropic' in sys.modules, 'openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("spec", "body"),
    [
        ("anthropic:claude-sonnet-4-6", bodies.anthropic_text("hi")),
        ("openai:gpt-5", bodies.openai_response([bodies.openai_message_item("hi")])),
        ("openai-compatible:llama3@http://localhost:11434/v1", bodies.chat_text("hi")),
    ],
)
def test_every_provider_opens_its_sdk_with_the_connection_given(spec: str, body: dict) -> None:
    # One constructor path (SDKProvider) serves all three: the key, the HTTP client and the timeout reach the wire.
    config = LLMConfig.from_dict({"providers": {spec.split(":")[0]: {"api_key": "sk-conn-test"}}})
    wire = Wire(ok(body))
    llm = make_llm(spec, config=config, http_client=wire.client(), max_retries=0, timeout_s=7)
    assert llm.complete([Message("user", "hi")]).text == "hi"
    (request,) = wire.requests
    assert "sk-conn-test" in request.headers.get("x-api-key", "") + request.headers.get("authorization", "")
    assert request.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 7.0, "pool": 7.0}
    assert (llm.client.max_retries, llm.client.timeout_s) == (0, 7.0)
