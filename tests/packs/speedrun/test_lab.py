"""The packed speedrun task through `labmind run` on the CPU: the baseline against the target, a candidate
that misses the target dropped at screening with its loss, whatever its time (the record's rule)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABMIND = [sys.executable, "-m", "labmind.cli.main"]

# A candidate that trains with a learning rate 10,000 times upstream's: the loss explodes, the run still ends.
BRAIN = """set -e
sed -i 's/lr=3e-3/lr=30.0/' train_gpt.py
grep -q 'lr=30.0' train_gpt.py
echo 'Raise the learning rate 10,000x' > "$LABMIND_IDEA"
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.mark.slow
def test_a_candidate_that_misses_the_target_is_dropped_at_screening(packed: Path, tmp_path: Path) -> None:
    task = tmp_path / "task"
    shutil.copytree(packed, task, ignore=shutil.ignore_patterns(".git", ".labmind"))
    toml = task / "labmind.toml"
    # The stand-in's loss after 7 steps is ~10.2-10.5 (ln 50,257 = 10.82 at the start): a target it reaches;
    # runs on the CPU (the packed task asks for one GPU).
    text = toml.read_text().replace('gate = "val_loss < 4"', 'gate = "val_loss < 10.9"')
    toml.write_text(text.replace("gpus = 1", "gpus = 0"))
    _git(task, "init", "-q")
    _git(task, "add", "-A")
    _git(task, "commit", "-qm", "packed")
    brain = tmp_path / "brain.sh"
    brain.write_text(BRAIN)
    env = {**os.environ, "COLUMNS": "200", "LABMIND_ATTENTION": "native"}
    # No sandbox: the pack's shards lie under pytest's /tmp, which sandboxed runs do not see (the pack warns).
    proc = subprocess.run([*LABMIND, "run", str(task), "--brain", f"command:sh {brain}", "--max-experiments", "1",
                           "--slots", "1", "--sandbox", "none", "--plain"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["id"]: r for r in json.loads(subprocess.run([*LABMIND, "log", str(task), "--json"], env=env,
                                                           capture_output=True, text=True, check=True).stdout)}
    assert rows[1]["kind"] == "baseline" and rows[1]["n_runs"] >= 3
    shown = json.loads(subprocess.run([*LABMIND, "show", "2", str(task), "--json"], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    assert shown["verdict"] == "not_improved"
    assert "missed the target: val_loss" in shown["reason"] and "needed < 10.9" in shown["reason"]
    assert [r["purpose"] for r in shown["runs"]] == ["screen"]  # one run: no verification of a missed target
    assert shown["runs"][0]["secondary"]["val_loss"] > 1000
