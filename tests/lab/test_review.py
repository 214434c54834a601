"""A person's decision on flagged experiments, and the guard's figures."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from .toy import LABMIND, labmind, log, make_toy, show, status


def flagged_lab(tmp_path: Path, experiments: int = 2) -> Path:
    task = make_toy(tmp_path / "task")
    # Printing the metric twice is flagged (metric_repeated): a would-be improvement held for a person.
    labmind("run", str(task), "--brain", "command:python brains/write.py repeat", "--max-experiments",
            str(experiments), "--slots", "2", "--plain")
    return task


def test_guard_report_counts_flags_and_reviews(tmp_path: Path) -> None:
    task = flagged_lab(tmp_path)
    figures = json.loads(labmind("guard-report", str(task), "--json").stdout)
    assert figures["experiments"] == 2 and figures["checked"] == 2 and figures["flagged"] == 2
    # The constant output also collapses the seed variance.
    assert figures["flags_by_rule"] == {"metric_repeated": 2, "variance_collapse": 2}
    assert figures["awaiting_review"] == [2, 3]
    assert figures["audit"].startswith("off")

    accepted = labmind("review", "2", str(task), "--accept", "--note", "the script prints a progress line")
    assert "accepted as improved" in accepted.stdout and "incumbent" in accepted.stdout
    exp = show(task, 2)
    assert exp["verdict"] == "improved" and "accepted by a person" in exp["reason"]
    assert "metric_repeated" in [f["rule"] for f in exp["flags"]]  # the evidence stays on record
    assert status(task)["best"]["experiment"] == 2

    labmind("review", "3", str(task), "--reject")
    assert show(task, 3)["verdict"] == "rejected"
    figures = json.loads(labmind("guard-report", str(task), "--json").stdout)
    assert figures["person_reviews"] == {"accepted": 1, "rejected": 1}
    assert figures["rejections_by_rule"] == {"person": 1}
    assert figures["flags_by_rule"] == {"metric_repeated": 2, "variance_collapse": 2}

    again = labmind("review", "2", str(task), "--reject", check=False)
    assert again.returncode == 1 and "not flagged" in again.stderr
    both = labmind("review", "3", str(task), check=False)
    assert both.returncode == 1 and "exactly one of --accept or --reject" in both.stderr


def test_review_reaches_a_running_lab_through_its_inbox(tmp_path: Path) -> None:
    task = flagged_lab(tmp_path, experiments=1)
    # Keep the lab busy with hanging runs while the review is posted.
    proc = subprocess.Popen([*LABMIND, "resume", str(task), "--brain", "command:python brains/write.py hang",
                             "--max-experiments", "3", "--plain"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while status(task)["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        out = labmind("review", "2", str(task), "--reject", "--note", "not trusted")
        assert "the lab is running" in out.stdout
        deadline = time.monotonic() + 30
        while show(task, 2)["verdict"] != "rejected" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert show(task, 2)["verdict"] == "rejected"
        assert "not trusted" in show(task, 2)["reason"]
    finally:
        labmind("stop", str(task), check=False)
        proc.wait(timeout=60)
    assert next(r for r in log(task) if r["id"] == 2)["verdict"] == "rejected"
