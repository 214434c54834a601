"""The `labmind` command. Each verb lives in its own module, imported only when that verb runs: importing
them all (scipy, numpy, optuna, fastapi behind them) made even `labmind --help` take seconds."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

#: name -> (module under labmind.cli, attribute: a command function or a Typer of subcommands, one-line help).
#: The help is what `labmind --help` lists without importing the module; a test keeps it equal to the first
#: line of the command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("control", "init",
             "Make a plain directory a git repository with one commit, so labmind can run experiments on it."),
    "check": ("check", "check",
             "Validate the task and measure the baseline's noise (no experiments are proposed)."),
    "run": ("run", "run",
             "Run the research loop on a task (creates the lab, or resumes it when it exists)."),
    "resume": ("run", "resume",
             "Resume a stopped or killed lab: finished work is kept, interrupted runs are re-queued once."),
    "reset": ("control", "reset",
             "Start a lab afresh: move the lab (store, logs, git refs) to a backup under .labmind/backups/."),
    "status": ("read", "status",
             "Best, baseline, counts by verdict, lines and what is running; for a campaign directory, every task."),
    "log": ("read", "log",
             "One row per experiment: id, line, parent, verdict, metric ± 95% CI half-width, runs, flags, idea."),
    "show": ("read", "show",
             "Everything about one experiment: idea, verdict and why, runs, flags, changed files."),
    "diff": ("read", "diff",
             "The experiment's code change, as computed by labmind with git."),
    "calls": ("read", "calls",
             "The lab's LLM calls: role, model, tokens, dollars, latency; totals by role."),
    "stop": ("control", "stop",
             "Stop a running lab: its running runs are killed and re-queued for `labmind resume`."),
    "review": ("guard", "review",
             "Record a person's decision on a flagged experiment."),
    "guard-report": ("guard", "guard_report",
             "The guard's figures: experiments checked, flags and rejections by rule, reviews."),
    "ui": ("ui", "ui",
             "Open the lab's web dashboard: progress chart, experiments, tree, diffs, logs; live while the lab "
         "runs."),
    "report": ("report", "report",
             "Write report.md, report.html (self-contained) and PNG plots of the lab; for a campaign directory, "
         "campaign.md with every task's scores."),
    "export": ("report", "export",
             "Export experiments or runs as JSONL or CSV, or log them to MLflow."),
    "bench": ("bench", "bench_app",
             "Benchmarks that ship with labmind."),
    "agent": ("agent", "agent_app",
             "Let an interactive agent drive the lab: it claims experiments, edits their worktrees and submits; "
         "labmind runs and judges them. See docs/agent.md."),
    "pack": ("pack", "pack_app",
             "Make labmind tasks from upstream benchmark checkouts (docs/packs/)."),
    "library": ("library", "library_app",
             "The insight library: lessons with evidence, shared by all your labs."),
    "mcp": ("mcp", "mcp",
             "Serve the lab's agent tools over stdio (for Claude Code, Codex, Cursor): start_lab, status, "
         "next_experiment, submit_experiment, results, history, stop_lab. See docs/agent.md."),
}


def load_command(name: str) -> Any:
    """The real click command of one verb (imports its module)."""
    module_name, attr, _ = COMMANDS[name]
    obj: Any = getattr(importlib.import_module(f"labmind.cli.{module_name}"), attr)
    if isinstance(obj, typer.Typer):
        command: Any = typer.main.get_group(obj)  # without completion options: those are labmind's
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(obj)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """Lists every verb from COMMANDS; imports a verb's module only when it is invoked (or its help asked for)."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:  # `labmind --help`: the one-line help is enough
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"labmind {version('labmind')}")
        except PackageNotFoundError:
            typer.echo("labmind (not installed: running from a source tree)")
        raise typer.Exit()


app = typer.Typer(
    name="labmind",
    cls=LazyGroup,
    help="An autonomous research lab: proposes, runs and rigorously judges code experiments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                      help="Print labmind's version and exit.")) -> None:
    """An autonomous research lab: proposes, runs and rigorously judges code experiments."""


if __name__ == "__main__":
    app()
