"""Brain specs: the valid forms parse; anything else says what the valid forms are."""

from __future__ import annotations

import pytest

from labmind.llm import ProviderSpec, SpecError, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("anthropic:claude-sonnet-4-6", ProviderSpec("anthropic", "claude-sonnet-4-6")),
        ("  openai:gpt-5 ", ProviderSpec("openai", "gpt-5")),
        (
            "openai-compatible:Qwen/Qwen2.5-Coder-7B-Instruct@http://127.0.0.1:8000/v1/",
            ProviderSpec("openai-compatible", "Qwen/Qwen2.5-Coder-7B-Instruct", "http://127.0.0.1:8000/v1"),
        ),
        (
            "openai-compatible:anthropic/claude-sonnet-4.5@https://openrouter.ai/api/v1",
            ProviderSpec("openai-compatible", "anthropic/claude-sonnet-4.5", "https://openrouter.ai/api/v1"),
        ),
        (
            "openai-compatible:qwen3:8b@http://user:pw@gpu-box:11434/v1",
            ProviderSpec("openai-compatible", "qwen3:8b", "http://user:pw@gpu-box:11434/v1"),
        ),
    ],
)
def test_valid_specs_parse(text: str, expected: ProviderSpec) -> None:
    assert parse_spec(text) == expected


def test_a_spec_prints_back_as_itself() -> None:
    for text in ("anthropic:claude-opus-4-5", "openai-compatible:llama3@http://localhost:11434/v1"):
        assert str(parse_spec(text)) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("claude-sonnet-4-6", "has no provider prefix"),
        ("gemini:flash", "unknown provider 'gemini'"),
        ("anthropic:", "has no model"),
        ("openai:gpt 5", "contains whitespace"),
        ("openai:gpt-5@http://localhost:8000/v1", "only for openai-compatible"),
        ("openai-compatible:llama3", "needs a model and a base URL"),
        ("openai-compatible:@http://localhost:8000/v1", "needs a model and a base URL"),
        ("openai-compatible:llama3@ftp://host/v1", "must be an http(s) URL with a host"),
        ("openai-compatible:llama3@http://", "must be an http(s) URL with a host"),
    ],
)
def test_malformed_specs_say_what_is_wrong_and_the_valid_forms(text: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert problem in str(caught.value)


def test_an_unknown_form_lists_every_valid_one() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("ollama:llama3")
    for form in ("anthropic:<model>", "openai:<model>", "openai-compatible:<model>@<base_url>"):
        assert form in str(caught.value)
