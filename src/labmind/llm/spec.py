"""Brain specs: the one string that names a provider, a model and (for compatible servers) where it lives.

anthropic:<model>                       Anthropic Messages API
openai:<model>                          OpenAI Responses API at api.openai.com
openai-compatible:<model>@<base_url>    any server speaking OpenAI Chat Completions
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Provider = Literal["anthropic", "openai", "openai-compatible"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai", "openai-compatible")

VALID_FORMS = (
    "anthropic:<model> (e.g. anthropic:claude-sonnet-4-6), "
    "openai:<model> (e.g. openai:gpt-5), "
    "openai-compatible:<model>@<base_url> (e.g. openai-compatible:qwen2.5-coder@http://127.0.0.1:8000/v1)"
)


class SpecError(ValueError):
    """A brain spec that does not name a provider and model in one of the valid forms."""


@dataclass(frozen=True)
class ProviderSpec:
    provider: Provider
    model: str
    base_url: str | None = None  # only for openai-compatible

    def __str__(self) -> str:
        if self.provider == "openai-compatible":
            return f"{self.provider}:{self.model}@{self.base_url}"
        return f"{self.provider}:{self.model}"


def parse_spec(text: str) -> ProviderSpec:
    """Parse a brain spec; a malformed one raises SpecError listing the valid forms."""
    if not isinstance(text, str):
        raise SpecError(f"a brain spec must be a string, not {type(text).__name__}; valid forms: {VALID_FORMS}")
    raw = text.strip()
    provider, sep, rest = raw.partition(":")
    if not sep:
        raise SpecError(f"brain spec {text!r} has no provider prefix; valid forms: {VALID_FORMS}")
    if provider not in PROVIDERS:
        raise SpecError(f"brain spec {text!r} names unknown provider {provider!r}; valid forms: {VALID_FORMS}")
    if provider == "openai-compatible":
        return _parse_compatible(text, rest)
    model = rest.strip()
    if not model:
        raise SpecError(f"brain spec {text!r} has no model after '{provider}:'; valid forms: {VALID_FORMS}")
    if any(c.isspace() for c in model):
        raise SpecError(
            f"brain spec {text!r}: the model name {model!r} contains whitespace; valid forms: {VALID_FORMS}"
        )
    if "@" in model:
        raise SpecError(
            f"brain spec {text!r}: '@<base_url>' is only for openai-compatible; "
            f"use openai-compatible:{model} to reach another server"
        )
    return ProviderSpec(provider=provider, model=model)  # type: ignore[arg-type]


def _parse_compatible(text: str, rest: str) -> ProviderSpec:
    # Split at the first '@' that starts an http(s) URL, so a URL with user info still parses.
    at = re.search(r"@(?=[a-zA-Z][a-zA-Z0-9+.-]*://)", rest)
    model, url = (rest[: at.start()], rest[at.end() :]) if at else (rest, "")
    model, url = model.strip(), url.strip()
    if not model or not url:
        raise SpecError(
            f"brain spec {text!r} needs a model and a base URL: openai-compatible:<model>@<base_url>; "
            f"valid forms: {VALID_FORMS}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(
            f"brain spec {text!r}: base URL {url!r} must be an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1"
        )
    return ProviderSpec(provider="openai-compatible", model=model, base_url=url.rstrip("/"))
