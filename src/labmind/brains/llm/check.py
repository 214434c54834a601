"""The implement loop's quick check: the task's `[run] smoke` command, run sandboxed in the worktree.

`SandboxedCheck` is the `run_check(command, timeout_s) -> CheckResult` callable the loop is given. It runs
`bash -c <command>` in the task directory inside the lab's sandbox: no network, a scrubbed environment (no
API keys), no GPUs, writable only the worktree, protected files read-only, `hidden` paths masked; in its own
process group, killed as a group at the timeout. Output (stdout and stderr interleaved) goes to a file, not a
pipe, so a background process holding it open cannot hang the loop.

The check leaves the worktree as it found it: files it creates that git would commit are deleted and files
it changes are restored, since labmind commits the whole worktree as the experiment's change and a stray
`ckpt.pt` or log file would otherwise become part of the diff (and break the scope rules). Ignored files
(caches, data) are kept; labmind removes them when it snapshots the experiment.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labmind.brains.command import expand_globs, hidden_files
from labmind.execute.programs import kill_group, scrubbed_env
from labmind.execute.sandbox import Sandbox
from labmind.workspace.git import GitError, worktree_git

TAIL_CHARS = 4_000
_GIT_TIMEOUT_S = 60


@dataclass(frozen=True)
class CheckResult:
    exit_code: int | None  # None when it was killed at the timeout or could not start
    output_tail: str
    timed_out: bool
    seconds: float

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """The result as the model reads it."""
        if self.timed_out:
            head = f"the check timed out after {self.seconds:.0f}s and was killed"
        elif self.exit_code is None:
            head = "the check could not run"
        else:
            head = f"exit code {self.exit_code} after {self.seconds:.1f}s ({'passed' if self.passed else 'FAILED'})"
        tail = self.output_tail.strip("\n") or "(no output)"
        return f"{head}\n--- end of output ---\n{tail}"


def _git(repo: Path, root: Path, *args: str) -> str | None:
    """git on the worktree `root` of the repository `repo`; never through the worktree's own `.git`, which
    the check (sandboxed code) may have rewritten."""
    try:
        return worktree_git(repo, root, *args)
    except (OSError, GitError):
        return None


def _dirty(repo: Path, root: Path) -> dict[str, bool] | None:
    """Uncommitted paths of the worktree (untracked, not ignored, included) → whether git tracks them."""
    out = _git(repo, root, "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames",
               "--ignore-submodules=all", "--", ".")
    if out is None:
        return None
    entries = (e for e in out.split("\0") if len(e) > 3)
    return {e[3:]: not e.startswith("??") for e in entries}


def _read(path: Path) -> bytes | None:
    # Never through a symlink: the check may have pointed one anywhere on the host.
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


@dataclass
class _WorktreeState:
    """What the check may not change: the set of uncommitted paths and their contents before it ran."""

    repo: Path
    root: Path
    dirty: dict[str, bool]
    content: dict[str, bytes | None]

    @classmethod
    def capture(cls, repo: Path, root: Path) -> _WorktreeState | None:
        dirty = _dirty(repo, root)
        if dirty is None:
            return None  # not a git worktree: nothing to compare against
        content = {p: _read(root / p) for p in dirty}
        return cls(repo, root, dirty, content)

    def restore(self) -> list[str]:
        """Undo what the check changed; returns the paths it put back."""
        after = _dirty(self.repo, self.root) or {}
        restored = []
        for rel, tracked in after.items():
            path = self.root / rel
            if rel in self.dirty:
                before = self.content[rel]
                now = _read(path)
                if now == before and not path.is_symlink():
                    continue
                if before is None or path.is_symlink():
                    path.unlink(missing_ok=True)
                if before is not None:
                    path.write_bytes(before)
            elif tracked:
                _git(self.repo, self.root, "checkout", "-q", "HEAD", "--", rel)
            else:
                path.unlink(missing_ok=True)
                self._prune_empty(path.parent)
            restored.append(rel)
        return restored

    def _prune_empty(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty, or gone
            directory = directory.parent


class SandboxedCheck:
    """Runs a smoke command for the implement loop; see the module docstring."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        workdir: Path,
        worktree_root: Path | None = None,
        repo_root: Path | None = None,
        protected: Sequence[str] = (),
        hidden: Sequence[Path] = (),
        hide: Sequence[str] = (),
        env: dict[str, str] | None = None,
        tail_chars: int = TAIL_CHARS,
        restore: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self.worktree_root = (worktree_root or workdir).resolve()
        #: The repository the worktree belongs to; without it the check cannot put the worktree back.
        self.repo_root = repo_root
        self.protected = list(protected)
        self.hidden = list(hidden)
        #: `[run] hide` globs: hidden from the check as from runs (the model reads its output).
        self.hide = list(hide)
        base = dict(scrubbed_env() if env is None else env)
        # No GPU (busy with runs; the sandbox gives none either) and no .pyc files littering the worktree.
        base.setdefault("CUDA_VISIBLE_DEVICES", "")
        base.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        self.env = base
        self.tail_chars = tail_chars
        self.restore = restore

    def __call__(self, command: str, timeout_s: float) -> CheckResult:
        state = None
        if self.restore and self.repo_root is not None:
            state = _WorktreeState.capture(self.repo_root, self.worktree_root)
        try:
            return self._run(command, timeout_s)
        finally:
            if state is not None:
                state.restore()

    def _argv(self, command: str) -> list[str]:
        shell = shutil.which("bash") or "/bin/sh"
        return self.sandbox.wrap(
            [shell, "-c", command],
            workdir=self.workdir,
            writable=[self.worktree_root],
            readonly=expand_globs(self.workdir, self.protected),
            hidden=[*self.hidden, *hidden_files(self.workdir, self.hide)],
            gpus=False,
            network=False,
            env=self.env,
        )

    def _run(self, command: str, timeout_s: float) -> CheckResult:
        start = time.monotonic()
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(
                    self._argv(command), cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                return CheckResult(None, f"cannot start the check: {exc}", False, time.monotonic() - start)
            timed_out = False
            try:
                proc.wait(timeout=max(timeout_s, 0.0))
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                kill_group(proc, graceful=timed_out)
            seconds = time.monotonic() - start
            tail = _read_tail(out, self.tail_chars)
        return CheckResult(None if timed_out else proc.returncode, tail, timed_out, seconds)


def _read_tail(f: IO[bytes], chars: int) -> str:
    """The last `chars` characters of the output file (read from its end: output may be huge)."""
    size = f.seek(0, 2)
    # UTF-8 needs at most 4 bytes a character: read that much and cut on characters.
    f.seek(max(0, size - 4 * chars))
    text = f.read().decode("utf-8", errors="replace")
    return text if len(text) <= chars and size <= 4 * chars else "…" + text[-chars:]
