"""The three lab verbs a campaign needs (`run`, `status`, `show`), as `python -m labmind.packs.kernels.labcli`.

The same functions as `labmind run/status/show`; registered here alone so a GPU host running a campaign
needs only the lab's dependencies, not those of unrelated verbs (the web UI's or the MCP server's).
"""

from __future__ import annotations

import typer

from labmind.cli import read, run

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
app.command()(run.run)
app.command()(read.status)
app.command()(read.show)

if __name__ == "__main__":
    app()
