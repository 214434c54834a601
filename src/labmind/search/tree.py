"""Tree search over lines: an upper-confidence rule over recent improvement per slot-hour.

Score(line) = rate / max_rate + c * sqrt(ln(N + 1) / (n + 1)), where rate is the line's improvement (in
minimum-effect units) per slot-hour over its last `window` experiments, N the experiments over all lines
and n this line's (in-flight ones count, so one line does not absorb every free slot). A line that has
gone `patience` experiments without improving revisits its best unexplored near-miss instead of its
incumbent.
"""

from __future__ import annotations

import math
import random

from labmind.search.base import Choice, LineView, SearchView


class TreePolicy:
    name = "tree"

    def __init__(self, rng: random.Random, *, c: float = 0.7, window: int = 8, patience: int = 3) -> None:
        self.rng = rng
        self.c = c
        self.window = window
        self.patience = patience

    def rate(self, line: LineView) -> float:
        recent = line.recent[-self.window:]
        gain = sum(g for g, _ in recent)
        hours = sum(s for _, s in recent) / 3600.0
        return gain / max(hours, 1e-6)

    def scores(self, view: SearchView) -> dict[int, float]:
        rates = {line.id: self.rate(line) for line in view.lines}
        top = max(rates.values(), default=0.0) or 1.0
        total = sum(line.n_done + line.in_flight for line in view.lines)
        return {
            line.id: rates[line.id] / top
            + self.c * math.sqrt(math.log(total + 1) / (line.n_done + line.in_flight + 1))
            for line in view.lines
        }

    def choose(self, view: SearchView) -> Choice:
        scores = self.scores(view)
        best = max(scores.values())
        tied = [line for line in view.lines if scores[line.id] >= best - 1e-12]
        line = self.rng.choice(tied)
        if line.since_improvement >= self.patience and line.near_misses:
            return Choice(line.id, line.near_misses[0],
                          f"line {line.id} stalled for {line.since_improvement}: revisit near-miss "
                          f"{line.near_misses[0]} (ucb {scores[line.id]:.2f})")
        return Choice(line.id, line.incumbent_id, f"extend line {line.id} (ucb {scores[line.id]:.2f})")
