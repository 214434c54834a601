"""The MCP server behind `labmind mcp`: the agent tools' operations as tools for a coding agent, over stdio.

One server process is one agent (its name is fixed when the server starts), bound to one task directory.
Every tool answers with readable text for the model and the same data as structured content; a refusal is
a tool error whose text says what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from labmind.agent_tools import brief
from labmind.agent_tools.launch import start_lab, stop_lab
from labmind.agent_tools.ops import AgentTools, ToolsError

#: Default seconds a tool waits for an offer or a verdict: below the 60 s tool timeout some clients use.
DEFAULT_WAIT_S = 45.0

INSTRUCTIONS = """\
labmind is a research lab bench. You make code changes; labmind runs each one as a sandboxed experiment,
measures the metric with noise-aware statistics and records a verdict. The loop:
1. status (and start_lab if no lab is running).
2. next_experiment: claims one experiment and tells you its worktree, the files you may edit, the goal,
   what was tried on its line and why it failed or worked.
3. Edit only the editable files inside that worktree (one focused idea). Do not commit.
4. submit_experiment with a title and hypothesis (or abandon="reason").
5. results(experiment=..., wait_seconds=45) until it has a verdict; learn from its reason; back to 2.
labmind takes the diff from git and its verdicts from its own runs, never from your description.
"""


def _answer(data: dict[str, Any], text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _call(op: Callable[[], dict[str, Any]], render: Callable[[dict[str, Any]], str]) -> CallToolResult:
    try:
        data = op()
    except ToolsError as exc:
        raise ToolError(str(exc)) from exc
    return _answer(data, render(data))


def build_server(task_dir: Path, agent: str) -> MCPServer:
    tools = AgentTools(task_dir)
    server = MCPServer(name="labmind", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(description="The lab's state: running or not, the baseline (metric ± sd of its runs), the best "
                             "(metric ± 95% CI half-width), the minimum effect, verdict counts, lines and "
                             "incumbents, running runs, and the experiments on offer to agents.")
    def status() -> CallToolResult:
        return _call(tools.status, brief.render_status)

    @server.tool(name="start_lab",
                 description="Start the lab in the background with the agent brain, if none is running. Options "
                             "left out keep the lab's stored settings (or defaults: one slot per GPU, one line per "
                             "slot, no experiment limit).")
    def start_lab_tool(
        slots: Annotated[int | None, Field(description="CPU slots, for CPU tasks (gpus = 0)", ge=1)] = None,
        gpus: Annotated[str | None, Field(description="GPUs to use, e.g. '0,1'")] = None,
        lines: Annotated[int | None, Field(description="research lines; one per agent works well", ge=1)] = None,
        max_experiments: Annotated[int | None, Field(description="stop offering after this many", ge=0)] = None,
        budget: Annotated[str | None, Field(description="wall-clock budget, e.g. '2h'")] = None,
        claim_timeout: Annotated[str | None, Field(description="withdraw unclaimed offers after, e.g. '30m'")] = None,
        submit_timeout: Annotated[str | None, Field(description="withdraw claimed experiments not submitted "
                                                                "after, e.g. '2h' (default 1h)")] = None,
    ) -> CallToolResult:
        return _call(lambda: start_lab(task_dir, slots=slots, gpus=gpus, lines=lines, max_experiments=max_experiments,
                                       budget=budget, claim_timeout=claim_timeout, submit_timeout=submit_timeout),
                     brief.render_started)

    @server.tool(name="stop_lab",
                 description="Stop the running lab. Offers are withdrawn and running runs re-queued; start_lab "
                             "resumes it later with nothing lost.")
    def stop_lab_tool() -> CallToolResult:
        return _call(lambda: stop_lab(task_dir), lambda d: "the lab had already stopped.\n" if d["already_stopped"]
                     else f"stopped lab process {d['stopped']}.\n")

    @server.tool(description="Claim the next experiment to work on (the oldest open one, on `line` if given) and "
                             "get its brief: the worktree to edit, editable and protected files, run command, "
                             "metric and goal, parent/incumbent/best/baseline with CIs, this line's history with "
                             "verdicts and reasons, recent failures with log tails, and the steps to follow. Waits "
                             "up to wait_seconds for an offer.")
    def next_experiment(
        line: Annotated[int | None, Field(description="only an experiment on this research line")] = None,
        wait_seconds: Annotated[float, Field(description="how long to wait for an offer", ge=0)] = DEFAULT_WAIT_S,
    ) -> CallToolResult:
        return _call(lambda: tools.next_experiment(agent, line=line, wait_s=wait_seconds),
                     lambda d: brief.render_offer(d, "mcp"))

    @server.tool(description="Submit the experiment you claimed, after editing its worktree. labmind commits the "
                             "worktree as it is, checks the change (only editable files), runs it and judges it. "
                             "Refuses a worktree with no change or with changes labmind would reject, unless "
                             "force=true. Give abandon='reason' instead to give the experiment up.")
    def submit_experiment(
        experiment: Annotated[int, Field(description="the experiment id from next_experiment")],
        title: Annotated[str, Field(description="a short name for the idea")] = "",
        hypothesis: Annotated[str, Field(description="what should happen and why")] = "",
        rationale: Annotated[str, Field(description="the evidence or reasoning behind it")] = "",
        expected_effect: Annotated[str, Field(description="e.g. 'val_bpb -0.01'")] = "",
        family: Annotated[str, Field(description="an idea family for reports, e.g. 'lr schedule'")] = "",
        abandon: Annotated[str | None, Field(description="give the experiment up, for this reason")] = None,
        force: Annotated[bool, Field(description="submit despite the pre-submit check's objection")] = False,
    ) -> CallToolResult:
        return _call(lambda: tools.submit(experiment, agent, title=title, hypothesis=hypothesis, rationale=rationale,
                                          expected_effect=expected_effect, family=family, abandon=abandon,
                                          force=force),
                     lambda d: brief.render_submitted(d, "mcp"))

    @server.tool(description="Verdicts (improved, kept, not_improved, crashed, ...) with the reason, metric ± 95% "
                             "CI half-width and runs, p-value and integrity flags: of one experiment, waiting up to "
                             "wait_seconds for its verdict, or of your latest experiments when no experiment is "
                             "given.")
    def results(
        experiment: Annotated[int | None, Field(description="an experiment id; leave out for your latest")] = None,
        wait_seconds: Annotated[float, Field(description="how long to wait for a verdict", ge=0)] = 0.0,
        limit: Annotated[int, Field(description="how many of your latest experiments", ge=1)] = 10,
    ) -> CallToolResult:
        return _call(lambda: tools.results(agent, experiment, wait_s=wait_seconds, limit=limit),
                     brief.render_results)

    @server.tool(description="What was tried on each research line (or one line) and what happened: idea, verdict "
                             "and why, metric with CI, flags and which agent made it; plus each line's incumbent.")
    def history(
        line: Annotated[int | None, Field(description="only this line")] = None,
        limit: Annotated[int | None, Field(description="only the last N experiments per line", ge=1)] = None,
    ) -> CallToolResult:
        return _call(lambda: tools.history(line, limit), brief.render_history)

    return server
