"""`labmind mcp`: serve the agent tools of one lab to a coding agent over stdio (Model Context Protocol)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from labmind.agent_tools.ops import default_agent
from labmind.cli.common import TaskDirArg, fail


def mcp(
    task_dir: Path = TaskDirArg,
    agent: str = typer.Option(None, "--agent", help="The agent name this server claims experiments as (default: "
                                                    "$LABMIND_AGENT, else mcp-<pid>)."),
) -> None:
    """Serve the lab's agent tools over stdio (for Claude Code, Codex, Cursor): start_lab, status,
    next_experiment, submit_experiment, results, history, stop_lab. See docs/agent.md."""
    if not task_dir.is_dir():
        fail(f"{task_dir} is not a directory; pass the task directory (it holds labmind.toml), e.g. "
             "`labmind mcp /path/to/task`.")
    # One server is one agent: without a name, the process id keeps two servers on one lab apart.
    name = agent or (default_agent() if os.environ.get("LABMIND_AGENT") else f"mcp-{os.getpid()}")
    # Imported here: the MCP SDK takes about a second to import, and only this verb needs it.
    from labmind.agent_tools.server import build_server

    build_server(task_dir.resolve(), name).run("stdio")
