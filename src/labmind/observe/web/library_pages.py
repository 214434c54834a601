"""The dashboard's library pages: the insights of the user's library (this lab's first), searchable, and one
page per insight with its evidence, provenance and record of applications. Read-only."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from labmind.library import Insight, Library, LibraryError
from labmind.library.cite import library_of
from labmind.observe.web import present
from labmind.observe.web.deps import db, lab_paths
from labmind.observe.web.pages import _page
from labmind.paths import LabPaths

router = APIRouter()


def _library(conn: sqlite3.Connection) -> Library | None:
    info = present.lab_info(conn)
    path = library_of(info.lab.settings if info else {})
    if path is None or not path.exists():
        return None
    try:
        return Library(path, readonly=True)
    except LibraryError:
        return None


def _row(ins: Insight, paths: LabPaths) -> dict[str, Any]:
    return {"i": ins, "mine": ins.provenance.lab_dir == str(paths.task_dir),
            "effect": ins.effect.text() if ins.effect else None}


@router.get("/library", response_class=HTMLResponse)
def library(request: Request, q: str = "", conn: sqlite3.Connection = Depends(db),
            paths: LabPaths = Depends(lab_paths)) -> HTMLResponse:
    lib = _library(conn)
    info = present.lab_info(conn)
    family = (info.task.task.family or info.task.name) if info else None
    rows: list[dict[str, Any]] = []
    applied: list[dict[str, Any]] = []
    if lib is not None:
        try:
            if q.strip():
                rows = [{**_row(h.insight, paths), "why": h.why} for h in lib.search(q, family=family, limit=100)]
            else:
                items = lib.all()
                # This lab's insights first, then the same family, then the rest; newest first within each.
                items.sort(key=lambda i: (i.provenance.lab_dir != str(paths.task_dir), i.family != family,
                                          -(i.id or 0)))
                rows = [_row(i, paths) for i in items]
            applied = present.applications(conn, lib)
        finally:
            lib.close()
    return _page(request, "library.html", conn, nav="library", title="Library", rows=rows, q=q, family=family,
                 applied=applied, has_library=lib is not None,
                 library_path=str(library_of(info.lab.settings if info else {}) or "off"))


@router.get("/library/{insight_id}", response_class=HTMLResponse)
def insight(request: Request, insight_id: int, conn: sqlite3.Connection = Depends(db),
            paths: LabPaths = Depends(lab_paths)) -> HTMLResponse:
    lib = _library(conn)
    if lib is None:
        raise HTTPException(404, "this lab has no insight library")
    try:
        ins = lib.get(insight_id)
        apps = lib.applications_of(insight_id)
    except LibraryError as exc:
        raise HTTPException(404, str(exc)) from exc
    finally:
        lib.close()
    return _page(request, "insight.html", conn, nav="library", title=f"Insight {insight_id}", r=_row(ins, paths),
                 apps=apps, lab_dir=str(paths.task_dir))
