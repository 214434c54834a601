"""JSON API under /api, used by the pages' scripts and available to other tools."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from labmind.observe.web import present
from labmind.observe.web.deps import db, lab_paths, safe_log_path
from labmind.paths import LabPaths
from labmind.store import queries

router = APIRouter(prefix="/api")

#: Send an SSE comment this often when nothing happens, so proxies and browsers keep the stream open.
KEEPALIVE_SECONDS = 15.0


@router.get("/status")
def status(conn: sqlite3.Connection = Depends(db), paths: LabPaths = Depends(lab_paths)) -> dict[str, Any]:
    return present.overview(conn, paths)


@router.get("/experiments")
def experiments(conn: sqlite3.Connection = Depends(db), limit: int = Query(50, ge=1, le=1000),
                offset: int = Query(0, ge=0), verdict: str | None = None, line: int | None = None,
                order: str = Query("desc", pattern="^(asc|desc)$")) -> dict[str, Any]:
    return present.experiments_page(conn, limit=limit, offset=offset, verdict=verdict or None, line=line,
                                    newest_first=order == "desc")


@router.get("/experiments/{experiment_id}")
def experiment(experiment_id: int, conn: sqlite3.Connection = Depends(db),
               paths: LabPaths = Depends(lab_paths)) -> dict[str, Any]:
    exp = queries.experiment(conn, experiment_id)
    if exp is None:
        raise HTTPException(404, f"no experiment {experiment_id} in this lab")
    return present.experiment_detail(conn, paths, exp)


@router.get("/chart")
def chart(conn: sqlite3.Connection = Depends(db),
          max_points: int = Query(queries.CHART_MAX_POINTS, ge=100, le=20000)) -> dict[str, Any]:
    return present.chart(conn, max_points)


@router.get("/tree")
def tree(conn: sqlite3.Connection = Depends(db), line: int | None = None) -> dict[str, Any]:
    return present.tree(conn, line)


@router.get("/events")
def events(conn: sqlite3.Connection = Depends(db), after_id: int = Query(0, ge=0),
           limit: int = Query(200, ge=1, le=1000)) -> list[dict[str, Any]]:
    return queries.events(conn, after_id=after_id, limit=limit)


@router.get("/runs/{run_id}/log")
def run_log(run_id: int, conn: sqlite3.Connection = Depends(db), paths: LabPaths = Depends(lab_paths)) -> FileResponse:
    run = queries.run(conn, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    path = safe_log_path(paths, run)
    if path is None:
        raise HTTPException(404, f"run {run_id} has no log inside this lab's runs directory")
    return FileResponse(path, media_type="text/plain; charset=utf-8",
                        filename=f"exp-{run.experiment_id}-run-{run.id}.log")


def _poll(paths: LabPaths, after_id: int) -> list[dict[str, Any]]:
    if not paths.db.exists():
        return []
    with queries.connect(paths.db) as conn:
        return queries.events(conn, after_id=after_id, limit=500)


async def event_stream(request: Request, paths: LabPaths, after_id: int, poll_seconds: float,
                       max_seconds: float | None = None, stop: threading.Event | None = None
                       ) -> AsyncIterator[ServerSentEvent]:
    """New rows of the store's `events` table as server-sent events (sse-starlette encodes them and sends the
    keep-alive pings). Each poll opens a short read-only connection in a worker thread, so the event loop
    never waits on SQLite and the lab never waits on us."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    yield ServerSentEvent(retry=2000)  # a dropped connection is retried after 2 s, resuming at its last id
    while True:
        if await request.is_disconnected() or (stop is not None and stop.is_set()):
            return
        rows = await run_in_threadpool(_poll, paths, after_id)
        for row in rows:
            after_id = row["id"]
            yield ServerSentEvent(id=str(row["id"]), event="lab", data=json.dumps(row))
        if max_seconds is not None and loop.time() - start >= max_seconds:
            return
        await asyncio.sleep(poll_seconds)


@router.get("/stream")
async def stream(request: Request, after_id: int | None = Query(None, ge=0),
                 max_seconds: float | None = Query(None, gt=0, le=3600)) -> EventSourceResponse:
    paths = lab_paths(request)
    # A reconnecting EventSource resumes from the last id it saw (its header wins over the page's first
    # `after_id`); a client that gives neither starts from now.
    last = request.headers.get("last-event-id", "")
    if last.isdigit():
        after_id = int(last)
    elif after_id is None:
        after_id = await run_in_threadpool(_last_event_id, paths)
    settings = request.app.state.settings
    return EventSourceResponse(event_stream(request, paths, after_id, settings.poll_seconds, max_seconds,
                                            request.app.state.stopping),
                               ping=KEEPALIVE_SECONDS)


def _last_event_id(paths: LabPaths) -> int:
    if not paths.db.exists():
        return 0
    with queries.connect(paths.db) as conn:
        return queries.last_event(conn)
