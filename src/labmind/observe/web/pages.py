"""HTML pages: overview, experiments list (with an htmx-swapped table), tree and experiment detail."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from labmind import figures
from labmind.observe.web import present
from labmind.observe.web.deps import db, lab_paths
from labmind.paths import LabPaths
from labmind.store import queries
from labmind.verdicts import Verdict

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters.update(fmt=partial(figures.fmt, digits=5), fmt_p=present.fmt_p, fmt_time=present.fmt_time,
                             fmt_duration=present.fmt_duration, flag_text=present.flag_text,
                             flag_detail=present.flag_detail)
# Figures with a spread are written by the same functions as in the CLI and the report (one `±` convention).
templates.env.globals.update(meaning=present.meaning, figure=figures.figure, spread_of=figures.spread_of)

PAGE_SIZE = 50
VERDICT_FILTERS = ["baseline", *[v.value for v in Verdict], "pending"]


def _page(request: Request, name: str, conn: sqlite3.Connection, **context: Any) -> HTMLResponse:
    info = present.lab_info(conn)
    context.setdefault("title", "")
    return templates.TemplateResponse(request, name, {
        "lab_name": info.lab.name if info else "(no lab yet)",
        "metric_name": info.task.metric.name if info else "",
        "goal": info.task.metric.goal if info else "",
        **context,
    })


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, conn: sqlite3.Connection = Depends(db),
             paths: LabPaths = Depends(lab_paths)) -> HTMLResponse:
    data = present.overview(conn, paths)
    return _page(request, "overview.html", conn, s=data, events=queries.recent_events(conn), nav="overview",
                 title="Overview")


def _list_context(conn: sqlite3.Connection, page: int, verdict: str | None, line: int | None) -> dict[str, Any]:
    data = present.experiments_page(conn, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, verdict=verdict, line=line)
    pages = max(1, -(-data["total"] // PAGE_SIZE))
    return {"data": data, "page": min(page, pages), "pages": pages, "verdict": verdict or "", "line": line,
            "verdicts": VERDICT_FILTERS, "lines": queries.line_names(conn)}


@router.get("/experiments", response_class=HTMLResponse)
def experiments(request: Request, conn: sqlite3.Connection = Depends(db), page: int = Query(1, ge=1),
                verdict: str | None = None, line: str | None = None) -> HTMLResponse:
    line_id = int(line) if line and line.isdigit() else None
    ctx = _list_context(conn, page, verdict or None, line_id)
    # htmx asks for the table only (filter change, pager click); a normal visit gets the whole page.
    partial = request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request")
    name = "_experiments_table.html" if partial else "experiments.html"
    return _page(request, name, conn, nav="experiments", title="Experiments", **ctx)


@router.get("/tree", response_class=HTMLResponse)
def tree(request: Request, conn: sqlite3.Connection = Depends(db), line: str | None = None) -> HTMLResponse:
    line_id = int(line) if line and line.isdigit() else None
    return _page(request, "tree.html", conn, tree=present.tree(conn, line_id), lines=queries.line_names(conn),
                 line=line_id, nav="tree", title="Tree")


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment(request: Request, experiment_id: int, conn: sqlite3.Connection = Depends(db),
               paths: LabPaths = Depends(lab_paths)) -> HTMLResponse:
    exp = queries.experiment(conn, experiment_id)
    if exp is None:
        raise HTTPException(404, f"no experiment {experiment_id} in this lab")
    detail = present.experiment_detail(conn, paths, exp)
    return _page(request, "experiment.html", conn, e=detail, diff=present.diff_lines(detail["diff"]),
                 nav="experiments", title=f"Experiment {exp.id}")


PARTIALS = {"live": "_live.html", "verdicts": "_verdicts.html", "running": "_running.html", "lines": "_lines.html"}


@router.get("/partials/{name}", response_class=HTMLResponse)
def partial(request: Request, name: str, conn: sqlite3.Connection = Depends(db),
            paths: LabPaths = Depends(lab_paths)) -> HTMLResponse:
    """Fragments of the overview that the live view swaps in with htmx when the lab moves."""
    if name not in PARTIALS:
        raise HTTPException(404, f"no partial {name}")
    return _page(request, PARTIALS[name], conn, s=present.overview(conn, paths))
