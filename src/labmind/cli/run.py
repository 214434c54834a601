"""`labmind run` and `labmind resume`: run the research loop on a task."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import typer

from labmind.brains.base import BrainError
from labmind.cli.common import TaskDirArg, console, err_console, fail, safe
from labmind.cli.control import start_afresh
from labmind.execute.sandbox import SandboxUnavailable
from labmind.figures import dict_figure, fmt
from labmind.lab import LabError
from labmind.lab.open import open_lab
from labmind.lab.status import lab_status
from labmind.observe.live import LiveReporter, judged_text, make_reporter
from labmind.store import LabLocked, StoreError
from labmind.task import TaskError, parse_duration
from labmind.workspace.git import GitError


def parse_gpus(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        fail(f"--gpus expects a comma-separated list of GPU indices such as 0,1,2,3, got {value!r}")


def execute(task_dir: Path, *, flags: dict[str, Any], given: dict[str, Any], gpus: str | None, slots: int | None,
            output: str, require_existing: bool, session: dict[str, Any] | None = None,
            store_slots: bool = True) -> None:
    reporter = make_reporter(output)
    gpu_list = parse_gpus(gpus)
    if store_slots:
        # Stored with the lab (resume reuses them); `labmind check` passes them for its own session only.
        given = {**given, "slots": slots, "gpus": gpu_list}
        slots, gpu_list = None, None
    try:
        opened = open_lab(task_dir, flags=flags, given=given, reporter=reporter, gpus=gpu_list,
                          slots=slots, require_existing=require_existing, session=session)
    except (TaskError, LabError, LabLocked, GitError, SandboxUnavailable, StoreError, BrainError, ValueError) as exc:
        fail(str(exc))
    lab = opened.lab
    for warning in opened.warnings:
        reporter.event("warning", warning)
    verb = "created" if opened.created else "resumed"
    reporter.event("lab", f"{verb} lab {lab.task.name} in {lab.paths.root} with {len(lab.slots)} slot(s) "
                          f"({', '.join(s.label for s in lab.slots)}), brain {lab.brain.name}, "
                          f"policy {lab.policy.name}, sandbox {lab.executor.sandbox_name}")
    error = None
    try:
        stats = asyncio.run(lab.run())
    except LabError as exc:
        error = str(exc)
        stats = lab.stats
    except Exception as exc:  # a bug in labmind: say so plainly; the store already holds all finished work
        traceback.print_exc()
        error = (f"labmind stopped on an internal error ({type(exc).__name__}: {exc}). Finished work is saved; "
                 f"continue with `labmind resume {task_dir}` and please report the traceback above.")
        stats = lab.stats
    finally:
        if isinstance(reporter, LiveReporter):
            reporter.close()
    opened.lock.release()  # so the status below says how the lab was left: stopped
    status = lab_status(opened.store, lab.paths)
    opened.close()
    summary(status, stats, len(lab.slots), output, failed=bool(error))
    if error:
        err_console.print(f"[red]error:[/] {safe(error)}", highlight=False)
    if error or lab.stopping:
        # Brain threads (an external agent, say) cannot be interrupted and would keep the process alive;
        # everything they could lose is a proposal not yet recorded, which resume makes again.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if error else 130 if lab.stop_signal == signal.SIGINT else 0)


def summary(status: dict[str, Any], stats: Any, n_slots: int, output: str, failed: bool = False) -> None:
    wall = max(stats.wall_s(), 1e-9)
    duty = stats.busy_s / (wall * max(n_slots, 1))
    if output == "json":
        import json

        print(json.dumps({"kind": "summary", "status": status, "session": {
            "wall_s": wall, "slot_duty_cycle": duty, "finished": stats.finished, "verdicts": stats.verdicts}}))
        return
    base, best = status.get("baseline"), status.get("best")
    console.print()
    console.print(f"[bold]{status['lab']}[/]: {status['experiments']} experiments, verdicts "
                  + (", ".join(f"{k} {v}" for k, v in status["verdicts"].items()) or "none"))
    if base:
        console.print(f"baseline {status['metric']['name']} {dict_figure(base, spread='sd').text()}; "
                      f"{judged_text(status)}", highlight=False)
    if best and best["confirmed"]:
        p = [f"p={fmt(best['p_value'], 3)}"] if best.get("p_value") is not None else []
        rel = f" {best['relative']:+.2%} vs baseline" if best.get("relative") is not None else ""
        console.print(f"best     {dict_figure(best, extra=p).text()}{rel}: exp {best['experiment']} "
                      f"“{safe(best['idea'])}” on branch {best['branch']}", highlight=False)
    else:
        console.print("best     no confirmed improvement over the baseline yet")
    # A lab that stopped on an error is not resumed as it is: the error says what to fix (and how to start again).
    nxt = ("`labmind status`, `labmind log`, `labmind show EXP`, then the error below" if failed else
           "`labmind status`, `labmind log`, `labmind show EXP`, `labmind resume`")
    console.print(f"session  {wall:.0f}s wall, slot duty cycle {duty:.2f}. Next: {nxt}.")


def library_setting(spec: str | None) -> str | None:
    """`--library` as stored with the lab: "off", an absolute path, or None (the user's default)."""
    if spec is None or spec == "off":
        return spec
    return str(Path(spec).expanduser().resolve())


def run(
    task_dir: Path = TaskDirArg,
    brain: str = typer.Option(None, help="knobs (default, no LLM) | anthropic:MODEL | openai:MODEL | "
                                         "openai-compatible:MODEL@URL | command:<shell command> | claude-code | "
                                         "codex | aider | agent"),
    ideas_model: str = typer.Option(None, help="LLM brain: model for ideas, reflections and the director "
                                               "(default: the --brain model)."),
    review_model: str = typer.Option(None, help="The guard's LLM auditor (can only flag), e.g. "
                                                "anthropic:claude-opus-4-6. Off by default."),
    llm_budget_usd: float = typer.Option(None, min=0.0, help="Hard cap on the lab's LLM spending, in US dollars."),
    llm_tokens_per_experiment: int = typer.Option(None, min=1, help="Hard cap on LLM tokens spent on one experiment."),
    max_repairs: int = typer.Option(None, min=0, help="Repair attempts per crashed experiment (llm brain; "
                                                      "default 2)."),
    director_every: int = typer.Option(None, min=1, help="Verdicts between the director's reviews of the "
                                                         "lines (default: 2 × active lines)."),
    max_experiments: int = typer.Option(None, min=0, help="Stop proposing after this many experiments in the lab."),
    budget: str = typer.Option(None, help="Wall-clock budget for this session, e.g. 30m or 2h."),
    gpus: str = typer.Option(None, help="GPUs to use, e.g. 0,1,2,3 (default: all that nvidia-smi reports)."),
    slots: int = typer.Option(None, min=1, help="CPU slots for CPU tasks (gpus = 0)."),
    lines: int = typer.Option(None, min=1, help="Research lines (default: one per slot)."),
    policy: str = typer.Option(None, help="Search policy: greedy (per-line ratchet) or tree (UCB over lines)."),
    sandbox: str = typer.Option(None, help="auto | bwrap | none (auto: bwrap when it works)."),
    executor: str = typer.Option(None, help="local (default: this machine) | ray (a Ray cluster; docs/ray.md)."),
    ray_address: str = typer.Option(None, help="--executor ray: the cluster, e.g. auto or ray://HOST:10001 "
                                               "(default: auto)."),
    resources: list[str] = typer.Option(None, help="--executor ray: a custom Ray resource each run needs, e.g. "
                                                   "H100=1 (repeatable)."),
    brain_network: bool = typer.Option(None, "--brain-network/--no-brain-network",
                                       help="Let a command brain use the network and your environment."),
    seed: int = typer.Option(None, min=0, max=2**31 - 1, help="Seed for the brain and the search policy."),
    edit: list[str] = typer.Option(None, help="Editable file glob (repeatable)."),
    protect: list[str] = typer.Option(None, help="Protected file glob (repeatable)."),
    command: str = typer.Option(None, help="The run command."),
    metric: str = typer.Option(None, help="The metric's name as printed by the run."),
    goal: str = typer.Option(None, help="minimize | maximize"),
    timeout: str = typer.Option(None, help="Run timeout, e.g. 10m."),
    gpus_per_run: int = typer.Option(None, min=0, max=1024, help="GPUs per run (0 = CPU task)."),
    setup: str = typer.Option(None, help="Setup command, run once before the baseline."),
    library: str = typer.Option(None, help="Insight library: a path, or off (default: $LABMIND_LIBRARY, else "
                                           "~/.local/share/labmind/library.db)."),
    plain: bool = typer.Option(False, "--plain", help="One line per event instead of the live view."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per event, then a summary object."),
    fresh: bool = typer.Option(False, "--fresh", help="Start a new lab: move the existing one to "
                                                      ".labmind/backups/ first (as `labmind reset` does)."),
) -> None:
    """Run the research loop on a task (creates the lab, or resumes it when it exists)."""
    try:
        budget_s = parse_duration(budget) if budget else None
    except ValueError as exc:
        fail(f"--budget: {exc}")
    flags = {"edit": edit, "protect": protect, "command": command, "metric": metric, "goal": goal,
             "timeout": timeout, "gpus_per_run": gpus_per_run, "setup": setup}
    given = {"brain": brain, "max_experiments": max_experiments, "budget_s": budget_s, "lines": lines,
             "policy": policy, "sandbox": sandbox, "brain_network": brain_network, "seed": seed,
             "ideas_model": ideas_model, "review_model": review_model, "llm_budget_usd": llm_budget_usd,
             "llm_tokens_per_experiment": llm_tokens_per_experiment, "max_repairs": max_repairs,
             "director_every": director_every, "executor": executor, "ray_address": ray_address,
             "ray_resources": tuple(resources) if resources else None, "library": library_setting(library)}
    output = "json" if json_out else "plain" if plain else "live"
    if fresh:
        start_afresh(task_dir, to_stderr=True)  # stdout may be JSON lines
    execute(task_dir, flags=flags, given=given, gpus=gpus, slots=slots, output=output, require_existing=False)


def resume(
    task_dir: Path = TaskDirArg,
    brain: str = typer.Option(None, help="Override the lab's brain."),
    max_experiments: int = typer.Option(None, min=0, help="Raise or lower the experiment limit."),
    budget: str = typer.Option(None, help="Wall-clock budget for this session, e.g. 30m."),
    gpus: str = typer.Option(None, help="GPUs to use, e.g. 0,1."),
    slots: int = typer.Option(None, min=1, help="CPU slots for CPU tasks."),
    sandbox: str = typer.Option(None, help="auto | bwrap | none"),
    ray_address: str = typer.Option(None, help="--executor ray: the cluster's address, when it changed."),
    llm_budget_usd: float = typer.Option(None, min=0.0, help="Raise or lower the lab's LLM spending cap (US dollars)."),
    review_model: str = typer.Option(None, help="Turn on (or change) the guard's LLM auditor."),
    library: str = typer.Option(None, help="Insight library: a path, or off (default: $LABMIND_LIBRARY, else "
                                           "~/.local/share/labmind/library.db)."),
    plain: bool = typer.Option(False, "--plain", help="One line per event."),
    json_out: bool = typer.Option(False, "--json", help="JSON lines."),
) -> None:
    """Resume a stopped or killed lab: finished work is kept, interrupted runs are re-queued once."""
    try:
        budget_s = parse_duration(budget) if budget else None
    except ValueError as exc:
        fail(f"--budget: {exc}")
    given = {"brain": brain, "max_experiments": max_experiments, "budget_s": budget_s, "sandbox": sandbox,
             "llm_budget_usd": llm_budget_usd, "review_model": review_model, "ray_address": ray_address,
             "library": library_setting(library)}
    output = "json" if json_out else "plain" if plain else "live"
    execute(task_dir, flags={}, given=given, gpus=gpus, slots=slots, output=output, require_existing=True)
