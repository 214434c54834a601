"""The file tools (list_files, read_file, search) and the Editor's scope rules, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmind.brains.llm.edits import Editor, EditRefused, Scope
from labmind.brains.llm.tools import READ_MAX_CHARS, SEARCH_MAX_HITS, FileTools

from .conftest import EDITABLE, HIDDEN, PROTECTED


@pytest.fixture
def tools(worktree: Path) -> FileTools:
    return FileTools(Editor(Scope(worktree, tuple(EDITABLE), tuple(PROTECTED), tuple(HIDDEN))))


def test_search_with_glob_and_errors(tools: FileTools, worktree: Path) -> None:
    assert tools.call("search", {"pattern": r"self\.w\b", "glob": "*.py"}).text.splitlines()[0] == (
        "model.py:3: self.w = 1.0"
    )
    assert tools.call("search", {"pattern": "DATA"}).text == "prepare.py:1: DATA = [1, 2, 3]"
    assert tools.call("search", {"pattern": "secret"}).text == "no matches for 'secret' in 4 text files"
    assert tools.call("search", {"pattern": "DATA", "glob": "*.md"}).text == (
        "no matches for 'DATA' in 1 text files matching *.md"
    )
    bad = tools.call("search", {"pattern": "(unclosed"})
    assert bad.is_error and bad.text.startswith("invalid regular expression '(unclosed': missing ), unterminated")
    (worktree / "many.txt").write_text("hit\n" * 500)
    capped = tools.call("search", {"pattern": "hit"}).text.splitlines()
    assert len(capped) == SEARCH_MAX_HITS + 1 and capped[-1].startswith("[stopped at 100 matches")


def test_read_file_ranges_and_refusals(tools: FileTools, worktree: Path) -> None:
    assert tools.call("read_file", {"path": "./model.py", "start_line": 8}).text == (
        "model.py: lines 8-9 of 9\n     8\t    def loss(self):\n     9\t        return self.w * self.w"
    )
    past = tools.call("read_file", {"path": "model.py", "start_line": 20})
    assert past.is_error and past.text == "model.py has 9 lines; start_line 20 is past its end"
    backwards = tools.call("read_file", {"path": "model.py", "start_line": 5, "end_line": 2})
    assert backwards.is_error and backwards.text == "end_line 2 is before start_line 5"
    (worktree / "blob.bin").write_bytes(b"\x00\x01\x02")
    binary = tools.call("read_file", {"path": "blob.bin"})
    assert binary.is_error and binary.text == "blob.bin is a binary file (3 bytes) and cannot be shown"
    assert tools.call("read_file", {"path": "lib"}).is_error
    (worktree / "long.py").write_text("x = '" + "a" * 5_000 + "'\n" + "y = 1\n" * 10_000)
    page = tools.call("read_file", {"path": "long.py"}).text
    assert "…[3006 more characters on this line]" in page
    assert len(page) <= READ_MAX_CHARS + 200 and page.endswith("to continue]")
    next_line = int(page.rsplit("start_line=", 1)[1].split()[0])
    rest = tools.call("read_file", {"path": "long.py", "start_line": next_line}).text
    assert rest.startswith(f"long.py: lines {next_line}-")


def test_list_files_skips_noise_and_marks_symlinks(tools: FileTools, worktree: Path, tmp_path: Path) -> None:
    (worktree / "__pycache__").mkdir()
    (worktree / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\x00")
    (tmp_path / "elsewhere.txt").write_text("x\n")
    (worktree / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    listing = tools.call("list_files", {}).text.splitlines()
    assert listing[1:] == [
        "R  README.md  (1 lines)",
        "R  link.txt  (symlink leading outside what you may read)",
        "E  model.py  (9 lines)",
        "P  prepare.py  (1 lines)",
        "E  train.py  (15 lines)",
        "Editable globs matching no file yet (write_file may create them): lib/*.py",
    ]


def test_editor_counts_net_changes_and_refuses_binary(worktree: Path) -> None:
    editor = Editor(Scope(worktree, ("*.py", "*.bin"), ("prepare.py",)))
    editor.write("notes.py", "A = 1\n")
    editor.edit("train.py", "LR = 0.1", "LR = 0.2")
    editor.edit("train.py", "LR = 0.2", "LR = 0.1")
    assert editor.changed() == ["notes.py"] and editor.version == 3
    (worktree / "w.bin").write_bytes(b"\x00\x01")
    with pytest.raises(EditRefused, match=r"w\.bin is a binary file"):
        editor.write("w.bin", "text")
    with pytest.raises(EditRefused, match="old and new are the same text"):
        editor.edit("train.py", "LR", "LR")
    with pytest.raises(EditRefused, match="is a directory"):
        (worktree / "pkg.py").mkdir()
        editor.write("pkg.py", "x")
    with pytest.raises(EditRefused, match="contains a NUL"):
        editor.write("a\0.py", "x")
