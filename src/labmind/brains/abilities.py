"""What a brain can do beyond proposing and learning: small protocols, checked once when the lab opens.

A brain offers an ability by having its method (or, for repairs, `can_repair = True`). The lab reads a
brain's `Abilities` once and then calls what is there; it never probes the brain inside its loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from labmind.brains.base import Decision, DirectorView
from labmind.model import PastExperiment


@runtime_checkable
class Repairs(Protocol):
    """May be asked to fix a crashed experiment (a child experiment with directive `repair`)."""

    can_repair: bool


@runtime_checkable
class Reflects(Protocol):
    def reflect(self, result: PastExperiment, diff: str, parent: PastExperiment | None = None,
                min_effect: float = 0.0) -> str:
        """A short analysis of a finished experiment, stored with it (called in a worker thread)."""


@runtime_checkable
class Directs(Protocol):
    def direct(self, view: DirectorView) -> list[Decision]:
        """Decisions over the lab's lines: explore, combine, retire (called in a worker thread)."""


@runtime_checkable
class Closes(Protocol):
    def close(self) -> None:
        """The lab is stopping: give up waits, release resources."""


@runtime_checkable
class Budgeted(Protocol):
    def exhausted(self) -> str | None:
        """Why no further proposal can be paid for (an LLM dollar cap reached), or None."""


@runtime_checkable
class Offers(Protocol):
    """Publishes work that others claim (the agent brain): an experiment counts from its claim, not its offer."""

    def claimed(self) -> set[int]:
        """Experiments whose offer someone has claimed."""

    def withdraw_unclaimed(self, reason: str) -> None:
        """Withdraw every offer no one has claimed yet."""


@dataclass(frozen=True)
class Abilities:
    repair: bool
    reflect: Callable[..., str] | None
    direct: Callable[[DirectorView], list[Decision]] | None
    close: Callable[[], None] | None
    exhausted: Callable[[], str | None] | None
    offers: Offers | None

    @classmethod
    def of(cls, brain: Any) -> Abilities:
        return cls(
            repair=isinstance(brain, Repairs) and bool(brain.can_repair),
            reflect=brain.reflect if isinstance(brain, Reflects) else None,
            direct=brain.direct if isinstance(brain, Directs) else None,
            close=brain.close if isinstance(brain, Closes) else None,
            exhausted=brain.exhausted if isinstance(brain, Budgeted) else None,
            offers=brain if isinstance(brain, Offers) else None,
        )
