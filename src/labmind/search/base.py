"""What a search policy sees and returns. Policies are small, swappable and hold no hidden state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LineView:
    id: int
    incumbent_id: int
    in_flight: int  # experiments of this line proposed or being tested
    n_done: int
    #: (gain over the incumbent at the time, in units of the minimum effect, floored at 0; slot-seconds
    #: spent) for this line's most recent finished experiments, oldest first.
    recent: tuple[tuple[float, float], ...]
    since_improvement: int  # finished experiments since the line's last improvement
    #: Near-misses of this line (better than their incumbent but not by the minimum effect, or
    #: inconclusive) that have no children yet, best first.
    near_misses: tuple[int, ...] = ()


@dataclass(frozen=True)
class SearchView:
    lines: tuple[LineView, ...]


@dataclass(frozen=True)
class Choice:
    line_id: int
    parent_id: int
    why: str


class Policy(Protocol):
    name: str

    def choose(self, view: SearchView) -> Choice: ...
