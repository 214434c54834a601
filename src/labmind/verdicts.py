"""Verdict names are a contract shared by the CLI, store, UI and other tools: never rename them."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    IMPROVED = "improved"
    KEPT = "kept"
    NOT_IMPROVED = "not_improved"
    INCONCLUSIVE = "inconclusive"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"
    NO_METRIC = "no_metric"
    BAD_METRIC = "bad_metric"
    NO_CHANGE = "no_change"
    REJECTED = "rejected"
    FLAGGED = "flagged"


#: What each verdict means, in one sentence, for people and for brains.
MEANING: dict[Verdict, str] = {
    Verdict.IMPROVED: "verified on fresh seeds: significantly better than its line's last verified point, with the "
                      "lab's false-claim rate controlled",
    Verdict.KEPT: "beat its line's incumbent on the screening seed, so the line builds on it; not a claim until a "
                  "verification on fresh seeds confirms it or a later step of its line",
    Verdict.NOT_IMPROVED: "ran fine but did not beat its line's incumbent by the minimum effect",
    Verdict.INCONCLUSIVE: "looked better on screening but was not confirmed on fresh seeds: either its verification "
                          "could not confirm it (its line went back to its last verified point), or its line moved on "
                          "without it (superseded by a step that beat it), so it was never verified; the reason says "
                          "which",
    Verdict.CRASHED: "the run exited with an error or was killed over a resource limit",
    Verdict.TIMED_OUT: "the run exceeded the task's timeout and was killed with its process tree",
    Verdict.NO_METRIC: "the run finished but printed no value for the metric",
    Verdict.BAD_METRIC: "the metric was NaN, infinite or too large to summarise",
    Verdict.NO_CHANGE: "the proposal changed no file",
    Verdict.REJECTED: "the change broke a hard rule (files outside editable, protected files, nested repositories)",
    Verdict.FLAGGED: "looked better but an integrity check needs a person to look",
}

#: Verdicts that come from a run failing; the remaining ones come from the judge or the scope check.
RUN_FAILURES = frozenset({Verdict.CRASHED, Verdict.TIMED_OUT, Verdict.NO_METRIC, Verdict.BAD_METRIC})
