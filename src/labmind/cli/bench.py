"""`labmind bench scheduler`."""

from __future__ import annotations

import typer
from rich.table import Table

from labmind.cli.common import console, fail, print_json

bench_app = typer.Typer(help="Benchmarks that ship with labmind.", no_args_is_help=True)


@bench_app.command("scheduler")
def scheduler(
    slots: int = typer.Option(4, help="Slots (S)."),
    run_s: float = typer.Option(2.0, "--run", help="Seconds per run (R): 60 s scaled down."),
    brain_s: float = typer.Option(None, "--brain", help="Seconds per proposal (L); default R/2."),
    experiments: int = typer.Option(40, help="Experiments per mode."),
    sandbox: str = typer.Option("none", help="Sandbox for the simulated runs (none measures scheduling only)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Slot duty cycle and experiments/hour: labmind's scheduler vs a sequential propose-then-run loop."""
    from labmind.bench.scheduler import run_bench

    if slots < 1:
        fail("--slots must be at least 1")
    results = run_bench(slots=slots, run_s=run_s, brain_s=run_s / 2 if brain_s is None else brain_s,
                        experiments=experiments, sandbox=sandbox)
    if json_out:
        print_json([r.__dict__ for r in results])
        return
    table = Table("mode", "S", "R (s)", "L (s)", "experiments", "window (s)", "slot duty cycle", "experiments/hour",
                  header_style="bold")
    for r in results:
        table.add_row(r.mode, str(r.slots), f"{r.run_s:g}", f"{r.brain_s:g}", str(r.experiments), f"{r.window_s:.1f}",
                      f"{r.duty_cycle:.3f}", f"{r.experiments_per_hour:.0f}")
    console.print(table)
