"""The greedy ratchet (autoresearch's loop): every line always extends its own incumbent."""

from __future__ import annotations

from labmind.search.base import Choice, SearchView


class GreedyPolicy:
    name = "greedy"

    def choose(self, view: SearchView) -> Choice:
        # Spread work over lines: the one with the least in flight, then the least done.
        line = min(view.lines, key=lambda v: (v.in_flight, v.n_done, v.id))
        return Choice(line.id, line.incumbent_id, f"extend line {line.id}'s incumbent")
