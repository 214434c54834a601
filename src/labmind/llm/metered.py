"""`Metered`: the one choke point every model call passes — resume cache, budget, rate limit, price, call log.

Order of a call: cache lookup (a hit returns the stored answer, buys nothing) → budget check → rate limiter
→ the provider → price → limiter and budget are charged → the call log gets its record. The budget is
charged before the record is written, so a Budget that loads an experiment's tokens from the log for the
first time never sees this call twice.

Cache keys: sha256 over the spec, system prompt, messages, tools, max_tokens, temperature, json_schema,
the caller's role and experiment, *and the occurrence*: the n-th identical request made by this process
gets key #n. A brain that asks the same question twice on purpose (sampling two ideas, a second repair
attempt) gets two answers, while a resumed lab replaying its steps in order finds each answer it bought.
A request that fails (or that the budget refuses) gives its occurrence back, so the retry that follows
takes the same key.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

from labmind.llm.base import CallContext, Completion, LLMBudgetExceeded, LLMClient, Message, ToolSpec
from labmind.llm.budget import Budget
from labmind.llm.calllog import TEXT_LIMIT, CallLog, CallRecord, MemoryCallLog
from labmind.llm.pricing import Pricer
from labmind.llm.ratelimit import RateLimiter
from labmind.llm.spec import parse_spec

__all__ = ["CallLog", "CallRecord", "MemoryCallLog", "Metered", "render_prompt", "render_response"]

_NO_CONTEXT = CallContext(role="")


class Metered:
    """Wraps any LLMClient; is itself an LLMClient. Thread-safe: brains call it from worker threads."""

    def __init__(
        self,
        client: LLMClient,
        *,
        budget: Budget | None = None,
        limiter: RateLimiter | None = None,
        log: CallLog | None = None,
        pricer: Pricer | None = None,
    ) -> None:
        self.client = client
        self.spec = client.spec
        self.model = client.model
        self.log: CallLog = log if log is not None else MemoryCallLog()
        self.budget = budget if budget is not None else Budget(log=self.log)
        self.limiter = limiter
        self.pricer = pricer if pricer is not None else Pricer()
        self._provider_spec = parse_spec(client.spec)
        self._occurrences: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Metered({self.client!r})"

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def complete(
        self,
        messages: list[Message],
        *,
        system: str = "",
        tools: list[ToolSpec] | None = None,
        max_tokens: int = 4096,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
        context: CallContext | None = None,
    ) -> Completion:
        ctx = context or _NO_CONTEXT
        base = request_digest(
            self.spec, system, messages, tools, max_tokens, temperature, json_schema, ctx.role, ctx.experiment_id
        )
        occurrence = self._take_occurrence(base)
        key = hashlib.sha256(f"{base}#{occurrence}".encode()).hexdigest()
        prompt = render_prompt(system, messages, tools)
        started_at = time.time()

        hit = self.log.cached(key)
        if hit is not None:
            self.log.record(self._record(ctx, key, "cached", started_at, prompt, response=render_response(hit)))
            return replace(hit, cached=True, cost_usd=0.0, latency_s=0.0)

        try:
            self.budget.check(ctx)
        except LLMBudgetExceeded:
            self._give_back_occurrence(base, occurrence)  # nothing was asked: the key stays free
            raise
        if self.limiter is not None:
            self.limiter.acquire()
        clock = time.monotonic()
        try:
            completion = self.client.complete(
                messages,
                system=system,
                tools=tools,
                max_tokens=max_tokens,
                temperature=temperature,
                json_schema=json_schema,
                context=context,
            )
        except Exception as e:
            self._give_back_occurrence(base, occurrence)
            latency = time.monotonic() - clock
            error = f"{type(e).__name__}: {e}"
            self.log.record(self._record(ctx, key, "error", started_at, prompt, error=error, latency_s=latency))
            raise
        latency = time.monotonic() - clock
        cost = self.pricer.cost(self._provider_spec, completion.usage, completion.model)
        completion = replace(completion, cost_usd=cost, latency_s=latency, cached=False)
        if self.limiter is not None:
            self.limiter.record_tokens(completion.usage.total)
        self.budget.charge(ctx, completion)
        self.log.record(
            self._record(
                ctx, key, "ok", started_at, prompt, response=render_response(completion), completion=completion
            )
        )
        return completion

    def _take_occurrence(self, base: str) -> int:
        with self._lock:
            n = self._occurrences[base]
            self._occurrences[base] = n + 1
            return n

    def _give_back_occurrence(self, base: str, occurrence: int) -> None:
        with self._lock:
            # Only when no identical request took a later occurrence meanwhile; else keep the numbering.
            if self._occurrences[base] == occurrence + 1:
                self._occurrences[base] = occurrence

    def _record(
        self,
        ctx: CallContext,
        key: str,
        status: str,
        at: float,
        prompt: str,
        *,
        response: str = "",
        error: str = "",
        latency_s: float = 0.0,
        completion: Completion | None = None,
    ) -> CallRecord:
        usage = completion.usage if completion is not None else None
        return CallRecord(
            at=at,
            spec=self.spec,
            model=completion.model if completion is not None and completion.model else self.model,
            role=ctx.role,
            experiment_id=ctx.experiment_id,
            line_id=ctx.line_id,
            cache_key=key,
            status=status,  # type: ignore[arg-type]
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cache_read_tokens=usage.cache_read_tokens if usage else 0,
            cache_write_tokens=usage.cache_write_tokens if usage else 0,
            cost_usd=completion.cost_usd if completion is not None else (0.0 if status == "cached" else None),
            latency_s=completion.latency_s if completion is not None else latency_s,
            error=error,
            prompt=prompt,
            response=response,
            completion=completion.to_dict() if completion is not None else None,
        )


def request_digest(
    spec: str,
    system: str,
    messages: list[Message],
    tools: list[ToolSpec] | None,
    max_tokens: int,
    temperature: float | None,
    json_schema: dict[str, Any] | None,
    role: str,
    experiment_id: int | None,
) -> str:
    """sha256 of everything that decides a request's answer (and who asked), in canonical JSON."""
    payload = {
        "spec": spec,
        "system": system,
        "messages": [asdict(m) for m in messages],
        "tools": [asdict(t) for t in tools or []],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "json_schema": json_schema,
        "role": role,
        "experiment_id": experiment_id,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def render_prompt(system: str, messages: list[Message], tools: list[ToolSpec] | None = None) -> str:
    """A readable transcript of a request, for the call log and the dashboard."""
    parts: list[str] = []
    if system:
        parts.append(f"[system]\n{system}")
    if tools:
        parts.append("[tools] " + ", ".join(t.name for t in tools))
    for m in messages:
        flag = " ERROR" if m.is_error else ""
        head = f"[tool result {m.tool_call_id}{flag}]" if m.role == "tool" else f"[{m.role}]"
        body = [m.content] if m.content else []
        body += [_render_call(c.name, c.raw_arguments or json.dumps(c.arguments), c.id) for c in m.tool_calls]
        parts.append(head + "\n" + "\n".join(body))
    return truncate("\n\n".join(parts))


def render_response(completion: Completion) -> str:
    body = [completion.text] if completion.text else []
    body += [_render_call(c.name, c.raw_arguments or json.dumps(c.arguments), c.id) for c in completion.tool_calls]
    return truncate("\n".join(body))


def _render_call(name: str, arguments: str, call_id: str) -> str:
    return f"-> {name}({arguments}) [{call_id}]"


def truncate(text: str, limit: int = TEXT_LIMIT) -> str:
    """Keep the start and the end (the newest turn is often what matters); mark what was cut."""
    if len(text) <= limit:
        return text
    # Size the marker for the largest count first, so the final text never exceeds the limit.
    keep = limit - len(f"\n[... {len(text)} characters cut ...]\n")
    marker = f"\n[... {len(text) - keep} characters cut ...]\n"
    head = keep // 2
    return text[:head] + marker + text[len(text) - (keep - head) :]
