"""LLM settings: API keys, per-provider options and price overrides, from the environment and a TOML file.

The file is `$LABMIND_CONFIG`, else `~/.config/labmind/config.toml` (a missing default file is fine):

    [providers.anthropic]
    api_key = "sk-ant-..."          # ANTHROPIC_API_KEY wins over this
    thinking_budget = 8000          # extended thinking, tokens
    [providers.openai]
    reasoning_effort = "medium"
    [providers.openai-compatible]
    api_key = "..."                 # only servers that want one (OpenRouter, DeepSeek)
    [prices."claude-sonnet-4-6"]
    input_per_mtok = 3.0
    output_per_mtok = 15.0

Only `[providers]` and `[prices]` are read here; other tables belong to other parts of labmind.
Keys live in memory only as `Secret`s, which never print; nothing here writes them anywhere.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labmind.llm.spec import PROVIDERS, Provider

log = logging.getLogger(__name__)

KEY_ENV: dict[str, str] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    # Never OPENAI_API_KEY: that would send an OpenAI key to whatever server the spec names.
    "openai-compatible": "LABMIND_OPENAI_COMPATIBLE_API_KEY",
}
# Local servers ignore the key, but the SDK insists on one.
DUMMY_KEY = "not-needed"

_COMMON_KEYS = {"api_key", "max_retries", "timeout_s", "requests_per_minute", "tokens_per_minute"}
_PROVIDER_KEYS: dict[str, set[str]] = {
    "anthropic": _COMMON_KEYS | {"thinking_budget"},
    "openai": _COMMON_KEYS | {"reasoning_effort"},
    "openai-compatible": _COMMON_KEYS,
}
_PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
MIN_THINKING_BUDGET = 1024  # the Messages API's floor for budget_tokens


class LLMConfigError(ValueError):
    """The LLM configuration (file, environment or arguments) is unusable; the message says how to fix it."""


class Secret:
    """An API key that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ProviderSettings:
    api_key: Secret | None = field(default=None, repr=False)
    max_retries: int | None = None
    timeout_s: float | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    thinking_budget: int | None = None  # anthropic only
    reasoning_effort: str | None = None  # openai only


