"""A brain's optional abilities are read once, from what it has."""

from __future__ import annotations

from typing import Any

from labmind.brains.abilities import Abilities
from labmind.brains.base import IdleBrain


class Full:
    name = "full"
    can_repair = True

    def reflect(self, result: Any, diff: str, parent: Any = None, min_effect: float = 0.0) -> str:
        return f"reflected on {diff}"

    def direct(self, view: Any) -> list[Any]:
        return []

    def close(self) -> None:
        self.closed = True

    def exhausted(self) -> str | None:
        return "spent"

    def claimed(self) -> set[int]:
        return {1}

    def withdraw_unclaimed(self, reason: str) -> None:
        self.withdrawn = reason


class NoRepairs(Full):
    can_repair = False


def test_a_plain_brain_has_no_optional_ability() -> None:
    a = Abilities.of(IdleBrain())
    assert (a.repair, a.reflect, a.direct, a.close, a.exhausted, a.offers) == (False, None, None, None, None, None)


def test_every_ability_a_brain_has_is_found_and_bound_to_it() -> None:
    brain = Full()
    a = Abilities.of(brain)
    assert a.repair
    assert a.reflect is not None and a.reflect(None, "d") == "reflected on d"
    assert a.direct is not None and a.direct(None) == []
    assert a.exhausted is not None and a.exhausted() == "spent"
    assert a.close is not None
    a.close()
    assert brain.closed
    assert a.offers is brain and a.offers.claimed() == {1}


def test_can_repair_false_is_no_repair_ability() -> None:
    assert not Abilities.of(NoRepairs()).repair
