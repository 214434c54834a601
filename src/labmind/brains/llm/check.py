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

from labmind.brains.command import SandboxLike, _kill_group, expand_globs, scrubbed_env
from labmind.brains.command import worktree_root as find_worktree_root

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


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=_GIT_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", errors="surrogateescape")


def _dirty(root: Path) -> dict[str, bool] | None:
    """Uncommitted paths of the worktree (untracked, not ignored, included) → whether git tracks them."""
    out = _git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--", ".")
    if out is None:
        return None
    entries = (e for e in out.split("\0") if len(e) > 3)
    return {e[3:]: not e.startswith("??") for e in entries}


@dataclass
class _WorktreeState:
    """What the check may not change: the set of uncommitted paths and their contents before it ran."""

    root: Path
    dirty: dict[str, bool]
    content: dict[str, bytes | None]

    @classmethod
    def capture(cls, root: Path) -> _WorktreeState | None:
        dirty = _dirty(root)
        if dirty is None:
            return None  # not a git worktree: nothing to compare against
        content = {p: ((root / p).read_bytes() if (root / p).is_file() else None) for p in dirty}
        return cls(root, dirty, content)

    def restore(self) -> list[str]:
        """Undo what the check changed; returns the paths it put back."""
        after = _dirty(self.root) or {}
        restored = []
        for rel, tracked in after.items():
            path = self.root / rel
            if rel in self.dirty:
                before = self.content[rel]
                now = path.read_bytes() if path.is_file() else None
                if now == before:
                    continue
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(before)
            elif tracked:
                _git(self.root, "checkout", "-q", "HEAD", "--", rel)
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
        sandbox: SandboxLike,
        *,
        workdir: Path,
        worktree_root: Path | None = None,
        protected: Sequence[str] = (),
        hidden: Sequence[Path] = (),
        env: dict[str, str] | None = None,
        tail_chars: int = TAIL_CHARS,
        restore: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self.worktree_root = (worktree_root or find_worktree_root(workdir)).resolve()
        self.protected = list(protected)
        self.hidden = list(hidden)
        base = dict(scrubbed_env() if env is None else env)
        # No GPU (busy with runs; the sandbox gives none either) and no .pyc files littering the worktree.
        base.setdefault("CUDA_VISIBLE_DEVICES", "")
        base.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        self.env = base
        self.tail_chars = tail_chars
        self.restore = restore

    def __call__(self, command: str, timeout_s: float) -> CheckResult:
        state = _WorktreeState.capture(self.worktree_root) if self.restore else None
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
            hidden=self.hidden,
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
                _kill_group(proc, graceful=timed_out)
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
