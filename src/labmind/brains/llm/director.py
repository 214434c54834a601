"""The director step: reviews all lines and proposes explore / combine / retire decisions with reasons.

The lab applies them (and may refuse one that breaks its rules, e.g. retiring the last line); this module
only asks and parses.
"""

from __future__ import annotations

from labmind.brains.base import BrainError, Decision, DirectorView
from labmind.brains.llm import render
from labmind.brains.llm.state import describe
from labmind.llm.base import CallContext, LLMClient
from labmind.llm.jsonout import NoJSONAnswer, ask_json
from labmind.model import DecisionKind
from labmind.task.text import task_values

KINDS = tuple(k.value for k in DecisionKind)
SCHEMA = {
    "type": "object",
    "properties": {
        "decisions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": list(KINDS)},
                    "line": {"type": ["integer", "null"]},
                    "other_line": {"type": ["integer", "null"]},
                    "direction": {"type": "string"},
                    "reason": {"type": "string"},
                },
                "required": ["kind", "line", "other_line", "direction", "reason"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["decisions"],
    "additionalProperties": False,
}


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def direct(client: LLMClient, view: DirectorView) -> list[Decision]:
    lines = [{
        "id": s.id, "name": s.name, "direction": s.direction, "incumbent": describe(s.incumbent)[2:],
        "n_done": s.n_done, "since_improvement": s.since_improvement, "recent": [describe(p) for p in s.recent],
    } for s in view.lines]  # fmt: skip
    prompt = render("director", **task_values(view.task, view.min_effect, view.brief_text), lines=lines,
                    baseline=describe(view.baseline)[2:], best=describe(view.best)[2:],
                    room=max(view.max_lines - len(view.lines), 0))
    try:
        value = ask_json(client, prompt, system="", schema=SCHEMA, context=CallContext(role="director"))
    except NoJSONAnswer as exc:
        raise BrainError(str(exc)) from exc
    decisions = []
    raw = value.get("decisions")
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or item.get("kind") not in KINDS:
            continue  # the lab records only decisions it can act on
        decisions.append(Decision(
            kind=str(item["kind"]), reason=str(item.get("reason") or "").strip()[:500] or "(no reason given)",
            line_id=_int(item.get("line")), other_line_id=_int(item.get("other_line")),
            direction=str(item.get("direction") or "").strip()[:500],
        ))  # fmt: skip
    return decisions
