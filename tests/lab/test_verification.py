"""Judge 2.0 in a real lab: screening keeps a candidate provisionally (`kept`), and the lab's closing
verification on fresh seeds either claims it (`improved`) or reverts its line to its last verified point."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from labmind.store import Store

from .toy import labmind, log, make_toy, show, status


def run_lab(task: Path, mode: str, experiments: int, *extra: str) -> list[dict]:
    labmind("run", str(task), "--brain", f"command:python brains/write.py {mode}", "--max-experiments",
            str(experiments), "--slots", "1", "--lines", "1", "--plain", *extra)
    rows = log(task)
    assert rows[0]["kind"] == "baseline" and rows[0]["verdict"] is None
    return [r for r in rows if r["kind"] == "candidate"]


def verdict_events(task: Path) -> list[str]:
    store = Store.open(task / ".labmind" / "lab.db", readonly=True)
    try:
        return [e.message for e in store.events(limit=10_000) if e.kind in ("verdict", "verify", "rebase")]
    finally:
        store.close()


def line_points(task: Path) -> tuple[int | None, int | None]:
    store = Store.open(task / ".labmind" / "lab.db", readonly=True)
    try:
        line = store.lines()[0]
        return line.incumbent_id, line.verified_id
    finally:
        store.close()


@pytest.mark.slow
def test_a_clearly_better_candidate_is_kept_then_verified_at_the_close(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    [exp] = run_lab(task, "good", 1)
    events = verdict_events(task)
    kept = next(i for i, m in enumerate(events) if m.startswith(f"exp {exp['id']} kept: "))
    verifying = next(i for i, m in enumerate(events) if m.startswith(f"exp {exp['id']}: verifying"))
    improved = next(i for i, m in enumerate(events) if m.startswith(f"exp {exp['id']} improved: "))
    assert kept < verifying < improved
    assert "the lab stops proposing" in events[verifying]

    assert exp["verdict"] == "improved" and "verified on fresh seeds" in exp["reason"]
    verify = exp["judgement"]["verify"]
    assert verify["state"] == "claim" and verify["anchor"] == 1 and verify["effect"] > 0
    assert exp["p_value"] <= verify["level"]
    fresh = [r["metric"] for r in show(task, exp["id"])["runs"] if r["purpose"] == "confirm"]
    assert exp["n_runs"] == len(fresh) >= 2 and exp["metric"] == pytest.approx(statistics.fmean(fresh))
    # It is the line's incumbent and its verified point, and the lab's best.
    assert line_points(task) == (exp["id"], exp["id"])
    st = status(task)
    assert st["best"]["experiment"] == exp["id"] and st["best"]["confirmed"]
    assert st["verdicts"] == {"improved": 1}
    check_no_step_left_provisional(log(task))


@pytest.mark.slow
def test_a_line_that_only_wins_on_the_screening_seed_is_reverted_and_nothing_is_claimed(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    candidates = run_lab(task, "ladder", 3)
    events = verdict_events(task)
    ids = {r["id"] for r in candidates}
    baseline_seed = show(task, 1)["runs"][0]["seed"]

    # Screening: every step beat its incumbent on the screening seed and was kept (the line built on it) ...
    kept = [r for r in candidates if any(m.startswith(f"exp {r['id']} kept: ") for m in events)]
    assert kept, events
    for row in kept:
        assert row["judgement"]["seed"] == baseline_seed and row["judgement"]["effect"] > 0
    # ... but on fresh seeds the head is worse than the line's verified point (the baseline): it is not
    # improved. The stack under it is bisected: each step is either verified against the baseline itself (and
    # fails: nothing in this ladder is real) or reverted with a failed head above it.
    head = max(kept, key=lambda r: r["id"])
    assert head["verdict"] == "not_improved", head
    assert head["judgement"]["verify"]["state"] == "fail" and head["judgement"]["verify"]["effect"] < 0
    assert "not better on fresh seeds" in head["reason"]
    bisected = 0
    for row in kept:
        if row is head:
            continue
        if row["verdict"] == "inconclusive":
            assert "reverted" in row["reason"], row
        else:
            assert row["verdict"] == "not_improved" and row["judgement"]["verify"]["anchor"] == 1, row
            bisected += 1
    assert bisected >= 1 if len(kept) > 1 else bisected == 0
    assert any("the middle of the stack whose head" in m for m in events) is (len(kept) > 1)
    assert any(m.startswith("line 1 goes back to its last verified point, exp 1") for m in events)
    assert line_points(task) == (1, 1)

    # Nothing false is claimed: no improvement, no provisional verdict left, the baseline stays the best.
    assert all(r["verdict"] not in ("improved", "kept", "flagged") for r in candidates)
    assert ids and all(r["verdict"] for r in candidates)
    st = status(task)
    assert st["best"]["experiment"] == 1 and not st["best"]["confirmed"]
    assert "improved" not in st["verdicts"] and "kept" not in st["verdicts"]


def check_no_step_left_provisional(rows: list[dict]) -> None:
    """A finished lab leaves `kept` only on steps of a verified stack (an improved descendant claims them)."""
    by_id = {r["id"]: r for r in rows}
    for row in rows:
        if row["verdict"] == "kept":
            assert "verified as part of exp " in row["reason"], row
            head = int(row["reason"].rsplit("verified as part of exp ", 1)[1].split("'")[0])
            assert by_id[head]["verdict"] == "improved" and by_id[head]["line"] == row["line"]
            parent = by_id[head]["parent"]
            while parent != row["id"]:
                assert parent is not None, f"exp {row['id']} is not under exp {head}"
                parent = by_id[parent]["parent"]


@pytest.mark.slow
def test_racing_proposals_leave_no_step_provisional(tmp_path: Path) -> None:
    # Proposals are prepared while others run, so two can start from the same point; each is better than every
    # earlier one. Whichever order they are screened in, the line ends on the last and best, verified, and no
    # other step stays `kept` (a kept one that a sibling displaced is superseded: see test_referee.py).
    task = make_toy(tmp_path / "task")
    candidates = run_lab(task, f"counter {tmp_path / 'counter'}", 3, "--sandbox", "none")
    assert all(r["verdict"] for r in candidates)
    for row in candidates:
        if "superseded: its line builds on exp" in (row["reason"] or ""):
            assert row["verdict"] == "inconclusive" and "verify" not in row["judgement"]
    check_no_step_left_provisional(log(task))
    # Brain threads may take the counter in either order, so the best is not always the highest id: the line's
    # incumbent is whichever won, verified.
    incumbent, verified = line_points(task)
    head = next(r for r in candidates if r["id"] == incumbent)
    assert head["verdict"] == "improved" and verified == head["id"]
    assert [r["id"] for r in candidates if r["verdict"] == "improved"] == [head["id"]]
