"""End to end through the MCP server: two real MCP clients (the SDK's, over stdio) drive a real lab."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from labmind.verdicts import Verdict

from .labkit import changed_lines, edit, expected_lines, experiments, make_toy, stop_lab, wait_stopped

pytestmark = pytest.mark.slow

TOOLS = {"status", "start_lab", "stop_lab", "next_experiment", "submit_experiment", "results", "history"}


def server(task: Path, agent: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "labmind.cli.main", "mcp", str(task),
                                                               "--agent", agent], cwd=str(task))


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def drive(task: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with Client(server(task, "alpha")) as alpha, Client(server(task, "beta")) as beta:
        tools = (await alpha.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        assert all(len(t.description or "") > 60 for t in tools)  # enough for an agent to use them unaided
        assert "next_experiment" in (alpha.instructions or "")

        refused = await alpha.call_tool("status", {})
        assert refused.is_error and "no lab in" in text(refused) and "start" in text(refused)
        started = await call(alpha, "start_lab", slots=2, max_experiments=2)
        assert started["state"] == "running"

        a = await call(alpha, "next_experiment", line=1, wait_seconds=120)
        b = await call(beta, "next_experiment", line=2, wait_seconds=120)
        assert (a["agent"], a["line"], b["agent"], b["line"]) == ("alpha", 1, "beta", 2)
        offers = (await call(beta, "status"))["offers"]
        assert sorted((o["experiment"], o["agent"]) for o in offers) == sorted(
            [(a["experiment"], "alpha"), (b["experiment"], "beta")])

        out["a"] = edit(a["worktree"], "LR = 0.001", "LR = 0.01")
        out["b"] = edit(b["worktree"], "WIDTH = 8", "WIDTH = 4")
        stolen = await alpha.call_tool("submit_experiment", {"experiment": b["experiment"], "title": "mine"})
        assert stolen.is_error and "claimed by agent 'beta', not 'alpha'" in text(stolen)

        submitted = await call(alpha, "submit_experiment", experiment=a["experiment"], title="raise LR",
                               hypothesis="0.01 is near the optimum", expected_effect="loss -1")
        assert submitted["status"] == "submitted" and submitted["changed_files"] == ["train.py"]
        await call(beta, "submit_experiment", experiment=b["experiment"], title="narrower model",
                   hypothesis="a smaller WIDTH regularises")

        # results waits for the verdict in slices, as an agent under a client-side tool timeout would.
        for client, exp, key in ((alpha, a["experiment"], "verdict_a"), (beta, b["experiment"], "verdict_b")):
            for _ in range(10):
                record = (await call(client, "results", experiment=exp, wait_seconds=30))["experiments"][0]
                if record["final"]:
                    break
            out[key] = record
        mine = await call(beta, "results")
        assert [r["id"] for r in mine["experiments"]] == [b["experiment"]]
        history = await call(beta, "history", line=1)
        assert [r["id"] for r in history["lines"][0]["experiments"]] == [a["experiment"]]
        out["ids"] = (a["experiment"], b["experiment"])
    return out


def test_two_mcp_clients_drive_a_lab(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    try:
        out = asyncio.run(drive(task))
    finally:
        stop_lab(task)
    wait_stopped(task)
    a, b = out["ids"]
    assert out["verdict_a"]["verdict"] == "improved" and out["verdict_a"]["agent"] == "alpha"
    assert out["verdict_b"]["verdict"] == "not_improved"  # 0.5 / WIDTH doubles: worse
    rows = experiments(task)
    assert (rows[a].line_id, rows[b].line_id) == (1, 2)
    assert (rows[a].verdict, rows[b].verdict) == (Verdict.IMPROVED, Verdict.NOT_IMPROVED)
    for exp, (before, after) in ((a, out["a"]), (b, out["b"])):
        assert changed_lines(rows[exp].diff or "") == expected_lines(before, after)
    assert rows[a].idea.expected_effect == "loss -1" and rows[b].idea.params["_agent"] == "beta"
