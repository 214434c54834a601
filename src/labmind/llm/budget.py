"""Hard caps on what the lab's model calls may spend: dollars for the whole lab, tokens per experiment.

`check` runs before a call and refuses it once a cap is reached; `charge` runs after. Calls already in
flight when a cap is reached still finish, so the overshoot is at most what those calls cost.
Counters start from the call log, so a resumed lab keeps what it already spent.
"""

from __future__ import annotations

import threading

from labmind.llm.base import CallContext, Completion, LLMBudgetExceeded
from labmind.llm.calllog import UNCAPPED_ROLES, CallLog


class Budget:
    def __init__(
        self,
        usd_cap: float | None = None,
        tokens_per_experiment: int | None = None,
        *,
        log: CallLog | None = None,
    ) -> None:
        if usd_cap is not None and usd_cap < 0:
            raise ValueError(f"usd_cap must be >= 0 dollars or None for no cap, not {usd_cap}")
        if tokens_per_experiment is not None and tokens_per_experiment <= 0:
            raise ValueError(f"tokens_per_experiment must be > 0 or None for no cap, not {tokens_per_experiment}")
        self.usd_cap = usd_cap
        self.tokens_per_experiment = tokens_per_experiment
        self._log = log
        self._lock = threading.Lock()
        self._spent_usd = log.spent_usd() if log is not None else 0.0
        self._tokens: dict[int, int] = {}

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent_usd

    def tokens_of(self, experiment_id: int) -> int:
        with self._lock:
            return self._tokens_locked(experiment_id)

    def check(self, context: CallContext | None) -> None:
        """Raise LLMBudgetExceeded if a cap is already reached; no call may then be made."""
        with self._lock:
            if self.usd_cap is not None and self._spent_usd >= self.usd_cap:
                raise LLMBudgetExceeded(
                    f"the lab's LLM budget of ${self.usd_cap:.2f} is used up (${self._spent_usd:.4f} spent); "
                    f"raise --llm-budget-usd to continue"
                )
            exp = context.experiment_id if context and context.role not in UNCAPPED_ROLES else None
            if self.tokens_per_experiment is not None and exp is not None:
                used = self._tokens_locked(exp)
                if used >= self.tokens_per_experiment:
                    raise LLMBudgetExceeded(
                        f"experiment {exp} reached its cap of {self.tokens_per_experiment:,} LLM tokens "
                        f"({used:,} used); no more calls for it"
                    )

    def charge(self, context: CallContext | None, completion: Completion) -> None:
        """Count a finished call. Unknown cost (None) counts 0 dollars; its tokens still count."""
        with self._lock:
            self._spent_usd += completion.cost_usd or 0.0
            exp = context.experiment_id if context and context.role not in UNCAPPED_ROLES else None
            if exp is not None:
                self._tokens[exp] = self._tokens_locked(exp) + completion.usage.total

    def _tokens_locked(self, experiment_id: int) -> int:
        # Loaded on first use: a lab may hold thousands of experiments, and only live ones make calls.
        if experiment_id not in self._tokens:
            self._tokens[experiment_id] = self._log.tokens_of(experiment_id) if self._log is not None else 0
        return self._tokens[experiment_id]
