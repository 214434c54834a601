"""What a lab's report and dashboard say about the library: the insights this lab recorded and the ones its
experiments applied, with how each application ended. Read-only; a missing library means nothing to cite."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labmind.library.model import Insight
from labmind.library.record import applied_ids
from labmind.library.store import Library, LibraryError, resolve
from labmind.store import ExperimentRow


@dataclass(frozen=True)
class Application:
    experiment_id: int
    verdict: str | None
    insight: Insight | None  # None when the library no longer holds it (another library, deleted)
    insight_id: int


@dataclass(frozen=True)
class Citations:
    library: str
    recorded: list[Insight] = field(default_factory=list)
    applied: list[Application] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"library": self.library, "recorded": [i.to_dict() for i in self.recorded],
                "applied": [{"experiment": a.experiment_id, "verdict": a.verdict, "insight": a.insight_id,
                             "title": a.insight.title if a.insight else None} for a in self.applied]}


def library_of(settings: dict[str, Any]) -> Path | None:
    """The library a lab writes to, from its stored settings (`--library`), else the user's default."""
    return resolve(settings.get("library"))


def citations(settings: dict[str, Any], lab_dir: Path, experiments: list[ExperimentRow]) -> Citations | None:
    path = library_of(settings)
    try:
        if path is None or not path.exists():
            return None
        lib = Library(path, readonly=True)
    except (LibraryError, OSError):  # a library this user cannot read: the report goes without its section
        return None
    try:
        recorded = [i for i in lib.all() if i.provenance.lab_dir == str(lab_dir)]
        applied = []
        for exp in experiments:
            for iid in applied_ids(exp):
                try:
                    insight: Insight | None = lib.get(iid)
                except LibraryError:
                    insight = None
                applied.append(Application(exp.id, exp.verdict, insight, iid))
        return Citations(str(path), recorded, applied)
    except sqlite3.Error:
        return None
    finally:
        lib.close()
