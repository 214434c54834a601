"""The dashboard's app factory: settings, token check, static files and routes."""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from labmind.observe.web import api, library_pages, pages
from labmind.paths import LabPaths

HERE = Path(__file__).parent
COOKIE = "labmind_token"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Settings:
    task_dir: Path
    token: str | None = None
    #: How often the live stream polls the store for new events (seconds).
    poll_seconds: float = 0.5

    @property
    def paths(self) -> LabPaths:
        return LabPaths(self.task_dir.resolve())


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    given = [request.query_params.get("token", ""), request.cookies.get(COOKIE, ""),
             header[7:] if header.lower().startswith("bearer ") else ""]
    # compare_digest on every candidate: no early exit that would leak timing.
    return any([secrets.compare_digest(g.encode(), token.encode()) for g in given if g])


def _host_allowed(header: str, allowed: frozenset[str]) -> bool:
    """The Host header without its port is one of `allowed` (IPv6 literals come in brackets)."""
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or not re.fullmatch(r"(:\d+)?", host[end + 1 :]):
            return False
        host = host[1:end]
    elif host.count(":") == 1:
        host, port = host.split(":")
        if not port.isdigit():
            return False
    elif ":" in host:
        return False
    return host in allowed


def create_app(task_dir: Path, *, token: str | None = None, poll_seconds: float = 0.5,
               host: str | None = None) -> FastAPI:
    """The dashboard app; `host` is the address the server is bound to (loopback by default)."""
    settings = Settings(task_dir=task_dir, token=token, poll_seconds=poll_seconds)
    app = FastAPI(title="labmind", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    # Set by whoever stops the server: live streams end at their next poll, so shutdown never waits on them.
    app.state.stopping = threading.Event()

    if not token:
        # Without a token only loopback listens, but a web page can still reach it by DNS rebinding (its own
        # name resolving to 127.0.0.1): refusing every Host that is not ours closes that door.
        allowed = LOOPBACK | ({host.strip("[]").lower()} if host else set())

        @app.middleware("http")
        async def check_host(request: Request, call_next) -> Response:
            if not _host_allowed(request.headers.get("host", ""), allowed):
                return PlainTextResponse("labmind ui: unexpected Host header; open the dashboard as "
                                         "http://127.0.0.1:PORT/ or http://localhost:PORT/.\n", status_code=400)
            return await call_next(request)

    if token:
        @app.middleware("http")
        async def check_token(request: Request, call_next) -> Response:
            if not _authorized(request, token):
                return PlainTextResponse("labmind ui: a token is required (open the URL printed by `labmind ui`, "
                                         "or send `Authorization: Bearer TOKEN`).\n", status_code=401)
            if "token" not in request.query_params:
                return await call_next(request)
            # Move the token from the URL into an HttpOnly cookie, so it leaves the address bar and history
            # and scripts (EventSource, fetch) authenticate without ever seeing it.
            if request.method == "GET":
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                response: Response = RedirectResponse(request.url.path + ("?" + urlencode(rest) if rest else ""),
                                                      status_code=303)
            else:
                response = await call_next(request)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(library_pages.router)
    return app
