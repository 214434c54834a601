"""Digests of protected files (sha256), taken without following symlinks and within caps.

After every proposal and every run labmind checks that the protected files are as committed. What it reads
there was written by untrusted code, so the check:

- never follows a symlink: a link is digested as its target's name (`symlink:<target>`), so a link to `/`
  in a protected folder costs one readlink, not a walk of the disk; other non-files (fifos, devices) are
  digested by their type and never opened;
- compares the set of names first: a file that was added or removed is reported without hashing anything,
  so a 16 GiB sparse file dropped into a protected folder is rejected at once;
- hashes within caps (bytes, files, seconds). A check that hits a cap fails with a sentence naming the cap,
  and the experiment is `rejected` for it, as for any protected file that cannot be shown unchanged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 20


@dataclass(frozen=True)
class DigestCaps:
    """How much one digest may read. The defaults bound the first digest, of the user's own committed files."""

    max_bytes: int = 256 << 30
    max_files: int = 1_000_000
    max_seconds: float = 3600.0

    @classmethod
    def after_changes(cls, expected_files: int, expected_bytes: int | None) -> DigestCaps:
        """Caps for re-checking files that held `expected_bytes` (unknown: the defaults) when first digested:
        twice that plus 64 MiB, and a time to read it at 100 MiB/s plus two minutes."""
        if expected_bytes is None:
            return cls()
        return cls(max_bytes=2 * expected_bytes + (64 << 20), max_files=2 * expected_files + 1000,
                   max_seconds=120.0 + expected_bytes / (100 << 20))


class DigestCapExceeded(Exception):
    """The protected files could not be digested within a cap; the message names the cap."""


def first_symlink(task_dir: Path, path: Path) -> Path | None:
    """The first symlinked directory on the way from task_dir to path (exclusive), if any."""
    current = task_dir
    for part in path.relative_to(task_dir).parts[:-1]:
        current = current / part
        if current.is_symlink():
            return current
    return None


def protected_entries(task_dir: Path, patterns: list[str], caps: DigestCaps = DigestCaps()) -> dict[str, Path]:
    """Task-relative name -> path of everything the protected globs cover: files, symlinks and other
    non-directories; a matching directory with its whole tree. Symlinks are entries themselves, never
    followed (nor anything reached through one)."""
    out: dict[str, Path] = {}

    def add(path: Path) -> None:
        out[path.relative_to(task_dir).as_posix()] = path
        if len(out) > caps.max_files:
            raise DigestCapExceeded(f"the protected paths hold more than {caps.max_files:,} files (the cap)")

    for pattern in patterns:
        for match in task_dir.glob(pattern):
            link = first_symlink(task_dir, match)
            if link is not None:
                add(link)
                continue
            try:
                mode = os.lstat(match).st_mode
            except OSError:
                continue
            if not stat.S_ISDIR(mode):
                add(match)
                continue
            for directory, dirs, files in os.walk(match):  # followlinks=False: symlinked dirs are listed only
                for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(directory, d)))]:
                    add(Path(directory) / name)
    return dict(sorted(out.items()))


class _Budget:
    def __init__(self, caps: DigestCaps) -> None:
        self.caps = caps
        self.bytes = 0
        self.deadline = time.monotonic() + caps.max_seconds

    def spend(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.caps.max_bytes:
            raise DigestCapExceeded(f"the protected files hold more than {self.caps.max_bytes:,} bytes (the cap)")
        if time.monotonic() > self.deadline:
            raise DigestCapExceeded(f"digesting them took longer than {self.caps.max_seconds:.0f} s (the cap)")


def _digest_one(path: Path, budget: _Budget) -> str:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "symlink:" + os.readlink(path)
    if not stat.S_ISREG(st.st_mode):
        return "special:" + stat.filemode(st.st_mode)
    h = hashlib.sha256()
    # O_NOFOLLOW: the path was a file a moment ago; if it is a symlink now, do not open what it names.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        while block := f.read(_BLOCK):
            budget.spend(len(block))
            h.update(block)
    return h.hexdigest()


def digest_entries(entries: dict[str, Path], caps: DigestCaps = DigestCaps()) -> tuple[dict[str, str], int]:
    """The digest of every entry, and how many bytes were read."""
    budget = _Budget(caps)
    out = {name: _digest_one(path, budget) for name, path in entries.items()}
    return out, budget.bytes


def digest(task_dir: Path, protected: list[str], caps: DigestCaps = DigestCaps()) -> dict[str, str]:
    """sha256 of every protected file (see the module docstring), keyed by its task-relative path."""
    return digest_entries(protected_entries(task_dir, protected, caps), caps)[0]


def digest_mismatch(expected: dict[str, str], actual: dict[str, str]) -> str | None:
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            return f"protected file {name} was deleted"
        if name not in expected:
            return f"protected path gained a new file {name}"
        if expected[name] != actual[name]:
            return f"protected file {name} was modified"
    return None


def verify_protected(task_dir: Path, protected: list[str], expected: dict[str, str],
                     caps: DigestCaps = DigestCaps()) -> str | None:
    """Why the protected files are not as `expected` (a sentence naming the file or the cap), or None."""
    try:
        entries = protected_entries(task_dir, protected, caps)
        names = {name: "" for name in entries}
        # Names first: an added or removed file is reported before anything is read.
        changed = digest_mismatch(dict.fromkeys(expected, ""), names)
        if changed is not None:
            return changed
        return digest_mismatch(expected, digest_entries(entries, caps)[0])
    except DigestCapExceeded as exc:
        return f"protected files could not be verified: {exc}"
