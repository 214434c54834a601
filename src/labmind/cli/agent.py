"""`labmind agent ...`: drive an agent-driven lab from a shell (Claude Code, Codex, Cursor or a person).

Thin over labmind.agent_tools: each verb calls one AgentTools operation and prints it as text or --json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from labmind.agent_tools import brief
from labmind.agent_tools.launch import start_lab
from labmind.agent_tools.ops import AgentTools, ToolsError, default_agent
from labmind.cli.common import JsonOpt, TaskDirArg, fail, print_json

agent_app = typer.Typer(
    help="Let an interactive agent drive the lab: it claims experiments, edits their worktrees and submits; "
         "labmind runs and judges them. See docs/agent.md.",
    no_args_is_help=True,
)

AgentOpt = typer.Option(None, "--agent", help="Your agent name (default: $LABMIND_AGENT, else 'agent'). Give "
                                              "each agent its own name when several share a lab.")


def _emit(data: dict[str, Any], text: str, json_out: bool) -> None:
    if json_out:
        print_json(data)
    else:
        typer.echo(text, nl=False)


@agent_app.command()
def start(
    task_dir: Path = TaskDirArg,
    slots: int = typer.Option(None, min=1, help="CPU slots for CPU tasks (gpus = 0)."),
    gpus: str = typer.Option(None, help="GPUs to use, e.g. 0,1 (default: all)."),
    lines: int = typer.Option(None, min=1, help="Research lines (default: one per slot); one agent per line works."),
    max_experiments: int = typer.Option(None, min=0, help="Stop offering work after this many experiments."),
    budget: str = typer.Option(None, help="Wall-clock budget for this session, e.g. 2h."),
    policy: str = typer.Option(None, help="greedy | tree"),
    sandbox: str = typer.Option(None, help="auto | bwrap | none (for the experiment runs)."),
    seed: int = typer.Option(None, min=0, max=2**31 - 1, help="Seed for the search policy."),
    claim_timeout: str = typer.Option(None, help="Withdraw an offer nobody claims within this time, e.g. 30m "
                                                 "(default: none, wait for agents)."),
    submit_timeout: str = typer.Option(None, help="Withdraw a claimed experiment not submitted within this time "
                                                  "(default: 1h; 'none' for no limit)."),
    json_out: bool = JsonOpt,
) -> None:
    """Start the lab in the background with the agent brain; prints its pid and log."""
    try:
        data = start_lab(task_dir, slots=slots, gpus=gpus, lines=lines, max_experiments=max_experiments,
                         budget=budget, policy=policy, sandbox=sandbox, seed=seed, claim_timeout=claim_timeout,
                         submit_timeout=submit_timeout)
    except ToolsError as exc:
        fail(str(exc))
    _emit(data, brief.render_started(data), json_out)


@agent_app.command("next")
def next_(
    task_dir: Path = TaskDirArg,
    line: int = typer.Option(None, help="Only an experiment on this line."),
    agent: str = AgentOpt,
    wait: float = typer.Option(0.0, min=0.0, help="Seconds to wait for an offer when none is open."),
    json_out: bool = JsonOpt,
) -> None:
    """Claim one open experiment and print its brief: worktree, files, goal, state of the lab, what to do."""
    try:
        data = AgentTools(task_dir).next_experiment(agent or default_agent(), line=line, wait_s=wait)
    except ToolsError as exc:
        fail(str(exc))
    _emit(data, brief.render_offer(data, "cli"), json_out)


@agent_app.command()
def submit(
    experiment: int = typer.Argument(..., help="The experiment you claimed."),
    task_dir: Path = TaskDirArg,
    title: str = typer.Option("", help="A short name for the idea."),
    hypothesis: str = typer.Option("", help="What you expect to happen and why."),
    rationale: str = typer.Option("", help="The evidence or reasoning behind it."),
    expected_effect: str = typer.Option("", help="E.g. 'val_bpb -0.01'."),
    family: str = typer.Option("", help="An idea family for reports, e.g. 'lr schedule'."),
    abandon: str = typer.Option(None, help="Give the experiment up, for this reason (its edits are discarded)."),
    token: str = typer.Option(None, help="The claim token `labmind agent next` printed."),
    agent: str = AgentOpt,
    force: bool = typer.Option(False, "--force", help="Submit even when the worktree has no change or touches "
                                                       "files labmind will reject."),
    json_out: bool = JsonOpt,
) -> None:
    """Submit a claimed experiment: labmind commits the worktree as it is, then checks, runs and judges it."""
    try:
        data = AgentTools(task_dir).submit(experiment, agent or default_agent(), title=title, hypothesis=hypothesis,
                                      rationale=rationale, expected_effect=expected_effect, family=family,
                                      abandon=abandon, token=token, force=force)
    except ToolsError as exc:
        fail(str(exc))
    _emit(data, brief.render_submitted(data, "cli"), json_out)


@agent_app.command()
def results(
    experiment: str = typer.Argument(None, help="An experiment id (default: your latest experiments). A "
                                                "directory here is taken as TASK_DIR."),
    task_dir: Path = typer.Argument(None, help="The task directory (default: .)."),
    wait: float = typer.Option(0.0, min=0.0, help="Seconds to wait for the experiment's verdict."),
    limit: int = typer.Option(10, min=1, help="How many of your latest experiments."),
    agent: str = AgentOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Verdicts with the reason, metric ± 95% CI (and runs) and flags: of one experiment, or of your latest ones."""
    exp_id: int | None = None
    if experiment is not None and experiment.isdigit():
        exp_id = int(experiment)
    elif experiment is not None:
        if task_dir is not None:
            fail(f"{experiment!r} is not an experiment id; give a number, e.g. `labmind agent results 7 {task_dir}`.")
        task_dir = Path(experiment)
    try:
        data = AgentTools(task_dir or Path(".")).results(agent or default_agent(), exp_id, wait_s=wait, limit=limit)
    except ToolsError as exc:
        fail(str(exc))
    _emit(data, brief.render_results(data), json_out)


@agent_app.command()
def history(
    task_dir: Path = TaskDirArg,
    line: int = typer.Option(None, help="Only this line."),
    limit: int = typer.Option(None, min=1, help="Only the last N experiments of each line."),
    json_out: bool = JsonOpt,
) -> None:
    """What was tried on each line and what happened: idea, verdict and why, metric, flags, agent."""
    try:
        data = AgentTools(task_dir).history(line, limit)
    except ToolsError as exc:
        fail(str(exc))
    _emit(data, brief.render_history(data), json_out)


@agent_app.command()
def status(task_dir: Path = TaskDirArg, json_out: bool = JsonOpt) -> None:
    """`labmind status` plus the lab's brain and the offers: open, claimed (by whom, until when), submitted."""
    try:
        data = AgentTools(task_dir).status()
    except ToolsError as exc:
        fail(str(exc))
    _emit(data, brief.render_status(data), json_out)
