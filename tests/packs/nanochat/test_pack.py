"""`labmind pack nanochat` end to end on the CPU: the task it writes, and a run of it scored by labmind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from labmind.task import load_task

from .nckit import FAKE_UPSTREAM, manifest, metric, pack, run_in, sha256


def test_the_packed_task_is_a_committed_labmind_task(packed: Path) -> None:
    task = load_task(packed)
    assert task.task.editable == ["train.py"]
    assert {"prepare.py", "labmind_eval.py", "labmind_export.py", "labmind_attn.py", "data/*", "tokenizer/*"} <= \
        set(task.task.protected)
    assert task.run.command == "python train.py" and task.run.artifacts == ["model.pt2"]
    assert task.run.hide == ["data/val.bin", "data/holdout.bin"]
    assert task.run.timeout == 62  # the 2 s budget plus the start-up allowance: labmind's clock
    assert task.metric.evaluate == "python labmind_eval.py model.pt2"
    assert task.metric.holdout == "python labmind_eval.py model.pt2 --split holdout"
    assert "TORCH_COMPILE_DISABLE=1" in task.run.env
    assert (task.noise.baseline_runs, task.noise.confirm_seeds) == (2, 2)
    assert set(task.knobs) >= {"MATRIX_LR", "TOTAL_BATCH_SIZE", "DEPTH"}
    status = subprocess.run(["git", "status", "--porcelain"], cwd=packed, capture_output=True, text=True)
    assert status.stdout == ""
    tracked = subprocess.run(["git", "ls-files"], cwd=packed, capture_output=True, text=True).stdout.split()
    assert {"train.py", "prepare.py", "data/val.bin", "data/manifest.json", "tokenizer/token_bytes.pt"} <= set(tracked)


def test_the_manifest_pins_every_data_file(packed: Path) -> None:
    info = manifest(packed)
    assert info["seq_len"] == 64 and info["bos_token_id"] == info["vocab_size"] - 4
    for split in ("val", "holdout"):
        assert sha256(packed / "data" / info["splits"][split]["file"]) == info["splits"][split]["sha256"]
    root = Path(info["train"]["dir"])
    assert sorted(p.name for p in root.iterdir()) == sorted(info["train"]["shards"])
    assert not (root / "shard_06542.parquet").exists()  # no validation shard where training can read
    check = run_in(packed, "labmind_eval.py", "--check-data")
    assert check.returncode == 0 and "ok val" in check.stdout
    pack_info = json.loads((packed / "pack.json").read_text())
    assert [e["name"] for e in pack_info["edits"]["train.py"]][:2] == ["attention", "block-masks"]
    assert "NOT comparable" in pack_info["comparability"]


def test_a_run_trains_saves_and_is_scored_by_the_evaluator_only(trained: Path) -> None:
    assert (trained / "model.pt2").is_file()
    log = run_in(trained, "labmind_eval.py", "model.pt2")
    assert log.returncode == 0, log.stderr
    value = metric(log.stdout)
    assert 0.5 < value < 8  # a model trained for two seconds on a ~300-token vocabulary
    holdout = run_in(trained, "labmind_eval.py", "model.pt2", "--split", "holdout")
    assert holdout.returncode == 0 and metric(holdout.stdout) != value


def test_training_cannot_reach_the_validation_shard_through_prepare(packed: Path) -> None:
    """Upstream's make_dataloader(..., "val") reads the pinned shard from the data root; the pack never puts it
    there, so the only copy is the task's hidden data/val.bin."""
    probe = run_in(packed, "-c", "import prepare, itertools; next(prepare._documents('val'))")
    assert probe.returncode != 0 and "no val shards" in probe.stderr


def test_packing_refuses_a_used_directory_and_a_moved_upstream(packed: Path, tmp_path: Path) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "x").write_text("mine")
    refused = pack(FAKE_UPSTREAM, "builtin", out, tmp_path / "d", "--any-commit")
    assert refused.returncode == 1 and "not empty" in refused.stderr
    pinned = pack(FAKE_UPSTREAM, "builtin", tmp_path / "new", tmp_path / "d")
    assert pinned.returncode == 1 and "checkout 228791f" in " ".join(pinned.stderr.split())
    assert not (tmp_path / "new").exists()


def test_an_upstream_missing_an_anchor_is_refused_with_the_edit_named(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "prepare.py").write_text((FAKE_UPSTREAM / "prepare.py").read_text())
    (upstream / "train.py").write_text((FAKE_UPSTREAM / "train.py").read_text().replace("# Final eval", "# eval"))
    stories = tmp_path / "s"
    from .nckit import write_stories

    write_stories(stories, 30)
    result = pack(upstream, f"local:{stories}", tmp_path / "task", tmp_path / "d", "--any-commit")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and "edit 'no-eval'" in message
    assert not (tmp_path / "task").exists()
