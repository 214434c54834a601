"""Watching a lab: progress (N/max, elapsed vs budget, ETA) in --plain and `status`; plain `status` with the
best's CI, p-value and branch and the lines; `log` ideas in full."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labmind.lab.progress import duration_text, progress, progress_text

from .toy import LABMIND, labmind, make_toy, status


@dataclass
class Row:
    kind: str = "candidate"
    verdict: str | None = None
    finished_at: float | None = None


def test_progress_estimates_the_sooner_of_budget_and_pace() -> None:
    rows = [Row(verdict="kept", finished_at=1010.0), Row(verdict="not_improved", finished_at=1020.0), Row()]
    p = progress(rows, made=3, max_experiments=10, session={"started_at": 1000.0, "budget_s": 3600.0},
                 running=True, now=1030.0)
    # 2 verdicts in 30 s: 8 more take 120 s, sooner than the budget's 3570 s.
    assert (p["finished"], p["elapsed_s"], p["eta_s"]) == (2, 30.0, 120.0)
    assert progress_text(p) == "3/10 experiments (2 judged), 30s elapsed of a 1h00m budget, ETA 2m00s"
    short = progress(rows, 3, 10, {"started_at": 1000.0, "budget_s": 60.0}, running=True, now=1030.0)
    assert short["eta_s"] == 30.0  # the budget ends first
    stopped = progress(rows, 3, None, {"started_at": 1000.0, "budget_s": None}, running=False, now=1030.0)
    assert progress_text(stopped) == "3 experiments (2 judged)"


def test_durations_round_before_splitting() -> None:
    assert [duration_text(s) for s in (59.6, 299.6, 3599.7, 7260)] == ["1m00s", "5m00s", "1h00m", "2h01m"]


def test_plain_run_and_status_show_progress_best_and_lines(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    run = labmind("run", str(task), "--max-experiments", "3", "--budget", "10m", "--plain")
    assert "measuring the baseline's noise with 3 runs (at most 1m30s at the 30s timeout on 1 slot(s))" in run.stdout
    assert re.search(r"estimate: the first baseline run took \d+s; the other 2 take about \d+s more", run.stdout)
    lines = [ln for ln in run.stdout.splitlines() if "] progress: " in ln]
    assert lines and re.search(r"progress: 3/3 experiments \(3 judged\), \d+s elapsed of a 10m00s budget, ETA",
                               lines[-1]), lines
    data = status(task)
    assert data["progress"]["experiments"] == 3 and data["progress"]["max_experiments"] == 3
    out = labmind("status", str(task)).stdout
    assert "3/3 experiments (3 judged)" in out
    assert "incumbent" in out and "line " in out  # the lines table
    assert "slot  run" not in out  # nothing runs: no empty running table
    best = data["best"]
    if best and best["confirmed"]:
        assert f"p={best['p_value']:.3g}" in out and "branch labmind/toy" in out and "95% CI" in out


def test_log_shows_ideas_in_full(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("run", str(task), "--max-experiments", "2", "--plain")
    titles = [r["idea"]["title"] for r in json.loads(labmind("log", str(task), "--json").stdout)
              if r["kind"] == "candidate"]
    env = {**os.environ, "COLUMNS": "80"}
    narrow = subprocess.run([*LABMIND, "log", str(task)], capture_output=True, text=True, env=env).stdout
    wide = labmind("log", str(task), "--wide").stdout
    for title in titles:
        assert title in wide and "…" not in wide
        assert title.replace(" ", "") in "".join(narrow.split())  # wrapped at 80 columns, never clipped
        # ... and wrapped between settings, not inside one (the idea column keeps room for a setting).
        assert all(word in narrow.split() for word in title.split() if len(word) <= 24)
    assert "…" not in narrow


def test_exclusive_runs_never_overlap_and_each_run_records_who_ran_alongside(tmp_path: Path) -> None:
    shared = make_toy(tmp_path / "shared", sleep=0.5)
    labmind("run", str(shared), "--slots", "2", "--max-experiments", "2", "--plain")
    runs = [r for e in json.loads(labmind("log", str(shared), "--json").stdout)
            for r in json.loads(labmind("show", str(e["id"]), str(shared), "--json").stdout)["runs"]]
    assert all(r["alongside"] is not None for r in runs)
    assert any(r["alongside"] for r in runs)  # two slots: some runs shared the machine, and it is on record

    alone = make_toy(tmp_path / "alone", sleep=0.5)
    toml = alone / "labmind.toml"
    toml.write_text(toml.read_text().replace('timeout = "30s"', 'timeout = "30s"\nexclusive = true'))
    from .toy import git

    git(alone, "commit", "-qam", "timing task")
    labmind("run", str(alone), "--slots", "2", "--max-experiments", "2", "--plain")
    runs = [r for e in json.loads(labmind("log", str(alone), "--json").stdout)
            for r in json.loads(labmind("show", str(e["id"]), str(alone), "--json").stdout)["runs"]]
    assert runs and all(r["alongside"] == [] for r in runs)  # each ran alone


def test_a_time_like_metric_on_several_slots_gets_a_warning(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    toml = task / "labmind.toml"
    toml.write_text(toml.read_text().replace('name = "loss"', 'name = "step_time_ms"'))
    (task / "train.py").write_text((task / "train.py").read_text().replace('print(f"loss:', 'print(f"step_time_ms:'))
    from .toy import git

    git(task, "commit", "-qam", "a timing task")
    out = labmind("check", str(task), "--slots", "2", "--plain").stdout
    assert "looks like a time" in out and "[run] exclusive = true" in out
