"""Recorded values and recorded text never break a lab or a terminal (issue 10, classes 5 and 7), with the
real `labmind` command on the toy task of tests/lab."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from lab.toy import git, labmind, make_toy

ESCAPES = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m\\u202eevil"
PRINTS_ESCAPES = f"""from pathlib import Path
Path("train.py").write_text("import sys\\nprint('{ESCAPES}')\\nsys.exit(3)\\n")
Path(__import__("os").environ["LABMIND_IDEA"]).write_text("title with \\x1b[2J escape")
"""


@pytest.mark.slow
def test_control_sequences_from_runs_are_shown_not_obeyed(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "brains" / "escapes.py").write_text(PRINTS_ESCAPES)
    git(task, "add", "-A")
    git(task, "commit", "-qm", "escape brain")
    run = labmind("run", str(task), "--brain", "command:python brains/escapes.py", "--max-experiments", "1",
                  "--slots", "1", "--plain")
    shown = labmind("show", "2", str(task))
    listed = labmind("log", str(task))
    for out in (run.stdout, shown.stdout, listed.stdout):
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in run.stdout  # shown, as escapes
    assert "\\x1b" in shown.stdout and "crashed" in shown.stdout
    data = json.loads(labmind("show", "2", str(task), "--json").stdout)
    assert "\x1b" in data["idea"]["title"]  # JSON keeps the text exactly (escaped by JSON itself)


@pytest.mark.slow
def test_a_recorded_value_beyond_the_statistics_never_stops_the_lab(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("run", str(task), "--brain", "command:python brains/write.py good", "--max-experiments", "1",
            "--slots", "1", "--plain")
    # A lab made before labmind bounded metrics: one run and one experiment hold -1e308.
    with sqlite3.connect(task / ".labmind" / "lab.db") as db:
        db.execute("UPDATE runs SET metric = -1e308 WHERE id = (SELECT MAX(id) FROM runs WHERE metric IS NOT NULL)")
        db.execute("UPDATE experiments SET metric = -1e308, metric_sd = 1e300, ci_low = -1e308, ci_high = 1e308 "
                   "WHERE id = 2")
    for verb in (["status", str(task)], ["status", str(task), "--json"], ["log", str(task)], ["show", "2", str(task)],
                 ["report", str(task)], ["export", str(task), "--what", "runs", "--out", "-"],
                 ["guard-report", str(task)], ["resume", str(task), "--plain"]):
        out = labmind(*verb, check=False)
        assert out.returncode == 0, f"labmind {' '.join(verb)}: {out.stdout[-500:]}\n{out.stderr[-1500:]}"
        assert "Traceback" not in out.stderr


def test_check_measures_the_baseline_of_a_task_without_knobs(tmp_path: Path) -> None:
    task = tmp_path / "task"
    task.mkdir()
    (task / "run.py").write_text("import os\nprint('score:', 1 + int(os.environ['SEED']) % 3 * 0.01)\n")
    (task / "labmind.toml").write_text('[task]\neditable = ["run.py"]\n[run]\ncommand = "python run.py"\n'
                                       '[metric]\nname = "score"\ngoal = "maximize"\n')
    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "no knobs")
    out = labmind("check", str(task), "--plain", check=False)
    assert out.returncode == 0, out.stderr
    assert "baseline score" in out.stdout


def test_an_option_refused_after_the_store_opened_leaves_no_lab(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    out = labmind("run", str(task), "--brain", "no-such-brain", "--plain", check=False)
    assert out.returncode == 1 and "unknown brain 'no-such-brain'" in out.stderr
    assert not (task / ".labmind").exists()
    again = labmind("resume", str(task), check=False)
    assert again.returncode == 1 and "no lab to resume" in again.stderr