@dataclass(frozen=True)
class PriceOverride:
    """Dollars per million tokens. Cache prices default to the input price when not given."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("LABMIND_CONFIG"):
        return Path(env["LABMIND_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "labmind" / "config.toml"


@dataclass(frozen=True)
class LLMConfig:
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    prices: Mapping[str, PriceOverride] = field(default_factory=dict)
    source: Path | None = None  # the file these came from, for error messages

    @classmethod
    def load(cls, path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> LLMConfig:
        """Read the config file. An explicitly named file (argument or $LABMIND_CONFIG) must exist."""
        env = os.environ if env is None else env
        explicit = path is not None or bool(env.get("LABMIND_CONFIG"))
        file = Path(path).expanduser() if path is not None else default_config_path(env)
        if not file.exists():
            if explicit:
                raise LLMConfigError(
                    f"LLM config file {file} does not exist; create it or unset LABMIND_CONFIG to use "
                    f"~/.config/labmind/config.toml"
                )
            return cls(source=None)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise LLMConfigError(f"cannot read LLM config file {file}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise LLMConfigError(f"LLM config file {file} is not valid TOML: {e}") from e
        config = cls.from_dict(data, source=file)
        if any(s.api_key for s in config.providers.values()):
            _warn_if_readable_by_others(file)
        return config

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: Path | None = None) -> LLMConfig:
        where = str(source) if source else "the LLM config"
        providers_raw = data.get("providers", {})
        if not isinstance(providers_raw, Mapping):
            raise LLMConfigError(f"{where}: [providers] must be a table of provider tables")
        providers: dict[str, ProviderSettings] = {}
        for name, table in providers_raw.items():
            if name not in PROVIDERS:
                raise LLMConfigError(f"{where}: unknown provider [providers.{name}]; use one of {', '.join(PROVIDERS)}")
            providers[name] = _provider_settings(name, table, where)
        prices_raw = data.get("prices", {})
        if not isinstance(prices_raw, Mapping):
            raise LLMConfigError(f'{where}: [prices] must be a table of [prices."<model>"] tables')
        prices = {model: _price(model, table, where) for model, table in prices_raw.items()}
        return cls(providers=providers, prices=prices, source=source)

    def settings(self, provider: Provider) -> ProviderSettings:
        return self.providers.get(provider, ProviderSettings())

    def api_key(self, provider: Provider, *, env: Mapping[str, str] | None = None) -> str:
        """The key for `provider`: its environment variable, else the file; openai-compatible falls back to a dummy."""
        env = os.environ if env is None else env
        var = KEY_ENV[provider]
        if env.get(var, "").strip():
            return env[var].strip()
        stored = self.settings(provider).api_key
        if stored is not None and stored.reveal().strip():
            return stored.reveal().strip()
        if provider == "openai-compatible":
            return DUMMY_KEY
        file = self.source or default_config_path(env)
        raise LLMConfigError(
            f"no API key for {provider}: set {var}, or add api_key under [providers.{provider}] in {file}"
        )


def _provider_settings(name: str, table: Any, where: str) -> ProviderSettings:
    if not isinstance(table, Mapping):
        raise LLMConfigError(f"{where}: [providers.{name}] must be a table")
    allowed = _PROVIDER_KEYS[name]
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise LLMConfigError(
            f"{where}: [providers.{name}] has unknown key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(sorted(allowed))}"
        )
    ctx = f"{where}: [providers.{name}]"
    api_key = table.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        raise LLMConfigError(f"{ctx} api_key must be a string")
    effort = table.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise LLMConfigError(f"{ctx} reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, not {effort!r}")
    budget = _int(table, "thinking_budget", ctx, minimum=MIN_THINKING_BUDGET)
    return ProviderSettings(
        api_key=Secret(api_key) if api_key else None,
        max_retries=_int(table, "max_retries", ctx, minimum=0),
        timeout_s=_positive(table, "timeout_s", ctx),
        requests_per_minute=_positive(table, "requests_per_minute", ctx, minimum=1),
        tokens_per_minute=_positive(table, "tokens_per_minute", ctx),
        thinking_budget=budget,
        reasoning_effort=effort,
    )


def _price(model: str, table: Any, where: str) -> PriceOverride:
    ctx = f'{where}: [prices."{model}"]'
    if not isinstance(table, Mapping):
        raise LLMConfigError(f"{ctx} must be a table with {', '.join(_PRICE_KEYS)}")
    unknown = sorted(set(table) - set(_PRICE_KEYS))
    if unknown:
        raise LLMConfigError(f"{ctx} has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_PRICE_KEYS)}")
    for required in _PRICE_KEYS[:2]:
        if required not in table:
            raise LLMConfigError(f"{ctx} needs {required} (dollars per million tokens)")
    values = {}
    for key in _PRICE_KEYS:
        value = table.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise LLMConfigError(f"{ctx} {key} must be a number >= 0 (dollars per million tokens), not {value!r}")
        values[key] = float(value)
    return PriceOverride(**values)


def _int(table: Mapping[str, Any], key: str, ctx: str, *, minimum: int) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LLMConfigError(f"{ctx} {key} must be a whole number >= {minimum}, not {value!r}")
    return value


def _positive(table: Mapping[str, Any], key: str, ctx: str, *, minimum: float | None = None) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    bad = isinstance(value, bool) or not isinstance(value, int | float)
    if bad or (value < minimum if minimum is not None else value <= 0):
        bound = f">= {minimum:g}" if minimum is not None else "> 0"
        raise LLMConfigError(f"{ctx} {key} must be a number {bound}, not {value!r}")
    return float(value)


def _warn_if_readable_by_others(file: Path) -> None:
    try:
        mode = file.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds API keys and is readable by other users; run: chmod 600 %s", file, file)
