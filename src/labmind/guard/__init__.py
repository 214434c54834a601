"""The integrity guard (docs/integrity.md): one pipeline from a proposed change to what the judge may decide.

    check = check_proposal(task, Proposed(...), Pristine(digest))   # layers 1-2: scope, static rules (no run)
    findings = check_candidate(task, Measurement(...))              # layers 4-5: plausibility, hold-out

The lab and `labmind agent submit` both call check_proposal, so an agent hears what the lab would decide; the
lab calls check_candidate before the judge's one decision on a measured candidate. Every result is a Finding
(labmind.findings): rule, path, line and evidence, stored as such. Rules are data in rules.toml.
"""

from labmind.findings import Finding
from labmind.guard.candidate import Clock, Measurement, check_candidate
from labmind.guard.proposal import Pristine, ProposalCheck, Proposed, allowed_rules, check_proposal
from labmind.guard.rules import Rule, RuleError, check_change, default_rules, load_rules

__all__ = [
    "Clock",
    "Finding",
    "Measurement",
    "Pristine",
    "ProposalCheck",
    "Proposed",
    "Rule",
    "RuleError",
    "allowed_rules",
    "check_candidate",
    "check_change",
    "check_proposal",
    "default_rules",
    "load_rules",
]
