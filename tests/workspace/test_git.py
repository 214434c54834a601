"""Git operations on real repositories made in tmp_path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labmind.workspace.git import (
    GitError,
    add_worktree,
    dirty_paths,
    exclude_lab_dir,
    init_repo,
    keep,
    remove_worktree,
    repo_info,
    snapshot,
)


def sh(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false",
                           *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout


def make_repo(root: Path, files: dict[str, str], *, commit: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    sh(root, "init", "-q", "-b", "main")
    if commit:
        sh(root, "add", "-A")
        sh(root, "commit", "-q", "-m", "init")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {
        "README.md": "top\n",
        "task/train.py": "lr = 0.1\n",
        "task/eval.py": "print('loss: 1')\n",
        "other/x.py": "x = 1\n",
        ".gitignore": "*.ckpt\n",
    })


def head(root: Path) -> str:
    return sh(root, "rev-parse", "HEAD").strip()


# -- repo_info ----------------------------------------------------------------------------------


def test_repo_info_at_root(repo: Path) -> None:
    info = repo_info(repo)
    assert info.root == repo.resolve()
    assert info.subdir == ""
    assert info.head == head(repo)
    assert len(info.head) == 40


def test_repo_info_for_subdirectory(repo: Path) -> None:
    info = repo_info(repo / "task")
    assert info.root == repo.resolve()
    assert info.subdir == "task"
    assert info.head == head(repo)


def test_repo_info_nested_subdirectory(repo: Path) -> None:
    (repo / "task" / "deep" / "er").mkdir(parents=True)
    assert repo_info(repo / "task" / "deep" / "er").subdir == "task/deep/er"


def test_repo_info_refuses_non_git_dir(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError) as info:
        repo_info(plain)
    assert "not inside a git repository" in str(info.value)
    assert "labmind init" in str(info.value)


def test_repo_info_refuses_repo_without_commits(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "empty", {"a.py": "1\n"}, commit=False)
    with pytest.raises(GitError, match="no commits yet"):
        repo_info(root)


def test_repo_info_refuses_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a directory"):
        repo_info(tmp_path / "nope")


# -- dirty_paths --------------------------------------------------------------------------------


def test_clean_repo_has_no_dirty_paths(repo: Path) -> None:
    assert dirty_paths(repo_info(repo / "task")) == []
    assert dirty_paths(repo_info(repo)) == []


def test_dirty_paths_under_task_dir_only(repo: Path) -> None:
    (repo / "task" / "train.py").write_text("lr = 0.2\n")
    (repo / "task" / "new").mkdir()
    (repo / "task" / "new" / "notes.txt").write_text("n\n")
    (repo / "task" / "model.ckpt").write_text("ignored\n")
    (repo / "other" / "x.py").write_text("x = 2\n")
    (repo / "outside.txt").write_text("o\n")
    assert sorted(dirty_paths(repo_info(repo / "task"))) == ["task/new/notes.txt", "task/train.py"]
    assert sorted(dirty_paths(repo_info(repo))) == [
        "other/x.py", "outside.txt", "task/new/notes.txt", "task/train.py"]


def test_dirty_paths_sees_deletions(repo: Path) -> None:
    (repo / "task" / "eval.py").unlink()
    assert dirty_paths(repo_info(repo / "task")) == ["task/eval.py"]


def test_dirty_paths_with_space_in_name(repo: Path) -> None:
    (repo / "task" / "my notes.txt").write_text("n\n")
    assert dirty_paths(repo_info(repo / "task")) == ["task/my notes.txt"]


# -- exclude_lab_dir / init_repo ----------------------------------------------------------------


def test_exclude_lab_dir_is_idempotent(repo: Path) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text("# mine\n*.tmp")  # no trailing newline
    exclude_lab_dir(repo)
    exclude_lab_dir(repo)
    lines = exclude.read_text().splitlines()
    assert lines.count(".labmind/") == 1
    assert "# mine" in lines and "*.tmp" in lines
    (repo / ".labmind").mkdir()
    (repo / ".labmind" / "lab.db").write_text("x")
    assert dirty_paths(repo_info(repo)) == []
    assert (repo / ".gitignore").read_text() == "*.ckpt\n"


def test_exclude_lab_dir_from_worktree_uses_common_dir(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    add_worktree(repo, wt, head(repo))
    exclude_lab_dir(wt)
    assert (repo / ".git" / "info" / "exclude").read_text().splitlines().count(".labmind/") == 1


def test_init_repo(tmp_path: Path) -> None:
    path = tmp_path / "proj"
    path.mkdir()
    (path / "train.py").write_text("x = 1\n")
    (path / ".labmind").mkdir()
    (path / ".labmind" / "lab.db").write_text("db")
    sha = init_repo(path)
    assert sha == head(path)
    info = repo_info(path)
    assert info.head == sha and info.subdir == ""
    assert sh(path, "ls-files").split() == ["train.py"]
    assert dirty_paths(info) == []
    with pytest.raises(GitError, match="already a git repository"):
        init_repo(path)


def test_init_repo_empty_dir(tmp_path: Path) -> None:
    sha = init_repo(tmp_path / "new")
    assert len(sha) == 40


# -- worktrees and snapshots --------------------------------------------------------------------


@pytest.fixture
def wt(repo: Path, tmp_path: Path):
    path = tmp_path / "worktrees" / "e1"
    add_worktree(repo, path, head(repo))
    yield path
    remove_worktree(repo, path)


def test_add_worktree_checks_out_commit(repo: Path, wt: Path) -> None:
    assert (wt / "task" / "train.py").read_text() == "lr = 0.1\n"
    assert head(wt) == head(repo)
    assert str(wt) in sh(repo, "worktree", "list")


def test_add_worktree_replaces_existing_path(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "w"
    add_worktree(repo, path, head(repo))
    (path / "task" / "train.py").write_text("junk\n")
    add_worktree(repo, path, head(repo))
    assert (path / "task" / "train.py").read_text() == "lr = 0.1\n"
    remove_worktree(repo, path)


def test_snapshot_without_change(repo: Path, wt: Path) -> None:
    base = head(repo)
    snap = snapshot(wt, base, "nothing", root=repo)
    assert snap.commit is None
    assert snap.diff == ""
    assert snap.changed == []
    assert head(wt) == base


def test_snapshot_with_change(repo: Path, wt: Path) -> None:
    base = head(repo)
    (wt / "task" / "train.py").write_text("lr = 0.05\n")
    (wt / "task" / "extra.py").write_text("y = 2\n")
    (wt / "task" / "eval.py").unlink()
    snap = snapshot(wt, base, "lower lr", root=repo)
    assert snap.commit is not None and snap.commit != base
    assert snap.commit == head(wt)
    assert sorted(snap.changed) == ["task/eval.py", "task/extra.py", "task/train.py"]
    assert "-lr = 0.1" in snap.diff and "+lr = 0.05" in snap.diff
    assert "+y = 2" in snap.diff
    assert sh(wt, "log", "-1", "--format=%s").strip() == "lower lr"
    assert sh(wt, "rev-parse", f"{snap.commit}^").strip() == base
    assert sh(wt, "status", "--porcelain", "--ignored") == ""
    # the main checkout is untouched
    assert (repo / "task" / "train.py").read_text() == "lr = 0.1\n"
    assert head(repo) == base


def test_snapshot_removes_ignored_files(repo: Path, wt: Path) -> None:
    base = head(repo)
    (wt / "task" / "train.py").write_text("lr = 0.3\n")
    (wt / "task" / "model.ckpt").write_text("weights")
    (wt / "task" / "cache").mkdir()
    (wt / "task" / "cache" / "a.ckpt").write_text("c")
    snap = snapshot(wt, base, "m", root=repo)
    assert snap.changed == ["task/train.py"]
    assert not (wt / "task" / "model.ckpt").exists()
    assert not (wt / "task" / "cache").exists()
    assert sh(wt, "status", "--porcelain", "--ignored") == ""
    tracked = set(sh(wt, "ls-files").split())
    on_disk = {p.relative_to(wt).as_posix() for p in wt.rglob("*") if p.is_file() and p.name != ".git"}
    assert on_disk == tracked


def test_snapshot_only_ignored_files_is_no_change(repo: Path, wt: Path) -> None:
    (wt / "task" / "model.ckpt").write_text("weights")
    snap = snapshot(wt, head(repo), "m", root=repo)
    assert snap.commit is None
    assert not (wt / "task" / "model.ckpt").exists()


def test_keep_refs_and_best_branch(repo: Path, wt: Path) -> None:
    (wt / "task" / "train.py").write_text("lr = 0.01\n")
    snap = snapshot(wt, head(repo), "e1", root=repo)
    assert snap.commit
    keep(repo, "mylab", 1, snap.commit, best=False)
    assert sh(repo, "rev-parse", "refs/labmind/mylab/kept/1").strip() == snap.commit
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", "refs/heads/labmind/mylab"], cwd=repo,
                          capture_output=True).returncode != 0
    keep(repo, "mylab", 2, snap.commit, best=True)
    assert sh(repo, "rev-parse", "refs/labmind/mylab/kept/2").strip() == snap.commit
    assert sh(repo, "rev-parse", "labmind/mylab").strip() == snap.commit
    assert "labmind/mylab" in sh(repo, "branch", "--list", "labmind/*")
    # the kept commit survives removing its worktree
    remove_worktree(repo, wt)
    assert sh(repo, "cat-file", "-t", snap.commit).strip() == "commit"


def test_remove_worktree_cleans_up(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "w2"
    add_worktree(repo, path, head(repo))
    (path / "task" / "scratch.ckpt").write_text("x")
    remove_worktree(repo, path)
    assert not path.exists()
    assert str(path) not in sh(repo, "worktree", "list")
    remove_worktree(repo, path)  # removing again is harmless


# -- worktrees hold untrusted content: git never trusts their metadata ---------------------------------


HOSTILE = """[core]
\tfsmonitor = "touch {mark}; false"
\thooksPath = {hooks}
"""


def _plant_hostile_git(wt: Path, mark: Path) -> None:
    """What a sandbox-less brain could do: replace the `.git` link by a repository whose config and hooks
    run a command."""
    (wt / ".git").unlink()
    hooks = wt / ".git" / "hooks"
    hooks.mkdir(parents=True)
    for hook in ("pre-commit", "post-commit", "post-index-change", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {mark}\n")
        (hooks / hook).chmod(0o755)
    (wt / ".git" / "config").write_text(HOSTILE.format(mark=mark, hooks=hooks))
    (wt / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (wt / ".git" / "objects").mkdir()
    (wt / ".git" / "refs").mkdir()


def test_snapshot_ignores_a_replaced_git_link(repo: Path, wt: Path, tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    _plant_hostile_git(wt, mark)
    (wt / "task" / "train.py").write_text("lr = 0.2\n")
    snap = snapshot(wt, head(repo), "change", root=repo)
    assert not mark.exists()  # no fsmonitor, no hook ran
    assert snap.commit is not None and snap.changed == ["task/train.py"]
    assert sh(repo, "cat-file", "-t", snap.commit).strip() == "commit"  # committed to labmind's repository


def test_snapshot_ignores_a_redirected_git_link(repo: Path, wt: Path, tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    evil = wt / "evil"
    evil.mkdir()
    (evil / "config").write_text(HOSTILE.format(mark=mark, hooks=evil))
    (wt / ".git").write_text(f"gitdir: {evil}\n")
    (wt / "task" / "train.py").write_text("lr = 0.3\n")
    snap = snapshot(wt, head(repo), "change", root=repo)
    assert not mark.exists()
    assert "task/evil/config" not in snap.changed and "evil/config" in snap.changed


def test_user_hooks_of_the_repository_do_not_run_on_worktrees(repo: Path, wt: Path, tmp_path: Path) -> None:
    mark = tmp_path / "hooked"
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text(f"#!/bin/sh\ntouch {mark}\n")
    hook.chmod(0o755)
    (wt / "task" / "train.py").write_text("lr = 0.4\n")
    assert snapshot(wt, head(repo), "change", root=repo).commit is not None
    assert not mark.exists()


def test_nested_repositories_are_left_out_and_reported(repo: Path, wt: Path, tmp_path: Path) -> None:
    mark = tmp_path / "nested"
    nested = wt / "task" / "vendor"
    sh(wt, "init", "-q", str(nested))
    (nested / "f.py").write_text("x = 1\n")
    sh(nested, "config", "core.fsmonitor", f"touch {mark}; false")
    (wt / "task" / "train.py").write_text("lr = 0.5\n")
    snap = snapshot(wt, head(repo), "change", root=repo)
    assert snap.nested_repos == ["task/vendor"]
    assert snap.changed == ["task/train.py"]  # the nested repository is not part of the commit
    assert not mark.exists() and not nested.exists()  # and the worktree is exactly the commit afterwards


def test_worktree_git_dir_comes_from_the_repository(repo: Path, wt: Path) -> None:
    from labmind.workspace.git import GitError, worktree_git_dir

    admin = worktree_git_dir(repo, wt)
    assert admin.parent == (repo / ".git" / "worktrees").resolve()
    (wt / ".git").unlink()
    (wt / ".git").write_text("gitdir: /somewhere/else\n")
    assert worktree_git_dir(repo, wt) == admin  # the link's content does not matter
    with pytest.raises(GitError, match="is not a worktree of"):
        worktree_git_dir(repo, wt / "task")


def test_remove_worktree_deletes_what_sandboxed_code_locked(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked"
    add_worktree(repo, path, head(repo))
    deep = path / "task" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    os.chmod(deep, 0o000)
    os.chmod(path / "task" / "a", 0o500)
    (path / "task" / "escape").symlink_to("/")  # never followed
    remove_worktree(repo, path)
    assert not path.exists()
    assert Path("/").exists() and Path("/usr").is_dir()
