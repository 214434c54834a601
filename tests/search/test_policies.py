"""Search policies: greedy ratchet and the UCB tree over lines."""

from __future__ import annotations

import math
import random

import pytest

from labmind.search import POLICIES, GreedyPolicy, LineView, SearchView, TreePolicy, make_policy

HOUR = 3600.0


def line(line_id: int, *, incumbent: int | None = None, in_flight: int = 0, n_done: int = 0,
         recent: tuple[tuple[float, float], ...] = (), since: int = 0,
         near_misses: tuple[int, ...] = ()) -> LineView:
    return LineView(id=line_id, incumbent_id=incumbent if incumbent is not None else 100 + line_id,
                    in_flight=in_flight,
                    n_done=n_done, recent=recent, since_improvement=since, near_misses=near_misses)


def view(*lines: LineView) -> SearchView:
    return SearchView(lines=lines)


# -- greedy -------------------------------------------------------------------------------------


def test_greedy_fewest_in_flight_first() -> None:
    c = GreedyPolicy().choose(view(line(1, in_flight=2, n_done=0), line(2, in_flight=1, n_done=50),
                                   line(3, in_flight=3)))
    assert c.line_id == 2
    assert c.parent_id == 102


def test_greedy_then_fewest_done_then_id() -> None:
    p = GreedyPolicy()
    assert p.choose(view(line(1, in_flight=1, n_done=5), line(2, in_flight=1, n_done=3))).line_id == 2
    assert p.choose(view(line(3, n_done=2), line(1, n_done=2), line(2, n_done=2))).line_id == 1


def test_greedy_always_extends_incumbent_even_when_stalled() -> None:
    v = view(line(1, incumbent=42, since=10, near_misses=(7, 8), recent=((0.0, HOUR),) * 8))
    c = GreedyPolicy().choose(v)
    assert (c.line_id, c.parent_id) == (1, 42)
    assert "incumbent" in c.why


def test_greedy_spreads_over_lines() -> None:
    p = GreedyPolicy()
    lines = {i: line(i) for i in (1, 2, 3)}
    picked = []
    for _ in range(6):
        c = p.choose(view(*lines.values()))
        picked.append(c.line_id)
        old = lines[c.line_id]
        lines[c.line_id] = line(old.id, in_flight=old.in_flight + 1)
    assert picked == [1, 2, 3, 1, 2, 3]


# -- tree ---------------------------------------------------------------------------------------


def tree(seed: int = 0, **kw: float) -> TreePolicy:
    return TreePolicy(random.Random(seed), **kw)  # type: ignore[arg-type]


def test_rate_is_gain_per_slot_hour_over_window() -> None:
    p = tree(window=2)
    assert p.rate(line(1, recent=((1.0, HOUR), (2.0, HOUR)))) == pytest.approx(1.5)
    assert p.rate(line(1, recent=((9.0, HOUR), (1.0, 1800.0), (0.0, 1800.0)))) == pytest.approx(1.0)
    assert p.rate(line(1)) == 0.0


def test_scores_formula() -> None:
    p = tree(c=0.7)
    a = line(1, n_done=3, recent=((2.0, HOUR),))
    b = line(2, n_done=1, in_flight=1, recent=((1.0, HOUR),))
    s = p.scores(view(a, b))
    total = 3 + 2
    assert s[1] == pytest.approx(1.0 + 0.7 * math.sqrt(math.log(total + 1) / 4))
    assert s[2] == pytest.approx(0.5 + 0.7 * math.sqrt(math.log(total + 1) / 3))


def test_tree_prefers_higher_recent_gain_per_slot_hour() -> None:
    slow = line(1, n_done=4, recent=((1.0, HOUR),) * 4)
    fast = line(2, n_done=4, recent=((1.0, HOUR / 2),) * 4)  # same gain in half the slot time
    for seed in range(5):
        c = tree(seed).choose(view(slow, fast))
        assert (c.line_id, c.parent_id) == (2, 102)
        assert "extend line 2" in c.why


def test_tree_only_counts_recent_window() -> None:
    old_star = line(1, n_done=9, recent=((10.0, HOUR),) + ((0.0, HOUR),) * 8)
    steady = line(2, n_done=9, recent=((1.0, HOUR),) * 9)
    assert tree(window=8).choose(view(old_star, steady)).line_id == 2
    assert tree(window=9).choose(view(old_star, steady)).line_id == 1


def test_tree_explores_unvisited_line() -> None:
    busy = line(1, n_done=100, recent=((1.0, HOUR),) * 8)
    fresh = line(2)
    p = tree()
    s = p.scores(view(busy, fresh))
    assert s[2] > s[1]
    assert p.choose(view(busy, fresh)).line_id == 2
    # without the exploration bonus the productive line would win
    assert tree(c=0.0).choose(view(busy, fresh)).line_id == 1


def test_tree_in_flight_work_counts_against_a_line() -> None:
    a = line(1, in_flight=3, recent=((1.0, HOUR),))
    b = line(2, in_flight=0, recent=((1.0, HOUR),))
    assert tree().choose(view(a, b)).line_id == 2


def test_tree_revisits_best_near_miss_after_patience() -> None:
    stalled = line(1, incumbent=10, n_done=5, since=3, near_misses=(17, 12))
    c = tree(patience=3).choose(view(stalled))
    assert (c.line_id, c.parent_id) == (1, 17)
    assert "near-miss 17" in c.why and "stalled for 3" in c.why


def test_tree_keeps_incumbent_before_patience_or_without_near_misses() -> None:
    p = tree(patience=3)
    assert p.choose(view(line(1, incumbent=10, since=2, near_misses=(17,)))).parent_id == 10
    assert p.choose(view(line(1, incumbent=10, since=9))).parent_id == 10
    assert tree(patience=10).choose(view(line(1, incumbent=10, since=9, near_misses=(17,)))).parent_id == 10


def test_tree_is_deterministic_for_seeded_rng() -> None:
    lines = view(*(line(i, n_done=2, recent=((1.0, HOUR),)) for i in range(1, 6)))  # all tied
    p1, p2 = tree(seed=7), tree(seed=7)
    seq1 = [p1.choose(lines).line_id for _ in range(30)]
    seq2 = [p2.choose(lines).line_id for _ in range(30)]
    assert seq1 == seq2
    assert len(set(seq1)) > 1  # ties are broken at random, not always the first line
    firsts = {tree(seed=s).choose(lines).line_id for s in range(20)}
    assert len(firsts) > 1  # and the seed decides how


def test_tree_single_line_no_history() -> None:
    c = tree().choose(view(line(1, incumbent=5)))
    assert (c.line_id, c.parent_id) == (1, 5)


# -- make_policy --------------------------------------------------------------------------------


def test_make_policy_known_names() -> None:
    assert POLICIES == ("greedy", "tree")
    assert isinstance(make_policy("greedy", 0), GreedyPolicy)
    p = make_policy("tree", 3)
    assert isinstance(p, TreePolicy)
    assert p.name == "tree"


def test_make_policy_tree_seeded() -> None:
    lines = view(*(line(i) for i in range(1, 6)))
    a, b = make_policy("tree", 11), make_policy("tree", 11)
    assert [a.choose(lines).line_id for _ in range(20)] == [b.choose(lines).line_id for _ in range(20)]


def test_make_policy_rejects_unknown_name() -> None:
    with pytest.raises(ValueError) as info:
        make_policy("bandit", 0)
    msg = str(info.value)
    assert "'bandit'" in msg
    assert "greedy, tree" in msg
