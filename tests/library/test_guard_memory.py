"""Guard memory: a cheat a person rejects becomes a guard example, and later changes in any lab of the user that
introduce the same code are flagged `known_cheat`; the auditor reads the examples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lab.toy import labmind, log, make_toy  # tests/ is on sys.path (rootdir import mode)

from labmind.findings import Finding
from labmind.library import Insight, Kind, Library, Provenance, Status
from labmind.library.guard_memory import added_lines, auditor_notes, known_cheats

CHEAT_DIFF = """diff --git a/train.py b/train.py
--- a/train.py
+++ b/train.py
@@ -1,2 +1,3 @@
 import time
+time.perf_counter = lambda: 0.0   # freeze the clock
+x = 1
"""


def guard(diff: str = CHEAT_DIFF, lab_dir: str = "/labs/a", exp: int = 4) -> Insight:
    return Insight(key=f"{lab_dir}#guard{exp}", kind=Kind.GUARD, title="cheat confirmed by a person: fast", body="b",
                   task="a", family="f", provenance=Provenance(lab="a", lab_dir=lab_dir, experiments=(exp,)),
                   diff_excerpt=diff, status=Status.VALIDATED)


def test_a_change_that_adds_a_confirmed_cheats_line_is_flagged_and_short_lines_never_match() -> None:
    assert added_lines(CHEAT_DIFF) == [("train.py", "time.perf_counter = lambda: 0.0 # freeze the clock")]
    other = CHEAT_DIFF.replace("+++ b/train.py", "+++ b/model.py").replace("   #", "      #")  # re-indented
    [finding] = known_cheats(other, [guard()], lab_dir="/labs/b", experiment_id=1)
    assert finding.rule == "known_cheat" and finding.severity == "flag" and finding.path == "model.py"
    assert "guard example" in finding.explanation and "from a exp 4" in finding.explanation
    assert known_cheats("+++ b/t.py\n+x = 1\n", [guard()], lab_dir="/labs/b") == []
    assert known_cheats(CHEAT_DIFF, [guard()], lab_dir="/labs/a", experiment_id=4) == []  # the example itself
    assert known_cheats(CHEAT_DIFF.replace("0.0", "1.0"), [guard()], lab_dir="/labs/b") == []


def test_the_auditor_reads_the_examples(tmp_path: Path) -> None:
    with Library(tmp_path / "lib.db") as lib:
        assert auditor_notes(lib) == ""
        lib.record(guard())
        notes = auditor_notes(lib)
        assert notes.startswith("Cheats a person confirmed") and "time.perf_counter = lambda" in notes
        # Guard examples are for the guard: brains are never offered them as insights.
        assert lib.search("perf_counter cheat fast", family="f") == []


@pytest.mark.slow
def test_a_rejected_cheat_flags_the_same_cheat_in_another_lab(tmp_path: Path) -> None:
    library = tmp_path / "lib.db"
    first = make_toy(tmp_path / "first")
    common = ["--brain", "command:python brains/write.py repeat", "--slots", "1", "--plain", "--library",
              str(library)]
    labmind("run", str(first), "--max-experiments", "1", *common)
    [exp] = [r for r in log(first) if r["kind"] == "candidate"]
    assert exp["verdict"] == "flagged"
    out = labmind("review", str(exp["id"]), str(first), "--reject", "--note", "prints the metric twice").stdout
    assert "guard example #" in out
    [example] = json.loads(labmind("library", "list", "--kind", "guard", "--library", str(library),
                                   "--json").stdout)
    assert example["status"] == "validated" and "prints the metric twice" in example["status_reason"]
    assert example["provenance"]["experiments"] == [exp["id"]] and "metric_repeated" in example["tags"]
    second = make_toy(tmp_path / "second")
    labmind("run", str(second), "--max-experiments", "1", *common)
    [again] = [r for r in log(second) if r["kind"] == "candidate"]
    assert any(Finding.from_json(f).text().startswith("known_cheat: train.py") for f in again["flags"]), again["flags"]
    assert again["verdict"] in ("flagged", "not_improved")  # flagged when it would improve; never promoted
    assert os.path.exists(library)
