"""The integrity guard's static layer (docs/integrity.md, layers 1 and 2): scope and static rules over a change.

    findings = check_change(task, new_dir, old_source, changed, allow=task_allow_list)

Each Finding names its rule, family ("scope" or "static"), severity ("reject" or "flag"), the file and line,
the offending line as evidence and one sentence of explanation. Rules are data in rules.toml.
"""

from labmind.guard.findings import Finding
from labmind.guard.rules import Rule, RuleError, check_change, default_rules, load_rules

__all__ = ["Finding", "Rule", "RuleError", "check_change", "default_rules", "load_rules"]
