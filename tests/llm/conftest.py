"""Fixtures for the provider-layer tests. The `llm_server_url` fixture lives in tests/llm_server.py and reaches
these tests (and every other test) through tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmind.llm.config import LLMConfig

_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "LABMIND_OPENAI_COMPATIBLE_API_KEY",
    "LABMIND_CONFIG",
)


@pytest.fixture(autouse=True)
def clean_llm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real keys, base URLs or config file of the person running the tests leak in."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def keyed() -> LLMConfig:
    """A config holding test keys for both hosted providers."""
    return LLMConfig.from_dict(
        {"providers": {"anthropic": {"api_key": "sk-ant-test"}, "openai": {"api_key": "sk-openai-test"}}}
    )
