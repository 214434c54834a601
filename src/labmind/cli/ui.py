"""`labmind ui`: serve the read-only web dashboard of a lab."""

from __future__ import annotations

import errno
import secrets
import socket
from pathlib import Path

import typer

from labmind.cli.common import TaskDirArg, console, fail
from labmind.paths import LabPaths


def ui(task_dir: Path = TaskDirArg,
       host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but loopback needs a token."),
       port: int = typer.Option(8765, min=1, max=65535, help="Port to listen on (1-65535)."),
       token: str = typer.Option(None, help="Require this token (generated when --host is not loopback).")) -> None:
    """Open the lab's web dashboard: progress chart, experiments, tree, diffs, logs; live while the lab runs."""
    import uvicorn  # imported here so other verbs don't pay for the web stack

    from labmind.observe.web import create_app
    from labmind.observe.web.app import LOOPBACK

    paths = LabPaths(task_dir.resolve())
    if not paths.db.exists():
        fail(f"no lab in {paths.task_dir}. Start one with `labmind run {task_dir}`, then `labmind ui {task_dir}`.")
    if host not in LOOPBACK and not token:
        # Exposing a lab's code and logs beyond this machine without a secret would let anyone read them.
        token = secrets.token_urlsafe(24)
    try:
        # Bound here, before the URL is printed: a busy port is a clear error, not a URL then a server's traceback.
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        why = "the port is in use (another `labmind ui`?)" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        fail(f"cannot listen on {host}:{port}: {why}. Pick another port, e.g. `labmind ui {task_dir} --port "
             f"{port + 1 if port < 65535 else 8766}`.")
    query = f"?token={token}" if token else ""
    console.print(f"labmind ui for [bold]{paths.task_dir}[/]")
    if host in ("0.0.0.0", "::"):
        # Listening on every interface: the loopback URL works here, the host name from other machines.
        console.print(f"  open http://127.0.0.1:{port}/{query}", highlight=False, soft_wrap=True)
        console.print(f"  from elsewhere: http://{socket.gethostname()}:{port}/{query}", highlight=False,
                      soft_wrap=True)
    else:
        shown = f"[{host}]" if ":" in host else host
        console.print(f"  open http://{shown}:{port}/{query}", highlight=False, soft_wrap=True)
    if token:
        console.print("  every request needs the token; scripts send `Authorization: Bearer TOKEN`", highlight=False)
    console.print("  read-only: the lab keeps running undisturbed. Ctrl-C to stop.", highlight=False)
    app = create_app(paths.task_dir, token=token)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            app.state.stopping.set()  # open live streams end at their next poll instead of holding shutdown
            super().handle_exit(sig, frame)

    with sock:
        Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
               ).run(sockets=[sock])
