"""When the lab stops proposing: small stoppers, each one condition, composed in order.

A stopper answers `reason()`: why no more experiments may be proposed now, or None. Some conditions stop
every proposal (the session's deadline, a brain that keeps failing, an LLM budget used up); the experiment
limit stops only new ones, since experiments the lab itself requested (repairs, combinations) were counted
when they were requested.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Stopper(Protocol):
    def reason(self) -> str | None:
        """Why no more experiments may be proposed now; None to go on."""


@dataclass
class Halted:
    """The lab is stopping (a signal, `labmind stop`) or cannot go on (a fatal error)."""

    why: Callable[[], str | None]

    def reason(self) -> str | None:
        return self.why()


@dataclass
class Deadline:
    """The session's time budget (`--budget`); no deadline without one."""

    budget_s: float | None
    at: float | None = field(default=None, init=False)  # set when the session starts

    def start(self) -> None:
        self.at = time.monotonic() + self.budget_s if self.budget_s else None

    def in_budget(self) -> bool:
        return self.at is None or time.monotonic() < self.at

    def left_s(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def reason(self) -> str | None:
        return None if self.in_budget() else "the session's budget is spent"


@dataclass
class BrainFailures:
    """The brain failed this many proposals in a row (the lab says so when the last one fails)."""

    limit: int
    failures: Callable[[], int]

    def reason(self) -> str | None:
        n = self.failures()
        return f"the brain failed {n} times in a row" if n >= self.limit else None


@dataclass
class BrainBudget:
    """The brain cannot pay for another proposal (its LLM dollar cap is reached): said once, as a note."""

    exhausted: Callable[[], str | None]
    note: Callable[[str], None]
    said: bool = False

    def reason(self) -> str | None:
        message = self.exhausted()
        if message and not self.said:
            self.said = True
            self.note(f"no more proposals: {message}")
        return message


@dataclass
class MaxExperiments:
    """`--max-experiments`: candidates that count toward it (see `experiments_made`)."""

    limit: int
    made: Callable[[], int]

    def reason(self) -> str | None:
        return f"the lab made its {self.limit} experiments" if self.made() >= self.limit else None


@dataclass
class Stoppers:
    """`every` stops all proposals, `new` only new ones (not the experiments the lab requested)."""

    every: Sequence[Stopper]
    new: Sequence[Stopper] = ()

    def reason(self, *, new: bool = True) -> str | None:
        for stopper in (*self.every, *(self.new if new else ())):
            why = stopper.reason()
            if why:
                return why
        return None
