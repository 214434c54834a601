"""Insights: lessons with evidence, kept in the user's library and reused across tasks.

An insight is born from a confirmed verdict (`improved`: verified on fresh seeds) or from an instructive
failure (a *dead end*: a family of ideas that keeps failing). It carries where it came from (provenance),
what it measured (effect with its CI and the runs behind it) and how it has fared where it was applied since.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from labmind.scale import Scale, effect_with_ci_text


class Kind(StrEnum):
    INSIGHT = "insight"  # a confirmed improvement
    DEAD_END = "dead_end"  # a family of ideas that kept failing
    GUARD = "guard"  # a cheat a person confirmed (review --reject): checked against every later change


class Status(StrEnum):
    PROPOSED = "proposed"  # born from one lab's confirmed evidence
    VALIDATED = "validated"  # confirmed again where it was applied (another lab), or by a person
    RETRACTED = "retracted"  # contradicted with confidence, or withdrawn by a person: never retrieved again


@dataclass(frozen=True)
class Effect:
    """The measured effect behind an insight, on the judge's scale ('better' units: positive = better).

    `text` is the human form (a percentage on a log scale), `low`/`high` the 95% CI, `n_cand`/`n_ref` the runs
    behind each side, `p_value` the claim test's."""

    value: float
    low: float | None
    high: float | None
    scale: str  # "log" | "linear"
    metric: str
    goal: str
    n_cand: int
    n_ref: int
    p_value: float | None = None
    before: float | None = None  # the metric's value at the reference (the line's verified point)
    after: float | None = None  # at the insight's experiment

    def text(self) -> str:
        """As the judge says an effect: the metric's change, its direction, its 95% CI, the runs behind it."""
        sign = 1.0 if self.goal == "maximize" else -1.0
        scale = Scale.LOG if self.scale == Scale.LOG else Scale.LINEAR  # an imported record is not validated
        effect = effect_with_ci_text(scale, self.value, sign, self.low, self.high)
        moved = f"{self.before:.4g} → {self.after:.4g}, " if self.before is not None and self.after is not None else ""
        return f"{self.metric} {moved}{effect}, n={self.n_cand} vs {self.n_ref}"


@dataclass(frozen=True)
class Provenance:
    """Where an insight came from: the lab (task name and directory), its experiments, the commit."""

    lab: str
    lab_dir: str
    experiments: tuple[int, ...]
    commit: str | None = None
    brain: str = ""


@dataclass(frozen=True)
class KnobChange:
    """What the knobs brain learned about one setting: where it went, in which direction, by what factor."""

    name: str
    before: Any
    after: Any

    @property
    def direction(self) -> str:
        if isinstance(self.before, bool) or isinstance(self.after, bool) or not _numeric(self.before, self.after):
            return "set"
        return "up" if self.after > self.before else "down" if self.after < self.before else "same"

    @property
    def factor(self) -> float | None:
        if _numeric(self.before, self.after) and not isinstance(self.before, bool) and self.before > 0 < self.after:
            return float(self.after) / float(self.before)
        return None


def _numeric(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)


@dataclass(frozen=True)
class Insight:
    """One lesson. `key` makes recording idempotent (a resumed lab never writes the same insight twice)."""

    key: str
    kind: Kind
    title: str
    body: str  # what changed and why it helped or failed
    task: str
    family: str  # e.g. "training/llm", "kernel/reduction"; the task's name when it declares none
    provenance: Provenance
    effect: Effect | None = None  # None for a dead end without a comparable effect
    tags: tuple[str, ...] = ()
    diff_excerpt: str = ""
    knobs: tuple[KnobChange, ...] = ()
    status: Status = Status.PROPOSED
    status_reason: str = ""
    applications: int = 0  # judged experiments elsewhere that said they applied it
    hits: int = 0  # of which ended `improved`
    id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Verdict counts behind a dead end (e.g. {"not_improved": 4, "crashed": 1}).
    evidence: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.applications if self.applications else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"], d["status"] = self.kind.value, self.status.value
        d["tags"] = list(self.tags)
        d["provenance"]["experiments"] = list(self.provenance.experiments)
        d["knobs"] = [{"name": k.name, "before": k.before, "after": k.after, "direction": k.direction,
                       "factor": k.factor} for k in self.knobs]
        d["effect_text"] = self.effect.text() if self.effect else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Insight:
        """From `to_dict` output (JSONL import). Raises ValueError naming the field that is wrong."""
        try:
            prov = data["provenance"]
            effect = data.get("effect")
            return cls(
                key=str(data["key"]), kind=Kind(data["kind"]), title=str(data["title"]), body=str(data.get("body", "")),
                task=str(data["task"]), family=str(data["family"]),
                provenance=Provenance(lab=str(prov["lab"]), lab_dir=str(prov.get("lab_dir", "")),
                                      experiments=tuple(int(e) for e in prov.get("experiments", ())),
                                      commit=prov.get("commit"), brain=str(prov.get("brain", ""))),
                effect=Effect(**{k: effect[k] for k in Effect.__dataclass_fields__ if k in effect}) if effect else None,
                tags=tuple(str(t) for t in data.get("tags", ())), diff_excerpt=str(data.get("diff_excerpt", "")),
                knobs=tuple(KnobChange(str(k["name"]), k.get("before"), k.get("after")) for k in data.get("knobs", ())),
                status=Status(data.get("status", Status.PROPOSED)), status_reason=str(data.get("status_reason", "")),
                applications=int(data.get("applications", 0)), hits=int(data.get("hits", 0)),
                created_at=float(data.get("created_at", 0.0)), updated_at=float(data.get("updated_at", 0.0)),
                evidence={str(k): int(v) for k, v in (data.get("evidence") or {}).items()},
            )
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc

    def with_(self, **changes: Any) -> Insight:
        return replace(self, **changes)


def dumps(insight: Insight) -> str:
    return json.dumps(insight.to_dict(), sort_keys=True, default=str)
