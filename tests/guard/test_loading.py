"""rules.toml is data: the packaged file loads, a new rule needs no code, and mistakes are named clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labmind.guard import RuleError, default_rules, load_rules
from labmind.guard.findings import Change
from labmind.guard.rules import run_rules

from .guardkit import TASK, check, train_with

CONTRACT = {
    "timer_patch", "harness_patch", "compare_patch", "protected_read", "exit_trick", "stack_snoop",
    "metric_print", "outliving_work", "precision_toggle", "seed_only", "seed_pick", "literal_table",
}  # fmt: skip


def test_packaged_rules_cover_the_contract() -> None:
    rules = {r.name: r for r in default_rules()}
    assert set(rules) >= CONTRACT
    assert {n for n, r in rules.items() if r.family == "scope"} == {"shadow_module", "symlink_out"}
    for name in CONTRACT:
        assert (rules[name].family, rules[name].severity) == ("static", "flag")
    for rule in rules.values():
        assert rule.explanation.endswith(".") and ". " not in rule.explanation, rule.name
        assert rule.file_matchers or rule.change_matchers


GOOD = """
[[rule]]
name = "wandb_off"
family = "static"
severity = "flag"
explanation = "Turning experiment tracking off hides what the run did."
[[rule.match]]
kind = "call"
names = ["wandb.init"]
arg_regex = "disabled"
"""


def test_a_new_rule_is_only_data(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(GOOD)
    rules = load_rules(path)
    check(tmp_path, {})  # lays out the task tree
    task_dir = tmp_path / "task"
    (task_dir / "train.py").write_text(train_with('wandb.init(mode="disabled")', imports="import wandb\n"))
    findings = run_rules(rules, Change(TASK, task_dir, lambda p: None, ["train.py"]))
    assert [(f.rule, f.evidence) for f in findings] == [("wandb_off", 'wandb.init(mode="disabled")')]


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('severity = "flag"', 'severity = "warn"', "rule 'wandb_off': field 'severity': expected one of reject, flag"),
        ('family = "static"', 'family = "dynamic"', "rule 'wandb_off': field 'family'"),
        ('explanation = "Turning experiment tracking off hides what the run did."', 'explanation = ""',
         "rule 'wandb_off': field 'explanation'"),
        ('name = "wandb_off"', 'name = "Wandb Off"', "field 'name': expected a lower_snake_case name"),
        ('kind = "call"', 'kind = "calls"', "rule 'wandb_off': field 'match[0].kind': expected one of"),
        ('names = ["wandb.init"]', 'names = "wandb.init"', "rule 'wandb_off': field 'match[0].names': expected a list"),
        ('names = ["wandb.init"]', 'nmes = ["wandb.init"]', "field 'match[0].nmes': unknown parameter"),
        ('names = ["wandb.init"]\n', "", "rule 'wandb_off': field 'match[0].names': required by kind 'call'"),
        ('arg_regex = "disabled"', 'arg_regex = "(unclosed"', "field 'match[0].arg_regex': not a valid regular"),
        ('arg_regex = "disabled"', "arg_regex = 3", "field 'match[0].arg_regex': expected str, got 3"),
        ('family = "static"', 'family = "static"\nlevel = 2', "rule 'wandb_off': field 'level': unknown field"),
    ],
)  # fmt: skip
def test_malformed_entry_names_the_rule_and_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    message = _error(tmp_path, GOOD.replace(old, new, 1))
    assert expected in message
    assert str(tmp_path / "rules.toml") in message


def test_rule_without_matchers(tmp_path: Path) -> None:
    text = GOOD.split("[[rule.match]]")[0]
    assert "rule 'wandb_off': field 'match': expected one or more [[rule.match]] tables" in _error(tmp_path, text)


def test_duplicate_rule_names(tmp_path: Path) -> None:
    assert "rule 'wandb_off': field 'name': defined twice" in _error(tmp_path, GOOD + GOOD)


def test_wrong_type_of_int_parameter(tmp_path: Path) -> None:
    text = GOOD.replace(
        'kind = "call"\nnames = ["wandb.init"]\narg_regex = "disabled"', 'kind = "large_literal"\nmax_elements = true'
    )
    assert "field 'match[0].max_elements': expected int, got True" in _error(tmp_path, text)


def test_unnamed_rule_is_named_by_position(tmp_path: Path) -> None:
    assert "rule #1: field 'name'" in _error(tmp_path, GOOD.replace('name = "wandb_off"\n', ""))


def test_invalid_toml_and_empty_file(tmp_path: Path) -> None:
    assert re.search(r"cannot read rules", _error(tmp_path, "[[rule]\n"))
    assert "expected one or more [[rule]] tables" in _error(tmp_path, "")
