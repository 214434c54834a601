"""A finding: one integrity flag with its rule, where it was found, and the evidence.

The one noun for a flag everywhere: the guard's checks return findings, the store keeps them in the
`flags` columns as JSON objects `{"rule", "path", "line", "evidence"}` (path and line may be null), every
`--json` output shows that object, and `text()` is the one way a finding is written for tables and reports.
Counts by rule (`labmind guard-report`, "N integrity check(s) hold it") read `rule`, never the message text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    rule: str  # e.g. "timer_patch", "beyond_bound", "metric_repeated"
    path: str | None = None  # task-relative file, when the finding is about one
    line: int | None = None
    evidence: str = ""  # the offending source line (stripped, <= 200 chars) or a short description
    # How the guard judged it when it was found. Not stored: the rule's definition (rules.toml) says it again.
    family: str = field(default="", compare=False)  # "scope" | "static" | "audit" | "plausibility" | "run" ...
    severity: str = field(default="flag", compare=False)  # "reject" (hard rule) | "flag" (needs a person)
    explanation: str = field(default="", compare=False)  # one sentence: why this is suspicious

    def text(self) -> str:
        """The finding as one line: `rule: path:line: evidence`, leaving out what it does not have."""
        detail = self.detail()
        return f"{self.rule}: {detail}" if detail else self.rule

    def detail(self) -> str:
        """What `text()` says after the rule: `path:line: evidence` (a path is shown without a line only when the
        evidence does not already name it)."""
        if self.path and self.line is not None:
            where = f"{self.path}:{self.line}"
        elif self.path and self.path not in self.evidence:
            where = self.path
        else:
            where = ""
        return ": ".join(part for part in (where, self.evidence) if part)

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "path": self.path, "line": self.line, "evidence": self.evidence}

    @classmethod
    def from_json(cls, value: Any) -> Finding:
        """A finding from its stored object. A plain string is a flag from a store older than schema 5 (written
        `rule: evidence`), read the way the schema-5 migration converts it."""
        if isinstance(value, str):
            rule, _, evidence = value.partition(":")
            return cls(rule.strip(), evidence=evidence.strip())
        if not isinstance(value, dict) or not isinstance(value.get("rule"), str):
            raise ValueError(f"a finding is an object with a string 'rule', got {value!r}")
        line = value.get("line")
        path = value.get("path")
        return cls(value["rule"], path=path if isinstance(path, str) else None,
                   line=line if isinstance(line, int) and not isinstance(line, bool) else None,
                   evidence=str(value.get("evidence") or ""))


def merged(*groups: Iterable[Finding]) -> list[Finding]:
    """The findings of all groups, each once, in a stable order (by rule, then where, then evidence)."""
    unique = {f: None for group in groups for f in group}
    return sorted(unique, key=lambda f: (f.rule, f.path or "", f.line or 0, f.evidence))


def rules_of(findings: Iterable[Finding]) -> list[str]:
    """The distinct rules of `findings`, sorted: what counts say ("2 integrity check(s)")."""
    return sorted({f.rule for f in findings})


def findings_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    return [f.to_json() for f in findings]


def stored(text: str) -> list[Finding]:
    """A `flags` column as the store holds it (a JSON list). A store opened read-only is not migrated: its flags
    may still be schema-4 strings, which `Finding.from_json` reads too."""
    return [Finding.from_json(item) for item in json.loads(text)]
