"""Protected-file digests against what untrusted code can leave in a protected folder (real files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from labmind.workspace.digests import (
    DigestCapExceeded,
    DigestCaps,
    digest,
    protected_entries,
    verify_protected,
)


@pytest.fixture
def task(tmp_path: Path) -> Path:
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "data" / "deep" / "b.bin").write_bytes(b"b")
    (tmp_path / "eval.py").write_text("print(1)\n")
    return tmp_path


def test_unchanged_files_verify(task: Path) -> None:
    expected = digest(task, ["data", "eval.py"])
    assert sorted(expected) == ["data/a.bin", "data/deep/b.bin", "eval.py"]
    assert verify_protected(task, ["data", "eval.py"], expected) is None


def test_symlinks_are_digested_as_links_never_followed(task: Path) -> None:
    expected = digest(task, ["data/*"])
    (task / "data" / "root").symlink_to("/")
    (task / "data" / "passwd").symlink_to("/etc/passwd")
    started = time.monotonic()
    entries = protected_entries(task, ["data", "data/*", "data/root/*"])
    assert "data/root" in entries and not any(name.startswith("data/root/") for name in entries)
    assert digest(task, ["data/root", "data/passwd"]) == {"data/passwd": "symlink:/etc/passwd",
                                                          "data/root": "symlink:/"}
    assert verify_protected(task, ["data/*"], expected) == "protected path gained a new file data/passwd"
    assert time.monotonic() - started < 5


def test_a_directory_replaced_by_a_symlink_is_not_walked(task: Path, tmp_path: Path) -> None:
    expected = digest(task, ["data/**/*"])
    os.rename(task / "data" / "deep", tmp_path / "elsewhere")
    (task / "data" / "deep").symlink_to("/usr")
    # The link itself is the entry (new); what used to be below it is gone; /usr is never listed.
    assert verify_protected(task, ["data/**/*"], expected) in ("protected file data/deep/b.bin was deleted",
                                                               "protected path gained a new file data/deep")
    assert "data/deep" in protected_entries(task, ["data/**/*"])
    assert not any(n.startswith("data/deep/") for n in protected_entries(task, ["data/**/*", "data/deep/*"]))


def test_a_huge_sparse_new_file_is_rejected_without_reading_it(task: Path) -> None:
    expected = digest(task, ["data/*"])
    with open(task / "data" / "huge.bin", "wb") as f:
        f.truncate(16 << 30)
    started = time.monotonic()
    assert verify_protected(task, ["data/*"], expected) == "protected path gained a new file data/huge.bin"
    assert time.monotonic() - started < 1.0


def test_caps_stop_digesting_with_a_named_reason(task: Path) -> None:
    with open(task / "data" / "a.bin", "r+b") as f:
        f.truncate(64 << 20)  # an expected file grown (no sandbox kept it read-only)
    expected = {"data/a.bin": "0", "data/deep/b.bin": "0"}
    problem = verify_protected(task, ["data"], expected, DigestCaps(max_bytes=1 << 20))
    assert problem == ("protected files could not be verified: the protected files hold more than 1,048,576 bytes "
                       "(the cap)")
    with pytest.raises(DigestCapExceeded, match=r"more than 1 files \(the cap\)"):
        protected_entries(task, ["data"], DigestCaps(max_files=1))
    with pytest.raises(DigestCapExceeded, match=r"longer than 0 s \(the cap\)"):
        digest(task, ["data"], DigestCaps(max_seconds=0.0))


def test_special_files_are_never_opened(task: Path) -> None:
    os.mkfifo(task / "data" / "pipe")  # opening it for reading would block forever
    assert digest(task, ["data/pipe"])["data/pipe"].startswith("special:p")


def test_caps_after_changes_follow_what_the_lab_started_with() -> None:
    assert DigestCaps.after_changes(3, None) == DigestCaps()
    caps = DigestCaps.after_changes(10, 100 << 20)
    assert caps.max_bytes == 2 * (100 << 20) + (64 << 20) and caps.max_files == 1020
    assert caps.max_seconds == pytest.approx(121.0)
