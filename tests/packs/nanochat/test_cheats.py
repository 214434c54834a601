"""The known upstream cheats against a packed task, through labmind's own executor and guard:
reading the validation data (hidden), printing a val_bpb (ignored and flagged). The evaluator-side cheats
(a candidate's own loss, non-causal or stateful models) are in test_evaluator.py."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from labmind.execute.base import RunSpec, Slot
from labmind.execute.prepared import PreparedRunner
from labmind.execute.sandbox import Sandbox
from labmind.guard.rules import check_change
from labmind.task import load_task
from labmind.workspace.scope import protected_files

from .nckit import metric, run_in

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

#: A candidate that reads the hidden validation tokens, reports what it saw, leaves the honest model it was
#: handed as its artifact, and prints a forged score.
CHEAT = """
import os
data = open("data/val.bin", "rb").read()
print(f"cheat: read {len(data)} bytes of data/val.bin")
print("val_bpb: 0.0100")
"""


def _run(mode: str, packed: Path, trained: Path, tmp_path: Path):
    """One run of the cheating command as the lab makes it: run and evaluator in separate checkouts, the
    task's hide and protected lists applied, the evaluator given only the declared artifact."""
    task = load_task(packed)
    run_tree, eval_tree = tmp_path / "run", tmp_path / "eval"
    for tree in (run_tree, eval_tree):
        shutil.copytree(packed, tree, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    (run_tree / "cheat.py").write_text(CHEAT)
    shutil.copyfile(trained / "model.pt2", run_tree / "model.pt2")
    spec = RunSpec(
        run_id=1, command="python cheat.py", workdir=run_tree, writable=run_tree, log_path=tmp_path / "run.log",
        timeout_s=120, metric="val_bpb", evaluate=task.metric.evaluate, eval_workdir=eval_tree,
        eval_writable=eval_tree, artifacts=tuple(task.run.artifacts),
        protected=tuple(protected_files(run_tree, task.task.protected)),
        run_hidden=tuple(protected_files(run_tree, task.run.hide)), token=f"nanochat-{uuid.uuid4().hex}")
    executor = PreparedRunner([Slot(0)], Sandbox(mode))  # type: ignore[arg-type]
    return asyncio.run(executor.run(spec, Slot(0))), (tmp_path / "run.log").read_text()


@pytest.mark.sandbox
@needs_bwrap
def test_hidden_validation_data_and_a_printed_score_gain_nothing(packed: Path, trained: Path, tmp_path: Path) -> None:
    honest = metric(run_in(trained, "labmind_eval.py", "model.pt2").stdout)
    outcome, log = _run("bwrap", packed, trained, tmp_path)
    assert "cheat: read 0 bytes of data/val.bin" in log  # the sandbox shows the run an empty file
    assert outcome.status == "ok" and outcome.sandbox == "bwrap"
    assert outcome.metric == pytest.approx(honest, abs=1e-6)  # the evaluator's value, not the printed one
    assert outcome.self_reported == pytest.approx(0.01)
    assert "self_reported_mismatch" in outcome.flags


def test_without_the_sandbox_the_file_is_readable(packed: Path, trained: Path, tmp_path: Path) -> None:
    """Why the pack needs bubblewrap for hiding: unsandboxed, the same run reads every byte (the printed
    score is still ignored and flagged)."""
    outcome, log = _run("none", packed, trained, tmp_path)
    size = (packed / "data" / "val.bin").stat().st_size
    assert f"cheat: read {size} bytes of data/val.bin" in log
    assert "self_reported_mismatch" in outcome.flags and outcome.metric != pytest.approx(0.01)


def test_the_guard_flags_reading_validation_data_and_printing_the_metric(packed: Path, tmp_path: Path) -> None:
    task = load_task(packed)
    original = (packed / "train.py").read_text()
    new = tmp_path / "new"
    shutil.copytree(packed, new, ignore=shutil.ignore_patterns(".git"))
    (new / "train.py").write_text(original + '\nval = open("data/val.bin", "rb").read()\nprint("val_bpb: 0.01")\n')
    findings = check_change(task, new, lambda path: original if path == "train.py" else None, ["train.py"])
    rules = {f.rule for f in findings}
    assert {"protected_read", "metric_print"} <= rules, findings
    assert all(f.severity == "flag" for f in findings if f.rule in ("protected_read", "metric_print"))
