"""Git operations through the git CLI: worktrees per experiment, commits, diffs, refs for kept work."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

# Ref-changing git commands on one repository must not overlap (index.lock / worktree metadata races).
_REPO_LOCK = threading.Lock()
_IDENTITY = ["-c", "user.name=labmind", "-c", "user.email=labmind@localhost", "-c", "commit.gpgsign=false"]


class GitError(Exception):
    pass


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    proc = subprocess.run(["git", *_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class RepoInfo:
    root: Path  # the repository's top level
    subdir: str  # the task directory relative to root ("" when the task is the whole repo)
    head: str  # the commit experiments start from


def repo_info(task_dir: Path) -> RepoInfo:
    task_dir = task_dir.resolve()
    if not task_dir.is_dir():
        raise GitError(f"{task_dir} is not a directory")
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=task_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"{task_dir} is not inside a git repository. Run `labmind init {task_dir}` to make it one.")
    root = Path(proc.stdout.strip()).resolve()
    head = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        raise GitError(f"{root} has no commits yet. Commit your code (or run `labmind init {task_dir}`).")
    subdir = task_dir.relative_to(root).as_posix()
    return RepoInfo(root=root, subdir="" if subdir == "." else subdir, head=head.stdout.strip())


def dirty_paths(info: RepoInfo) -> list[str]:
    """Uncommitted changes (tracked or untracked, not ignored) under the task directory."""
    out = git(info.root, "status", "--porcelain", "-z", "--untracked-files=all", "--", info.subdir or ".")
    entries = out.split("\0")
    paths, i = [], 0
    while i < len(entries):
        entry = entries[i]
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename/copy entry is followed by its original name
                i += 1
        i += 1
    return paths


def exclude_lab_dir(root: Path) -> None:
    """Keep `.labmind/` out of git without touching the user's .gitignore."""
    common = Path(git(root, "rev-parse", "--git-common-dir").strip())
    exclude = (common if common.is_absolute() else root / common) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    if ".labmind/" not in text.splitlines():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".labmind/\n")


def init_repo(path: Path) -> str:
    """`labmind init`: make a plain directory a git repository with one commit of its files."""
    path.mkdir(parents=True, exist_ok=True)
    if (path / ".git").exists():
        raise GitError(f"{path} is already a git repository")
    git(path, "init", "-q")
    exclude_lab_dir(path)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "--no-verify", "-m", "labmind init")
    return git(path, "rev-parse", "HEAD").strip()


def add_worktree(root: Path, path: Path, commit: str) -> None:
    with _REPO_LOCK:
        if path.exists():
            remove_worktree_locked(root, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        git(root, "worktree", "add", "--detach", "--force", str(path), commit)


def remove_worktree(root: Path, path: Path) -> None:
    with _REPO_LOCK:
        remove_worktree_locked(root, path)


def remove_worktree_locked(root: Path, path: Path) -> None:
    git(root, "worktree", "remove", "--force", "--force", str(path), check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    git(root, "worktree", "prune", check=False)


@dataclass(frozen=True)
class Snapshot:
    commit: str | None  # None when nothing changed
    diff: str
    changed: list[str]  # paths relative to the repository root
    symlinks_out: list[str]  # changed paths that are symlinks resolving outside the worktree


def snapshot(worktree: Path, base: str, message: str) -> Snapshot:
    """Commit everything the brain changed, then make the worktree exactly that commit (ignored files
    too are removed, so a run executes precisely what the diff shows)."""
    git(worktree, "add", "-A")
    # -z: names verbatim (no quoting of spaces or non-ASCII characters).
    changed = [p for p in git(worktree, "diff", "--cached", "--name-only", "-z", "--no-renames", base).split("\0")
               if p]
    symlinks_out = [p for p in changed if _symlink_outside(worktree, p)]
    commit = None
    diff = ""
    if changed:
        with _REPO_LOCK:
            git(worktree, "commit", "-q", "--no-verify", "-m", message)
        commit = git(worktree, "rev-parse", "HEAD").strip()
        diff = git(worktree, "diff", "--no-renames", base, commit)
    git(worktree, "clean", "-ffdxq")
    return Snapshot(commit=commit, diff=diff, changed=changed, symlinks_out=symlinks_out)


def _symlink_outside(worktree: Path, rel: str) -> bool:
    path = worktree / rel
    if not path.is_symlink():
        return False
    target = (path.parent / os.readlink(path)).resolve()
    return not target.is_relative_to(worktree.resolve())


def file_at(root: Path, commit: str, repo_path: str) -> str | None:
    """A file's text at a commit, or None when it did not exist there (or is not text)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(["git", "show", f"{commit}:{repo_path}"], cwd=root, capture_output=True, env=env)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


def pin(root: Path, lab: str, experiment_id: int, commit: str) -> None:
    """Keep every experiment's commit reachable (so `git gc` never prunes one a run still needs)."""
    with _REPO_LOCK:
        git(root, "update-ref", f"refs/labmind/{lab}/exp/{experiment_id}", commit)


def keep(root: Path, lab: str, experiment_id: int, commit: str, *, best: bool) -> None:
    """Keep an experiment's commit reachable; the lab's best is the branch `labmind/<lab>`."""
    with _REPO_LOCK:
        git(root, "update-ref", f"refs/labmind/{lab}/kept/{experiment_id}", commit)
        if best:
            git(root, "update-ref", f"refs/heads/labmind/{lab}", commit)
