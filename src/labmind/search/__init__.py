"""Lines, policies and the scheduler."""

from labmind.search.base import Choice, LineView, Policy, SearchView
from labmind.search.greedy import GreedyPolicy
from labmind.search.tree import TreePolicy

POLICIES = ("greedy", "tree")


def make_policy(name: str, seed: int) -> Policy:
    import random

    if name == "greedy":
        return GreedyPolicy()
    if name == "tree":
        return TreePolicy(random.Random(seed))
    raise ValueError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")


__all__ = ["POLICIES", "Choice", "GreedyPolicy", "LineView", "Policy", "SearchView", "TreePolicy", "make_policy"]
