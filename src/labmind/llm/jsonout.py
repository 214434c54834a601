"""Ask a model for a JSON object and get one back, or a clear failure.

Schema-constrained output is requested (providers and servers that support it return valid JSON); the
answer is still parsed defensively, because models without that support wrap JSON in prose or code
fences. A broken answer is shown back to the model once with the parse error; after that the step fails
with `NoJSONAnswer`, an `LLMError` (brains turn it into their BrainError, the auditor into a failed audit).
"""

from __future__ import annotations

import json
import re
from typing import Any

from labmind.llm.base import CallContext, LLMClient, LLMError, Message

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class NoJSONAnswer(LLMError):
    """The model call failed, or its answers held no JSON object; the message starts with the call's role."""


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: the whole text, a fenced block, or the outermost {...}."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate, strict=False)  # raw newlines in strings: small local models emit them
        except (ValueError, RecursionError):
            continue
        value = _clean(value)
        if isinstance(value, dict):
            return value
    return None


def _clean(value: object) -> object:
    """Strings made storable: a JSON escape can decode to a lone surrogate, which SQLite and UTF-8 reject."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, dict):
        return {str(_clean(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def ask_json(client: LLMClient, prompt: str, *, system: str, schema: dict[str, Any], context: CallContext,
             max_tokens: int = 4096, temperature: float | None = None, tries: int = 2) -> dict[str, Any]:
    """One JSON object from the model, retried once with the parse error; NoJSONAnswer when it never comes."""
    messages = [Message(role="user", content=prompt)]
    problem = ""
    for _ in range(max(tries, 1)):
        try:
            answer = client.complete(messages, system=system, max_tokens=max_tokens, temperature=temperature,
                                     json_schema=schema, context=context)
        except LLMError as exc:
            raise NoJSONAnswer(f"{context.role}: the model call failed: {exc}") from exc
        value = extract_json(answer.text)
        if value is not None:
            return value
        problem = "the answer was not a JSON object" if answer.text.strip() else "the answer was empty"
        messages += [Message(role="assistant", content=answer.text or "(empty)"),
                     Message(role="user", content=f"That was not usable: {problem}. Answer again with only "
                                                  "the JSON object the schema describes.")]
    raise NoJSONAnswer(f"{context.role}: {problem} after {tries} tries")
