"""Scope rules: which changed paths are allowed, and digests of protected files."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmind.workspace.scope import (
    digest,
    digest_mismatch,
    matches,
    protected_files,
    scope_violation,
    to_task_relative,
)

EDITABLE = ["train.py", "model/*", "configs"]
PROTECTED = ["eval.py", "data/*"]


def test_matches_globs_and_directories() -> None:
    assert matches("train.py", ["train.py"])
    assert matches("model/layers.py", ["model/*"])
    assert matches("configs/a/b.yaml", ["configs"])
    assert matches("configs/a.yaml", ["configs/"])
    assert not matches("configs.yaml", ["configs"])
    assert not matches("train.pyc", ["train.py"])
    assert not matches("Train.py", ["train.py"])  # case-sensitive everywhere


def test_to_task_relative() -> None:
    assert to_task_relative("train.py", "") == "train.py"
    assert to_task_relative("task/train.py", "task") == "train.py"
    assert to_task_relative("task/train.py", "task/") == "train.py"
    assert to_task_relative("task2/train.py", "task") is None
    assert to_task_relative("train.py", "task") is None


@pytest.mark.parametrize("subdir", ["", "task"])
def test_editable_changes_are_in_scope(subdir: str) -> None:
    prefix = f"{subdir}/" if subdir else ""
    changed = [prefix + p for p in ("train.py", "model/layers.py", "configs/x/y.yaml")]
    assert scope_violation(changed, subdir, EDITABLE, PROTECTED) is None
    assert scope_violation([], subdir, EDITABLE, PROTECTED) is None


def test_non_editable_file_is_named() -> None:
    msg = scope_violation(["task/train.py", "task/utils.py"], "task", EDITABLE, PROTECTED)
    assert msg is not None
    assert "utils.py" in msg
    assert "not editable" in msg
    assert "train.py, model/*, configs" in msg


def test_protected_file_is_named_even_if_editable() -> None:
    msg = scope_violation(["task/eval.py"], "task", ["*.py"], PROTECTED)
    assert msg == "changed protected file eval.py"
    msg = scope_violation(["data/train/part-0.csv"], "", ["*"], PROTECTED)
    assert msg == "changed protected file data/train/part-0.csv"


def test_outside_task_subdir_is_named() -> None:
    msg = scope_violation(["task/train.py", "other/train.py"], "task", EDITABLE, PROTECTED)
    assert msg is not None
    assert "other/train.py" in msg
    assert "outside the task directory" in msg
    msg = scope_violation(["taskforce/train.py"], "task", EDITABLE, PROTECTED)
    assert msg is not None and "outside the task directory" in msg


@pytest.mark.parametrize("subdir", ["", "task"])
@pytest.mark.parametrize("name", ["labmind.toml", ".labmind/lab.db"])
def test_labmind_files_are_rejected_even_if_editable(subdir: str, name: str) -> None:
    path = f"{subdir}/{name}" if subdir else name
    msg = scope_violation([path], subdir, ["*", ".labmind/*", "labmind.toml"], [])
    assert msg is not None
    assert name in msg
    assert "belongs to labmind" in msg


def test_first_violation_is_reported() -> None:
    msg = scope_violation(["train.py", "eval.py", "notes.md"], "", EDITABLE, PROTECTED)
    assert msg == "changed protected file eval.py"


# -- digests ------------------------------------------------------------------------------------


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    d = tmp_path / "task"
    (d / "data" / "sub").mkdir(parents=True)
    (d / "eval.py").write_text("print(1)\n")
    (d / "data" / "a.csv").write_text("1,2\n")
    (d / "data" / "sub" / "b.csv").write_text("3,4\n")
    (d / "train.py").write_text("lr = 1\n")
    return d


def test_protected_files_expand_directory_globs(task_dir: Path) -> None:
    files = [p.relative_to(task_dir).as_posix() for p in protected_files(task_dir, PROTECTED)]
    assert files == ["data/a.csv", "data/sub/b.csv", "eval.py"]
    whole_dir = [p.relative_to(task_dir).as_posix() for p in protected_files(task_dir, ["data"])]
    assert whole_dir == ["data/a.csv", "data/sub/b.csv"]


def test_digest_keys_and_values(task_dir: Path) -> None:
    import hashlib

    d = digest(task_dir, PROTECTED)
    assert set(d) == {"eval.py", "data/a.csv", "data/sub/b.csv"}
    assert d["eval.py"] == hashlib.sha256(b"print(1)\n").hexdigest()
    assert "train.py" not in d
    assert digest(task_dir, []) == {}
    assert digest(task_dir, ["missing/*"]) == {}


def test_digest_unchanged(task_dir: Path) -> None:
    before = digest(task_dir, PROTECTED)
    (task_dir / "train.py").write_text("lr = 2\n")  # not protected
    assert digest_mismatch(before, digest(task_dir, PROTECTED)) is None


def test_digest_detects_modified(task_dir: Path) -> None:
    before = digest(task_dir, PROTECTED)
    (task_dir / "data" / "sub" / "b.csv").write_text("3,5\n")
    msg = digest_mismatch(before, digest(task_dir, PROTECTED))
    assert msg == "protected file data/sub/b.csv was modified"


def test_digest_detects_deleted(task_dir: Path) -> None:
    before = digest(task_dir, PROTECTED)
    (task_dir / "eval.py").unlink()
    assert digest_mismatch(before, digest(task_dir, PROTECTED)) == "protected file eval.py was deleted"


def test_digest_detects_new_file_under_directory_glob(task_dir: Path) -> None:
    before = digest(task_dir, PROTECTED)
    (task_dir / "data" / "sub" / "c.csv").write_text("new\n")
    msg = digest_mismatch(before, digest(task_dir, PROTECTED))
    assert msg == "protected path gained a new file data/sub/c.csv"


def test_digest_detects_new_hidden_file(task_dir: Path) -> None:
    before = digest(task_dir, PROTECTED)
    (task_dir / "data" / ".hidden").write_text("x")
    msg = digest_mismatch(before, digest(task_dir, PROTECTED))
    assert msg == "protected path gained a new file data/.hidden"


def test_digest_mismatch_on_dicts() -> None:
    assert digest_mismatch({}, {}) is None
    assert digest_mismatch({"a": "1"}, {"a": "1"}) is None
    assert digest_mismatch({"a": "1"}, {"a": "2"}) == "protected file a was modified"
    assert digest_mismatch({"a": "1"}, {}) == "protected file a was deleted"
    assert digest_mismatch({}, {"b": "1"}) == "protected path gained a new file b"
