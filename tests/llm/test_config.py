"""The LLM config: keys from the environment or the file, per-provider settings, prices, clear errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from labmind.llm import LLMConfig, LLMConfigError, PriceOverride
from labmind.llm.config import DUMMY_KEY, Secret, default_config_path

FILE = """
[providers.anthropic]
api_key = "sk-ant-from-file"
thinking_budget = 4096
max_retries = 5
requests_per_minute = 50

[providers.openai]
reasoning_effort = "low"
timeout_s = 120

[providers.openai-compatible]
api_key = "sk-or-from-file"

[prices."smollm2"]
input_per_mtok = 0.1
output_per_mtok = 0.2

[library]
path = "ignored: another part's table"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_the_file_named_by_labmind_config_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABMIND_CONFIG", str(write(tmp_path, FILE)))
    config = LLMConfig.load()
    anthropic = config.settings("anthropic")
    assert (anthropic.thinking_budget, anthropic.max_retries, anthropic.requests_per_minute) == (4096, 5, 50.0)
    assert config.settings("openai").reasoning_effort == "low"
    assert config.settings("openai").timeout_s == 120.0
    assert config.prices == {"smollm2": PriceOverride(input_per_mtok=0.1, output_per_mtok=0.2)}
    assert config.api_key("anthropic") == "sk-ant-from-file"
    assert config.api_key("openai-compatible") == "sk-or-from-file"


def test_the_default_file_lives_under_the_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "xdg-config"
    (home / "labmind").mkdir(parents=True)
    (home / "labmind" / "config.toml").write_text('[providers.openai]\napi_key = "sk-from-default"\n')
    assert default_config_path() == home / "labmind" / "config.toml"
    assert LLMConfig.load().api_key("openai") == "sk-from-default"


def test_a_missing_default_file_is_fine_but_a_named_one_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert LLMConfig.load() == LLMConfig()
    monkeypatch.setenv("LABMIND_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(LLMConfigError, match=r"nope\.toml does not exist"):
        LLMConfig.load()


def test_the_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = LLMConfig.load(write(tmp_path, FILE))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    monkeypatch.setenv("LABMIND_OPENAI_COMPATIBLE_API_KEY", "sk-compat-env")
    assert config.api_key("anthropic") == "sk-ant-from-env"
    assert config.api_key("openai-compatible") == "sk-compat-env"


def test_a_missing_key_names_the_variable_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(LLMConfigError) as caught:
        LLMConfig().api_key("openai")
    message = str(caught.value)
    assert "no API key for openai: set OPENAI_API_KEY" in message
    assert "[providers.openai]" in message and str(tmp_path / "xdg-config" / "labmind" / "config.toml") in message


def test_compatible_servers_need_no_key_and_never_get_the_openai_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    assert LLMConfig().api_key("openai-compatible") == DUMMY_KEY


def test_keys_never_show_in_reprs(tmp_path: Path) -> None:
    config = LLMConfig.load(write(tmp_path, FILE))
    shown = repr(config) + str(config) + repr(config.settings("anthropic")) + str(Secret("sk-x"))
    assert "sk-ant-from-file" not in shown and "sk-or-from-file" not in shown and "sk-x" not in shown
    assert Secret("sk-x").reveal() == "sk-x"


def test_a_key_file_others_can_read_gets_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        LLMConfig.load(write(tmp_path, FILE, mode=0o644))
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    assert not any("sk-ant" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[providers.anthropic\n", "is not valid TOML"),
        ("[providers.gemini]\napi_key='x'\n", "unknown provider [providers.gemini]"),
        ("[providers.openai]\napi-key='x'\n", "unknown key(s) api-key; valid keys:"),
        ("[providers.openai]\nthinking_budget=2000\n", "unknown key(s) thinking_budget"),
        ("[providers.anthropic]\nthinking_budget=100\n", "thinking_budget must be a whole number >= 1024"),
        ("[providers.anthropic]\nmax_retries=-1\n", "max_retries must be a whole number >= 0"),
        ("[providers.anthropic]\nrequests_per_minute=0.5\n", "requests_per_minute must be a number >= 1"),
        ("[providers.openai]\ntimeout_s=0\n", "timeout_s must be a number > 0"),
        ("[providers.openai]\nreasoning_effort='huge'\n", "reasoning_effort must be one of"),
        ("[providers.openai]\napi_key=42\n", "api_key must be a string"),
        ('[prices."m"]\ninput_per_mtok=1\n', "needs output_per_mtok"),
        ('[prices."m"]\ninput_per_mtok=1\noutput_per_mtok=-2\n', "output_per_mtok must be a number >= 0"),
        ('[prices."m"]\ninput_per_mtok=1\noutput_per_mtok=2\ncached=1\n', "unknown key(s) cached"),
        ("providers = 3\n", "[providers] must be a table"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(LLMConfigError) as caught:
        LLMConfig.load(path)
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)
