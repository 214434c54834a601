"""Static rules over a change, interpreted from rules.toml.

A rule is data: a name, a family, a severity, one explanation, and one or more matchers. A matcher is one
of a few generic kinds (calls of qualified names, attribute patches, string literals...: matchers.py,
seeds.py, seedpick.py, shadow.py), so a newly confirmed hack is usually a new TOML entry rather than new code.

Only what a change introduces is reported: every rule runs on the parent's and the new text of each changed
file, and a finding counts only when its (rule, evidence) is not already in the parent as often.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from labmind.guard.findings import Change, Finding, Hit, normalized
from labmind.guard.matchers import (
    AssignAttrMatcher,
    AssignModuleAttrMatcher,
    AttrAccessMatcher,
    CallMatcher,
    DefineMethodMatcher,
    LargeLiteralMatcher,
    RegexMatcher,
    SettingChangeMatcher,
    StringLiteralMatcher,
    names_protected,
)
from labmind.guard.seedpick import SeedPickMatcher
from labmind.guard.seeds import SeedOnlyMatcher
from labmind.guard.shadow import ShadowModule, SymlinkOut
from labmind.guard.source import METRIC_PLACEHOLDER, Source, TaskFacts, name_matches
from labmind.task.model import Task

RULES_FILE = Path(__file__).with_name("rules.toml")
FAMILIES = ("scope", "static")
SEVERITIES = ("reject", "flag")


class RuleError(ValueError):
    """A malformed rules file; the message names the rule and the field."""


FILE_KINDS: dict[str, type] = {
    m.kind: m
    for m in (
        CallMatcher,
        AssignAttrMatcher,
        AssignModuleAttrMatcher,
        DefineMethodMatcher,
        StringLiteralMatcher,
        SettingChangeMatcher,
        LargeLiteralMatcher,
        AttrAccessMatcher,
        RegexMatcher,
        SeedPickMatcher,
    )
}
CHANGE_KINDS: dict[str, type] = {m.kind: m for m in (SeedOnlyMatcher, ShadowModule, SymlinkOut)}


# --------------------------------------------------------------------------- rules and loading


@dataclass(frozen=True)
class Rule:
    name: str
    family: str
    severity: str
    explanation: str
    file_matchers: tuple[Any, ...] = ()
    change_matchers: tuple[Any, ...] = ()
    #: Whether the rule is about how the metric is measured (see rules.toml); False: a trusted evaluator's
    #: measurement stands without a person's review.
    measurement: bool = True

    def finding(self, hit: Hit) -> Finding:
        return Finding(self.name, path=hit.path, line=hit.line, evidence=hit.evidence, family=self.family,
                       severity=self.severity, explanation=self.explanation)

    def scan_file(self, src: Source, facts: TaskFacts) -> list[Hit]:
        hits: dict[tuple[int | None, str], Hit] = {}
        for matcher in self.file_matchers:
            found = matcher.scan_python(src, facts) if src.tree is not None else matcher.scan_text(src, facts)
            for hit in found:
                hits.setdefault((hit.line, normalized(hit.evidence)), hit)  # two matchers, one line: one finding
        return sorted(hits.values(), key=lambda h: (h.line or 0, h.evidence))


def load_rules(path: Path | None = None) -> list[Rule]:
    """Rules from a TOML file (the packaged rules.toml by default); a malformed entry raises RuleError."""
    path = path or RULES_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"{path}: cannot read rules: {exc}") from exc
    entries = data.get("rule")
    if not isinstance(entries, list) or not entries:
        raise RuleError(f"{path}: expected one or more [[rule]] tables")
    unknown = set(data) - {"rule"}
    if unknown:
        raise RuleError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected only [[rule]]")
    rules: list[Rule] = []
    for index, entry in enumerate(entries):
        rule = _parse_rule(entry, index, path)
        if any(r.name == rule.name for r in rules):
            raise RuleError(f"{path}: rule {rule.name!r}: field 'name': defined twice")
        rules.append(rule)
    return rules


@lru_cache(maxsize=1)
def default_rules() -> tuple[Rule, ...]:
    return tuple(load_rules())


_RULE_FIELDS = ("name", "family", "severity", "explanation", "measurement", "match")


def _parse_rule(entry: Any, index: int, path: Path) -> Rule:
    label = f"#{index + 1}"
    if not isinstance(entry, dict):
        raise RuleError(f"{path}: rule {label}: expected a table")
    name = entry.get("name")
    if isinstance(name, str) and name:
        label = repr(name)

    def fail(field_name: str, problem: str) -> RuleError:
        return RuleError(f"{path}: rule {label}: field '{field_name}': {problem}")

    for key in entry:
        if key not in _RULE_FIELDS:
            raise fail(key, f"unknown field; expected one of {', '.join(_RULE_FIELDS)}")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise fail("name", f"expected a lower_snake_case name, got {name!r}")
    family, severity, explanation = entry.get("family"), entry.get("severity"), entry.get("explanation")
    if family not in FAMILIES:
        raise fail("family", f"expected one of {', '.join(FAMILIES)}, got {family!r}")
    if severity not in SEVERITIES:
        raise fail("severity", f"expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not isinstance(explanation, str) or not explanation.strip():
        raise fail("explanation", "expected a non-empty sentence")
    measurement = entry.get("measurement", True)
    if not isinstance(measurement, bool):
        raise fail("measurement", f"expected true or false, got {measurement!r}")
    raw = entry.get("match")
    if not isinstance(raw, list) or not raw:
        raise fail("match", "expected one or more [[rule.match]] tables")
    file_matchers, change_matchers = [], []
    for position, params in enumerate(raw):
        matcher = _parse_matcher(params, f"match[{position}]", fail)
        (change_matchers if matcher.kind in CHANGE_KINDS else file_matchers).append(matcher)
    return Rule(name, family, severity, explanation.strip(), tuple(file_matchers), tuple(change_matchers),
                measurement)


def _parse_matcher(params: Any, where: str, fail: Callable[[str, str], RuleError]) -> Any:
    if not isinstance(params, dict):
        raise fail(where, "expected a table")
    kind = params.get("kind")
    cls = FILE_KINDS.get(kind) or CHANGE_KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        kinds = ", ".join(sorted([*FILE_KINDS, *CHANGE_KINDS]))
        raise fail(f"{where}.kind", f"expected one of {kinds}, got {kind!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key == "kind":
            continue
        if key not in fields:
            raise fail(f"{where}.{key}", f"unknown parameter of kind {kind!r}; expected one of {', '.join(fields)}")
        values[key] = _coerce(value, str(fields[key].type), lambda p, k=key: fail(f"{where}.{k}", p))
    for name, spec in fields.items():
        if name not in values and spec.default is dataclasses.MISSING:
            raise fail(f"{where}.{name}", f"required by kind {kind!r}")
    for key in ("regex", "arg_regex", "pattern", "names_regex"):
        if values.get(key):
            try:
                re.compile(values[key].replace(METRIC_PLACEHOLDER, "metric"))
            except re.error as exc:
                raise fail(f"{where}.{key}", f"not a valid regular expression: {exc}") from exc
    return cls(**values)


def _coerce(value: Any, type_name: str, fail: Callable[[str], RuleError]) -> Any:
    if type_name.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail("expected a list of non-empty strings")
        return tuple(value)
    expected = {"str": str, "int": int, "bool": bool}[type_name]
    # bool is an int in Python; a flag written as a count (or the reverse) is a mistake worth naming.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise fail(f"expected {type_name}, got {value!r}")
    return value


# --------------------------------------------------------------------------- running rules on a change


def check_change(
    task: Task,
    new_dir: Path,
    old_source: Callable[[str], str | None],
    changed: list[str],
    *,
    allow: Collection[str] = (),
) -> list[Finding]:
    """Scope and static findings that this change introduces, minus the rules the task allows."""
    return run_rules(default_rules(), Change(task, Path(new_dir), old_source, list(changed)), allow=allow)


def run_rules(rules: Collection[Rule], change: Change, *, allow: Collection[str] = ()) -> list[Finding]:
    active = [r for r in rules if r.name not in set(allow)]
    findings: list[Finding] = []
    for rule in active:
        for matcher in rule.change_matchers:
            findings.extend(rule.finding(hit) for hit in matcher.scan_change(change))
    file_rules = [r for r in active if r.file_matchers]
    if file_rules:
        facts = TaskFacts.of(change.task, change.new_dir)
        for path in change.changed:
            findings.extend(_introduced(file_rules, change, path, facts))
    order = {"scope": 0, "static": 1}
    return sorted(findings, key=lambda f: (order.get(f.family, 2), f.path, f.line or 0, f.rule))


def _introduced(rules: list[Rule], change: Change, path: str, facts: TaskFacts) -> Iterator[Finding]:
    new_text = change.new(path)
    if new_text is None:
        return
    old_text = change.old(path)
    new_src = Source(path, new_text)
    old_src = Source(path, old_text) if old_text is not None else None
    for rule in rules:
        before = Counter(normalized(h.evidence) for h in rule.scan_file(old_src, facts)) if old_src else Counter()
        for hit in rule.scan_file(new_src, facts):
            key = normalized(hit.evidence)
            if before[key] > 0:
                before[key] -= 1  # the parent had this line already: moved or untouched, not introduced
            else:
                yield rule.finding(hit)


__all__ = [
    "CHANGE_KINDS",
    "FILE_KINDS",
    "RULES_FILE",
    "Rule",
    "RuleError",
    "Source",
    "TaskFacts",
    "check_change",
    "default_rules",
    "load_rules",
    "name_matches",
    "names_protected",
    "run_rules",
]
