"""The lab's model clients: every role (implement, ideas, review) shares one budget and one call log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labmind.llm.base import LLMClient
from labmind.llm.budget import Budget
from labmind.llm.factory import make_llm
from labmind.llm.spec import PROVIDERS

LLM_PREFIXES = tuple(f"{p}:" for p in PROVIDERS)


def is_llm_spec(spec: str | None) -> bool:
    return bool(spec) and str(spec).strip().startswith(LLM_PREFIXES)


class LLMClients:
    """`factory(spec, budget=, log=)` builds a metered client; tests pass one that wraps a scripted model
    in the real Metered, so budgets, the call log and the resume cache run as in production."""

    def __init__(self, *, log: Any = None, budget_usd: float | None = None, tokens_per_experiment: int | None = None,
                 factory: Callable[..., LLMClient] = make_llm) -> None:
        self.log = log
        self.budget = Budget(budget_usd, tokens_per_experiment, log=log)
        self.factory = factory
        self._clients: dict[str, LLMClient] = {}

    def get(self, spec: str) -> LLMClient:
        """The (metered) client for a spec; specs are checked and keys looked up here, before any call."""
        spec = spec.strip()
        if spec not in self._clients:
            self._clients[spec] = self.factory(spec, budget=self.budget, log=self.log)
        return self._clients[spec]
