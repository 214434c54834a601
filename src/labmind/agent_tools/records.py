"""Experiments as agents read them: verdict and why, metric with spread and CI, flags, idea, who made it."""

from __future__ import annotations

from typing import Any

from labmind.brains.agent_inbox import OfferState
from labmind.model import ExperimentStatus
from labmind.store import ExperimentRow
from labmind.store.records import experiment_json

#: Experiment states as agents see them, from offer to verdict.
STATES = ("open", "claimed", "submitted", "running", "done", "failed", "withdrawn")


def agent_of(row: ExperimentRow) -> str | None:
    agent = row.idea.params.get("_agent")
    return str(agent) if agent else None


def state_of(row: ExperimentRow | None, offer: OfferState | None) -> str:
    """One word for where an experiment stands (see STATES)."""
    if row is not None and row.verdict is not None:
        return "done"
    if row is not None and row.status == ExperimentStatus.FAILED:
        return "failed"
    if row is not None and row.status == ExperimentStatus.TESTING:
        return "running"
    if offer is None:
        return "open"  # made by the lab, its offer not published yet
    if offer.status == "closed":
        # The lab took the answer (an idea or an abandonment) and is recording it, or gave the offer up.
        return "withdrawn" if offer.closed and offer.closed.outcome == "withdrawn" else "submitted"
    return offer.status


def is_final(state: str) -> bool:
    return state in ("done", "failed", "withdrawn")


def experiment_record(row: ExperimentRow, by_id: dict[int, ExperimentRow], offer: OfferState | None = None
                      ) -> dict[str, Any]:
    """An experiment with everything an agent needs to learn from it."""
    parent = by_id.get(row.parent_id) if row.parent_id is not None else None
    delta = None
    if row.metric is not None and parent is not None and parent.metric is not None:
        delta = row.metric - parent.metric
    state = state_of(row, offer)
    claim = offer.claim if offer is not None and offer.claim is not None and not offer.claim.withdrawn else None
    record = experiment_json(row)
    return {
        **record,
        "state": state,
        "final": is_final(state),
        "error": row.error or (offer.withdrawn_reason if offer is not None and state == "withdrawn" else None),
        "parent_metric": parent.metric if parent is not None else None,
        "delta_vs_parent": delta,
        # The idea as the agent wrote it: labmind's own parameters (`_agent`, knob settings) stay out of it.
        "idea": {k: v for k, v in record["idea"].items() if k != "params"},
        "agent": agent_of(row) or (claim.agent if claim is not None else None),
    }


def past_with_ci(past: dict[str, Any], by_id: dict[int, ExperimentRow]) -> dict[str, Any]:
    """A brief's PastExperiment dict with the figure of its record from the store (sd, 95% CI, runs, p-value),
    when the store has it."""
    row = by_id.get(int(past.get("id", -1)))
    if row is None:
        return past
    record = experiment_json(row)
    return {**past, **{k: record[k] for k in ("sd", "ci", "n_runs", "p_value")}, "agent": agent_of(row)}
