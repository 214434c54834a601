"""The dashboard served from a background thread on a free loopback port: for benchmarks and browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labmind.observe.web.app import create_app


@contextmanager
def serve_in_thread(task_dir: Path, *, start_timeout: float = 20.0, **kwargs: Any) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) of a running dashboard; stop it on exit. `kwargs` go to
    `create_app` (a token, the poll interval)."""
    import uvicorn  # the web stack only when a server is wanted

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(task_dir, **kwargs)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the dashboard did not start on 127.0.0.1:{port} within {start_timeout:g}s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.stopping.set()  # open live streams end at their next poll instead of holding shutdown
        server.should_exit = True
        thread.join(timeout=10)
