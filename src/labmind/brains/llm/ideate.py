"""The ideate step: a batch of distinct ideas for one line, with near-duplicates of tried ideas dropped.

"Too close" is measured on words: an idea's title and hypothesis, lower-cased, split into alphanumeric
words, minus common stop words, as a set; two ideas are duplicates when the Jaccard similarity of their sets
(shared words / all words) is at least SIMILAR (0.6), or when their titles are equal after that
normalisation. The check runs against every idea tried anywhere in the lab and within the new batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from labmind.brains.base import BrainContext, BrainError
from labmind.brains.llm import render
from labmind.brains.llm.state import editable_files, state_values
from labmind.library.record import insight_lines, parse_applies
from labmind.llm.base import CallContext, LLMClient
from labmind.llm.jsonout import NoJSONAnswer, ask_json
from labmind.model import Idea

SIMILAR = 0.6
#: Titles of ideas tried on other lines shown to the model (the newest), so it does not propose them again.
ELSEWHERE = 40
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset((
    "a", "an", "and", "the", "of", "to", "in", "on", "for", "with", "by", "from", "at", "as", "is", "are", "be",
    "it", "its", "this", "that", "use", "using", "into", "than", "then", "more", "less", "via", "per", "instead",
))  # fmt: skip

IDEAS_SCHEMA = {
    "type": "object",
    "properties": {
        "ideas": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "hypothesis": {"type": "string"},
                    "rationale": {"type": "string"},
                    "expected_effect": {"type": "string"},
                    # Ids of library insights the idea applies (from the prompt's list); [] for none.
                    "applies": {"type": "array", "items": {"type": "integer"}},
                },
                "required": ["title", "hypothesis", "rationale", "expected_effect", "applies"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["ideas"],
    "additionalProperties": False,
}


def words(idea: Idea) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(f"{idea.title} {idea.hypothesis}".lower()) if w not in _STOP)


def too_close(a: Idea, b: Idea) -> bool:
    wa, wb = words(a), words(b)
    title_a = " ".join(w for w in _WORD.findall(a.title.lower()) if w not in _STOP)
    title_b = " ".join(w for w in _WORD.findall(b.title.lower()) if w not in _STOP)
    if title_a and title_a == title_b:
        return True
    if not wa or not wb:
        return False
    return len(wa & wb) / len(wa | wb) >= SIMILAR


def distinct(candidates: Iterable[Idea], tried: Iterable[Idea]) -> tuple[list[Idea], list[Idea]]:
    """(kept, dropped): candidates with near-duplicates of tried ideas and of earlier candidates removed."""
    seen = list(tried)
    kept: list[Idea] = []
    dropped: list[Idea] = []
    for idea in candidates:
        if any(too_close(idea, old) for old in seen):
            dropped.append(idea)
        else:
            kept.append(idea)
            seen.append(idea)
    return kept, dropped


def parse_ideas(value: dict, offered: set[int] | None = None) -> list[Idea]:
    raw = value.get("ideas")
    if not isinstance(raw, list):
        raise BrainError("ideate: the answer has no list of ideas")
    ideas = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        title = str(item.get("title") or "").strip()
        if not title:
            continue  # an idea without a title cannot be told apart from others or shown
        applies = parse_applies(item.get("applies"), offered or set())
        ideas.append(Idea(
            title=title[:120], hypothesis=str(item.get("hypothesis") or "").strip()[:2000],
            rationale=str(item.get("rationale") or "").strip()[:2000],
            expected_effect=str(item.get("expected_effect") or "").strip()[:500],
            params={"applies": applies} if applies else {},
        ))  # fmt: skip
    return ideas


def ideate(client: LLMClient, ctx: BrainContext, *, n: int, tried: list[Idea],
           temperature: float | None = None) -> tuple[list[Idea], list[Idea]]:
    """(new distinct ideas, dropped near-duplicates) for ctx's line; BrainError when none survive."""
    mine = {p.idea.title for p in ctx.history}
    elsewhere = [i.title for i in tried if i.title and i.title not in mine][-ELSEWHERE:]
    prompt = render("ideate", **state_values(ctx), files=editable_files(ctx.task_dir, ctx.task), n=n,
                    elsewhere=elsewhere, insights=insight_lines(ctx.insights))
    try:
        value = ask_json(client, prompt, system=render("ideate_system"), schema=IDEAS_SCHEMA, temperature=temperature,
                         context=CallContext(role="ideate", experiment_id=ctx.experiment_id, line_id=ctx.line_id))
    except NoJSONAnswer as exc:
        raise BrainError(str(exc)) from exc
    ideas = parse_ideas(value, {i.id for i in ctx.insights if i.id is not None})
    if not ideas:
        raise BrainError("ideate: the model proposed no usable idea (each needs a title)")
    kept, dropped = distinct(ideas, tried)
    if not kept:
        titles = "; ".join(i.title for i in dropped[:5])
        raise BrainError(f"ideate: all {len(ideas)} ideas were too close to ideas already tried ({titles})")
    return kept, dropped
