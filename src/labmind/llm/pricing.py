"""What a call cost, in dollars: config overrides first, then the genai-prices database.

- A `[prices."<model>"]` override in the config file always wins.
- Anthropic and OpenAI models are looked up in genai-prices (cache reads and writes priced where it knows them).
- An openai-compatible server on this machine or a private network (vLLM, Ollama, llama.cpp) costs 0.0.
  A hosted one (OpenRouter, DeepSeek, ...) is looked up in genai-prices by its base URL: calling it free
  would let a paid endpoint run past the dollar cap unseen.
- A hosted model nobody knows a price for costs None (counted as 0 dollars by the budget, tokens still
  counted), with one warning per model so the user can add an override.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from labmind.llm.base import Usage
from labmind.llm.config import PriceOverride
from labmind.llm.spec import ProviderSpec

log = logging.getLogger(__name__)

_LOCAL_SUFFIXES = (".local", ".internal", ".lan", ".localdomain", ".home.arpa")


def is_local_url(url: str) -> bool:
    """True for loopback, private, link-local and single-label hosts: servers the user runs themselves."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # e.g. http://gpu-node-3:8000: a cluster-internal name
    return ip.is_loopback or ip.is_private or ip.is_link_local


def override_cost(price: PriceOverride, usage: Usage) -> float:
    cache_read = price.cache_read_per_mtok if price.cache_read_per_mtok is not None else price.input_per_mtok
    cache_write = price.cache_write_per_mtok if price.cache_write_per_mtok is not None else price.input_per_mtok
    # usage.input_tokens counts every prompt token, cached ones included: bill the uncached rest at the input price.
    uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    dollars = (
        uncached * price.input_per_mtok
        + usage.cache_read_tokens * cache_read
        + usage.cache_write_tokens * cache_write
        + usage.output_tokens * price.output_per_mtok
    )
    return dollars / 1_000_000


class Pricer:
    """Prices calls; thread-safe (the only state is the set of models already warned about)."""

    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def cost(self, spec: ProviderSpec, usage: Usage, model: str = "") -> float | None:
        """Dollars for `usage` on `spec` (`model` is the exact model the provider reported, when it did)."""
        names = [n for n in dict.fromkeys((spec.model, model)) if n]
        for name in names:
            if name in self._overrides:
                return override_cost(self._overrides[name], usage)
        if spec.provider == "openai-compatible" and spec.base_url and is_local_url(spec.base_url):
            return 0.0
        # The provider's reported model is the most exact id (a dated snapshot), so try it first.
        for name in reversed(names):
            price = _database_price(spec, name, usage)
            if price is not None:
                return price
        self._warn_once(spec)
        return None

    def _warn_once(self, spec: ProviderSpec) -> None:
        with self._lock:
            if str(spec) in self._warned:
                return
            self._warned.add(str(spec))
        log.warning(
            "no known price for %s: its calls count 0 dollars against the budget (tokens still count); "
            'add [prices."%s"] input_per_mtok = ..., output_per_mtok = ... to the labmind config file',
            spec,
            spec.model,
        )


def _database_price(spec: ProviderSpec, model: str, usage: Usage) -> float | None:
    import genai_prices  # imported here: loading the price database takes a moment, and most imports never price

    prices_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    try:
        if spec.provider == "openai-compatible":
            calc = genai_prices.calc_price(prices_usage, model, provider_api_url=spec.base_url)
        else:
            calc = genai_prices.calc_price(prices_usage, model, provider_id=spec.provider)
    except LookupError:
        return None
    return float(calc.total_price)
