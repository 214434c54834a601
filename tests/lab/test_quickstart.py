"""The README's quick start, for real: the knobs brain on examples/tiny-lm finds a confirmed improvement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .test_verification import check_no_step_left_provisional
from .toy import git, labmind, log, show, status

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-lm"


@pytest.mark.slow
def test_tiny_lm_knobs_lab_confirms_an_improvement(tmp_path: Path) -> None:
    task = tmp_path / "tiny-lm"
    shutil.copytree(EXAMPLE, task, ignore=shutil.ignore_patterns(".labmind", "model.npz", "__pycache__"))
    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "tiny-lm")
    labmind("run", str(task), "--max-experiments", "12", "--slots", "2", "--plain", timeout=900)

    st = status(task)
    assert st["experiments"] == 12 and st["in_progress"] == 0
    assert st["baseline"]["n_runs"] == 3 and st["baseline"]["sd"] > 0
    # `[noise] min_effect = "auto"`: the number is 0, the text says what it means; val_bpb > 0 is judged as ratios.
    assert (st["min_effect"], st["min_effect_text"], st["scale"]) == (0.0, "any verified gain (min_effect auto)", "log")
    best = st["best"]
    assert best["confirmed"], st
    assert best["metric"] < st["baseline"]["metric"] - st["min_effect"]
    assert git(task, "rev-parse", "labmind/tiny-lm").strip() == best["commit"]

    rows = [r for r in log(task) if r["kind"] == "candidate"]
    assert all(r["verdict"] for r in rows)
    # The lab's end verified or reverted every provisional step: `kept` stays only under a verified head.
    check_no_step_left_provisional(log(task))
    detail = show(task, best["experiment"])
    assert detail["changed_files"] == ["train.py"]
    # Verified on fresh seeds (two at the first look, up to confirm_seeds), at its claim's false-claim level.
    verify = detail["judgement"]["verify"]
    assert verify["state"] == "claim" and best["p_value"] <= verify["level"] < 0.05
    confirm = [r for r in detail["runs"] if r["purpose"] == "confirm"]
    assert best["n_runs"] == len(confirm) >= 2
    assert best["metric"] == pytest.approx(sum(r["metric"] for r in confirm) / len(confirm))
    # Fresh to the candidate: seeds it was not screened on, each once.
    screen_seeds = {r["seed"] for r in detail["runs"] if r["purpose"] == "screen"}
    assert len({r["seed"] for r in confirm}) == len(confirm) and not {r["seed"] for r in confirm} & screen_seeds
    # The metric comes from the protected evaluator, run by labmind after training.
    assert all(r["outcome"] == "ok" and r["metric"] is not None for r in detail["runs"])
    expected_sandbox = "bwrap" if shutil.which("bwrap") else "none"
    assert {r["sandbox"] for r in detail["runs"]} == {expected_sandbox}
