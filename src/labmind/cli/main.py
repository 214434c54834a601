"""The `labmind` command. Each verb lives in its own module; this file only registers them."""

from __future__ import annotations

import typer

from labmind.cli import agent, bench, check, control, guard, library, mcp, pack, read, report, run, ui

app = typer.Typer(
    name="labmind",
    help="An autonomous research lab: proposes, runs and rigorously judges code experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(control.init)
app.command()(check.check)
app.command()(run.run)
app.command()(run.resume)
app.command()(read.status)
app.command()(read.log)
app.command()(read.show)
app.command()(read.diff)
app.command()(read.calls)
app.command()(control.stop)
app.command()(guard.review)
app.command("guard-report")(guard.guard_report)
app.command()(ui.ui)
app.command()(report.report)
app.command()(report.export)
app.add_typer(bench.bench_app, name="bench")
app.add_typer(agent.agent_app, name="agent")
app.add_typer(pack.pack_app, name="pack")
app.add_typer(library.library_app, name="library")
app.command()(mcp.mcp)

if __name__ == "__main__":
    app()
