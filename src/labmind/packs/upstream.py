"""What every pack does with the upstream checkout it is built around: check that it is the pinned version,
and adapt its files by exact, anchored edits.

An edit names the upstream text it replaces by an anchor (a whole line by its beginning, or a block from its
first line to its last) and must match exactly once, or packing stops naming the edit: an upstream that moved
on is refused, never half-adapted.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class AdaptError(Exception):
    """Upstream's text is not what the pack was written for."""


@dataclass(frozen=True)
class Pin:
    """The upstream version a pack was written for: its repository, commit and the sha256 of its files."""

    repo: str
    commit: str
    sha256: dict[str, str]


@dataclass(frozen=True)
class Edit:
    """Replace one line (`line` = how it begins) or one block (`first`...`last`, whole lines) by `new`."""

    name: str
    why: str
    new: str
    line: str | None = None
    first: str | None = None
    last: str | None = None

    def pattern(self) -> re.Pattern[str]:
        if self.line is not None:
            return re.compile(rf"^{re.escape(self.line)}.*\n", re.MULTILINE)
        assert self.first is not None and self.last is not None
        return re.compile(rf"^{re.escape(self.first)}.*\n(?:.*\n)*?{re.escape(self.last)}.*\n", re.MULTILINE)

    def describe(self) -> str:
        return f"the line beginning {self.line!r}" if self.line is not None else \
            f"the block from the line beginning {self.first!r} to the one beginning {self.last!r}"


def apply_edits(text: str, edits: Sequence[Edit], filename: str, pin: Pin) -> str:
    """`text` with every edit applied; AdaptError when an anchor is missing or ambiguous."""
    for edit in edits:
        matches = list(edit.pattern().finditer(text))
        if len(matches) != 1:
            raise AdaptError(
                f"{filename}: edit '{edit.name}' needs {edit.describe()} exactly once, found it {len(matches)} "
                f"times. This pack adapts {pin.repo} at {pin.commit[:7]}; check that commit out "
                f"(git -C UPSTREAM checkout {pin.commit[:7]}) and pack again.")
        match = matches[0]
        text = text[:match.start()] + edit.new + text[match.end():]
    return text


def check_upstream(path: Path, pin: Pin, any_commit: bool, error: type[Exception]) -> dict[str, Any]:
    """Digests (and git HEAD, when it is a checkout) of upstream's files; `error` for another version (unless
    `any_commit`: the edits are then tried on it)."""
    if not path.is_dir():
        raise error(f"--upstream {path} is not a directory: clone {pin.repo} and pass its path")
    digests = {}
    for name in pin.sha256:
        if not (path / name).is_file():
            raise error(f"--upstream {path} has no {name}: is it a checkout of {pin.repo}?")
        digests[name] = file_sha256(path / name)
    head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    commit = head.stdout.strip() if head.returncode == 0 else None
    exact = digests == pin.sha256
    if not exact and not any_commit:
        differ = [n for n in digests if digests[n] != pin.sha256[n]]
        raise error(
            f"{path} is not {pin.repo} at {pin.commit[:7]}: {', '.join(differ)} differ"
            f"{f' (HEAD is {commit[:7]})' if commit else ''}. Run `git -C {path} checkout "
            f"{pin.commit[:7]}`, or pass --any-commit to try the pack's edits on this version.")
    return {"repo": pin.repo, "commit": pin.commit if exact else commit, "pinned_commit": pin.commit,
            "matches_pinned": exact, "sha256": digests, "path": str(path.resolve())}
