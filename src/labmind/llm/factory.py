"""`make_llm`: from a brain spec to a ready, metered LLMClient.

Arguments win over the config file, which wins over the defaults. Rate limits from the config file are
shared by every client of the same provider in this process, because providers count them per account,
not per client.
"""

from __future__ import annotations

import threading
from typing import Any

from labmind.llm.budget import Budget
from labmind.llm.calllog import CallLog, MemoryCallLog
from labmind.llm.common import Connection, SDKProvider
from labmind.llm.config import REASONING_EFFORTS, LLMConfig, LLMConfigError
from labmind.llm.metered import Metered
from labmind.llm.pricing import Pricer
from labmind.llm.ratelimit import RateLimiter
from labmind.llm.spec import ProviderSpec, parse_spec

DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT_S = 600.0

_limiters: dict[tuple[str, float | None, float | None], RateLimiter] = {}
_limiters_lock = threading.Lock()


def make_llm(
    spec: str | ProviderSpec,
    *,
    config: LLMConfig | None = None,
    http_client: Any = None,
    budget: Budget | None = None,
    limiter: RateLimiter | None = None,
    log: CallLog | None = None,
    max_retries: int | None = None,
    timeout_s: float | None = None,
    thinking_budget: int | None = None,
    reasoning_effort: str | None = None,
) -> Metered:
    """A Metered client for `spec`. Defaults: config from the usual file, no caps, an in-memory call log.

    `http_client` (an `httpx2.Client`) replaces the SDK's own, e.g. to mock the wire in tests.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    config = config if config is not None else LLMConfig.load()
    settings = config.settings(parsed.provider)
    retries = _first(max_retries, settings.max_retries, DEFAULT_MAX_RETRIES)
    timeout = _first(timeout_s, settings.timeout_s, DEFAULT_TIMEOUT_S)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise LLMConfigError(f"max_retries must be a whole number >= 0, not {retries!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise LLMConfigError(f"timeout_s must be a number of seconds > 0, not {timeout!r}")
    api_key = config.api_key(parsed.provider)
    client = _provider(
        parsed,
        Connection(api_key=api_key, http_client=http_client, max_retries=retries, timeout_s=float(timeout)),
        thinking_budget=_first(thinking_budget, settings.thinking_budget, None),
        reasoning_effort=_first(reasoning_effort, settings.reasoning_effort, None),
    )
    if limiter is None and (settings.requests_per_minute or settings.tokens_per_minute):
        limiter = _shared_limiter(parsed.provider, settings.requests_per_minute, settings.tokens_per_minute)
    log = log if log is not None else MemoryCallLog()
    budget = budget if budget is not None else Budget(log=log)
    return Metered(client, budget=budget, limiter=limiter, log=log, pricer=Pricer(config.prices))


def _provider(
    spec: ProviderSpec, connection: Connection, *, thinking_budget: int | None, reasoning_effort: str | None
) -> SDKProvider:
    if thinking_budget is not None and spec.provider != "anthropic":
        raise LLMConfigError(f"thinking_budget applies to anthropic:<model> only, not {spec}")
    if reasoning_effort is not None and spec.provider != "openai":
        raise LLMConfigError(f"reasoning_effort applies to openai:<model> only, not {spec}")
    if reasoning_effort is not None and reasoning_effort not in REASONING_EFFORTS:
        raise LLMConfigError(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, not {reasoning_effort!r}"
        )
    # Providers are imported here: each pulls in its SDK, and a lab uses one or two of them.
    if spec.provider == "anthropic":
        from labmind.llm.anthropic_provider import AnthropicProvider

        try:
            return AnthropicProvider(spec, connection, thinking_budget=thinking_budget)
        except ValueError as e:
            raise LLMConfigError(str(e)) from e
    if spec.provider == "openai":
        from labmind.llm.openai_provider import OpenAIResponsesProvider

        return OpenAIResponsesProvider(spec, connection, reasoning_effort=reasoning_effort)
    from labmind.llm.openai_provider import OpenAICompatibleProvider

    return OpenAICompatibleProvider(spec, connection)


def _shared_limiter(provider: str, rpm: float | None, tpm: float | None) -> RateLimiter:
    with _limiters_lock:
        key = (provider, rpm, tpm)
        if key not in _limiters:
            _limiters[key] = RateLimiter(rpm, tpm)
        return _limiters[key]


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
