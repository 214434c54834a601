"""`labmind pack speedrun` end to end on the CPU: the stand-in upstream packed with a small local corpus, its
edited train_gpt.py run through labmind's harness, the evaluator's metric, and the cheats the harness stops."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from labmind.packs.nanochat.adapt import Edit
from labmind.packs.speedrun import adapt
from labmind.packs.speedrun.data import read_shard
from labmind.task import load_task

from .srkit import FAKE_UPSTREAM, pack, run_in, write_corpus


def test_the_task_declares_editable_protected_metric_and_gate(packed: Path) -> None:
    task = load_task(packed)
    assert task.task.editable == ["train_gpt.py", "triton_kernels.py", "dc_triton_kernels.py"]
    assert set(task.task.protected) == {"labmind_speedrun.py", "labmind_attn.py", "pack.json", "data/*",
                                        "tokenizer/*"}
    assert task.metric.name == "train_time_s" and task.metric.goal == "minimize"
    assert task.metric.evaluate == "python labmind_speedrun.py --score labmind_result.json"
    assert task.metric.parsed_gate() == ("val_loss", "<", 4.0)
    assert task.metric.gate_level == 0.01
    assert task.noise.confirm_seeds == 4
    assert ("untimed_s", "<=", 900.0) in task.metric.parsed_constraints()
    assert task.run.command == "torchrun --standalone --nproc_per_node=1 train_gpt.py"
    assert task.run.compile_cache == ["TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"]  # minutes of compilation
    pack_json = json.loads((packed / "pack.json").read_text())
    assert [e["name"] for e in pack_json["edits"]["train_gpt.py"]] == [
        e.name for e in adapt.train_edits(adapt.EditPlan("/x", 1))]
    assert pack_json["upstream"]["matches_pinned"] is False  # the stand-in, packed with --any-commit
    # the validation stream is upstream's shard format, a whole number of validation batches plus one target
    assert pack_json["harness"]["val_tokens"] % 2048 == 0
    assert read_shard(packed / "data" / "val.bin").size > pack_json["harness"]["val_tokens"]
    for name, digest in pack_json["data"]["sha256"].items():
        assert (packed / name).is_file() and len(digest) == 64


def test_no_upstream_text_is_left_to_the_candidate_for_clock_and_validation(packed: Path) -> None:
    text = (packed / "train_gpt.py").read_text()
    assert "= get_kernel(" not in text and "flash_attn_interface = labmind_attn" in text
    assert "training_time_ms += " not in text  # upstream's own clock is gone
    assert "labmind_clock.initial(model)" in text and "labmind_clock.start(model)" in text
    assert "labmind_speedrun.validate(_labmind_score" in text and "labmind_speedrun.finish(" in text
    assert (packed / "triton_kernels.py").read_text() == (FAKE_UPSTREAM / "triton_kernels.py").read_text()


@pytest.mark.slow
def test_an_honest_run_is_scored_by_the_evaluator(packed: Path, tmp_path: Path) -> None:
    task = _copy(packed, tmp_path)
    run = run_in(task, "train_gpt.py", env={"SEED": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "labmind: clock" in run.stdout
    score = run_in(task, "labmind_speedrun.py", "--score", "labmind_result.json")
    assert score.returncode == 0, score.stdout + score.stderr
    lines = dict(line.split(": ", 1) for line in score.stdout.splitlines())
    assert float(lines["train_time_s"]) > 0
    assert 0 < float(lines["val_loss"]) < 11  # ln(50257) = 10.8 untrained; a few steps on the CPU
    assert int(lines["steps"]) == 7
    assert lines["reached_target"] == "0"  # above the target: scored, with its loss, and never kept
    result = json.loads((task / "labmind_result.json").read_text())
    final = result["final"]
    assert final["tokens"] == json.loads((task / "pack.json").read_text())["harness"]["val_tokens"]
    # the probes ran on the final validation; the honest model's early losses did not move
    assert final["probes"]["moved"] <= 1e-3 and final["probes"]["jitter"] <= 1e-3
    assert [v["final"] for v in result["validations"]] == [False, False, True]


@pytest.mark.slow
@pytest.mark.parametrize(("cheat", "expect"), [
    ("keep-warmup", "differ from those it was built with"),
    ("peek", "causality probe"),
])
def test_cheats_that_stop_the_run(packed: Path, tmp_path: Path, cheat: str, expect: str) -> None:
    task = _copy(packed, tmp_path)
    run = run_in(task, "train_gpt.py", env={"SEED": "1", "SPEEDRUN_CHEAT": cheat})
    assert run.returncode != 0
    assert expect in run.stderr
    assert not (task / "labmind_result.json").exists()


@pytest.mark.slow
def test_a_lying_loss_is_rejected_by_the_evaluator(packed: Path, tmp_path: Path) -> None:
    task = _copy(packed, tmp_path)
    run = run_in(task, "train_gpt.py", env={"SEED": "1", "SPEEDRUN_CHEAT": "lie"})
    assert run.returncode == 0, run.stderr
    score = run_in(task, "labmind_speedrun.py", "--score", "labmind_result.json")
    assert score.returncode == 2
    assert "does not depend on the targets" in score.stdout
    assert "train_time_s" not in score.stdout


@pytest.mark.slow
def test_skipping_the_final_validation_gets_no_metric(packed: Path, tmp_path: Path) -> None:
    task = _copy(packed, tmp_path)
    run = run_in(task, "train_gpt.py", env={"SEED": "1", "SPEEDRUN_CHEAT": "skip-validation"})
    assert run.returncode == 0, run.stderr
    score = run_in(task, "labmind_speedrun.py", "--score", "labmind_result.json")
    assert score.returncode == 2
    assert "validation skipped" in score.stdout and "train_time_s" not in score.stdout


@pytest.mark.slow
def test_work_moved_before_the_clock_shows_in_untimed_seconds(packed: Path, tmp_path: Path) -> None:
    task = _copy(packed, tmp_path)
    run = run_in(task, "train_gpt.py", env={"SEED": "1", "SPEEDRUN_CHEAT": "work-before-clock", "SPEEDRUN_SLEEP": "8"})
    assert run.returncode == 0, run.stderr
    result = json.loads((task / "labmind_result.json").read_text())
    # counted from the process's start (the kernel's clock), so nothing done before the clock goes unseen
    assert result["untimed_s"] >= 8.0
    # the task bounds it: a run past the allowance violates [metric] constraints and is not kept
    assert "untimed_s <= 900" in (task / "labmind.toml").read_text()


def test_shards_runs_cannot_see_are_named_when_packing_and_when_running(packed: Path, tmp_path: Path) -> None:
    shards = Path(tempfile.mkdtemp(prefix="labmind-shards-", dir="/tmp"))  # under /tmp whatever TMPDIR says
    result = pack(f"local:{write_corpus(tmp_path / 'c')}", tmp_path / "task", shards,
                  "--any-commit", "--target", "4", "--val-tokens", "2048")
    shutil.rmtree(shards, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "warning: the training shards are outside the task and" in said and "private to each sandboxed run" in said
    run = run_in(packed, "-c", "import labmind_speedrun; labmind_speedrun.training_data('/nonexistent/shards')")
    assert run.returncode != 0
    assert "no training shards (data/fineweb10B/fineweb_train_*.bin) under /nonexistent/shards" in run.stderr
    assert "labmind_speedrun.training_data(" in (packed / "train_gpt.py").read_text()  # the edit calls it


def test_an_edit_whose_anchor_is_missing_stops_packing(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    shutil.copytree(FAKE_UPSTREAM, upstream)
    train = upstream / "train_gpt.py"
    train.write_text(train.read_text().replace("# stop the clock", "# pause"))
    result = pack(f"local:{write_corpus(tmp_path / 'c', count=40)}", tmp_path / "task", tmp_path / "data",
                  "--any-commit", "--target", "4", upstream=upstream)
    assert result.returncode != 0
    assert "edit 'validation'" in result.stdout + result.stderr
    assert not (tmp_path / "task").exists()


def test_another_commit_is_refused_without_any_commit(tmp_path: Path) -> None:
    result = pack("builtin", tmp_path / "task", tmp_path / "data", "--target", "4")
    assert result.returncode != 0
    assert f"is not {adapt.UPSTREAM_REPO} at {adapt.UPSTREAM_COMMIT[:7]}" in result.stdout + result.stderr


def test_a_substitute_corpus_needs_a_target(tmp_path: Path) -> None:
    result = pack("builtin", tmp_path / "task", tmp_path / "data", "--any-commit")
    assert result.returncode != 0
    assert "needs --target" in result.stdout + result.stderr


def test_edits_match_once_or_name_themselves() -> None:
    edit = Edit("twice", "why", line="x = 1", new="x = 2\n")
    assert adapt.apply_edits("a\nx = 1\n", [edit], "f.py") == "a\nx = 2\n"
    with pytest.raises(adapt.AdaptError, match=r"edit 'twice' .* found it 2 times"):
        adapt.apply_edits("x = 1\nx = 1\n", [edit], "f.py")


@pytest.mark.skipif(not (Path(__file__).parents[3] / ".upstream" / "modded-nanogpt").is_dir(),
                    reason="needs a modded-nanogpt checkout at .upstream/modded-nanogpt (commit f411b3d)")
def test_the_edits_apply_to_upstreams_own_text() -> None:
    text = (Path(__file__).parents[3] / ".upstream" / "modded-nanogpt" / "train_gpt.py").read_text()
    edited = adapt.apply_edits(text, adapt.train_edits(adapt.EditPlan("/data", 2097152)), "train_gpt.py")
    compile(edited, "train_gpt.py", "exec")
    assert adapt.val_batch_size(text) == 4 * 64 * 1024 * 8


def _copy(packed: Path, tmp_path: Path) -> Path:
    task = tmp_path / "task"
    shutil.copytree(packed, task, ignore=shutil.ignore_patterns(".git"))
    return task
