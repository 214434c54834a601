"""`labmind status` and `labmind report` on a campaign directory: every task's lab, and the campaign's mean."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .toy import labmind, make_toy


def test_campaign_status_and_report_cover_every_task(tmp_path: Path) -> None:
    root = tmp_path / "camp"
    make_toy(root / "a")
    make_toy(root / "b")
    (root / "campaign.json").write_text(json.dumps({"tasks": [{"name": "a", "path": "a"}, {"name": "b"}]}))
    (root / "baseline.json").write_text(json.dumps({"a": {"sol_score": 0.25}, "b": {"sol_score": 0.75}}))
    labmind("run", str(root / "a"), "--max-experiments", "2", "--plain")

    data = json.loads(labmind("status", str(root), "--json").stdout)
    a, b = data["rows"]
    assert (data["tasks"], data["labs"], data["metric"]) == (2, 1, {"name": "loss", "goal": "minimize"})
    assert a["task"] == "a" and a["state"] == "stopped" and a["experiments"] == 2 and a["start"] == 0.25
    assert a["baseline"] is not None and sum(a["verdicts"].values()) == 2
    assert a["current"] == (a["best"] if a["best"] is not None else a["baseline"])
    assert (b["state"], b["start"], b["current"], b["experiments"]) == ("not started", 0.75, 0.75, 0)
    assert data["mean_start"] == 0.5 and data["mean_current"] == statistics.fmean([a["current"], 0.75])

    text = labmind("status", str(root)).stdout
    assert "campaign camp: 2 tasks, 1 with a lab" in text and "not started" in text
    labmind("report", str(root))
    report = (root / "report" / "campaign.md").read_text()
    assert "| b | 0.75 | – | – | – | 0 | – | not started |" in report and "Mean loss: start 0.5" in report

    (root / "campaign.json").write_text('{"problems": []}')
    bad = labmind("status", str(root), check=False)
    assert bad.returncode == 1 and "is not a campaign manifest" in bad.stderr
