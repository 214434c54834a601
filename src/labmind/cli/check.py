"""`labmind check`: validate the task, run the baseline, print its noise."""

from __future__ import annotations

from pathlib import Path

import typer

from labmind.cli.common import TaskDirArg
from labmind.cli.run import execute


def check(
    task_dir: Path = TaskDirArg,
    gpus: str = typer.Option(None, help="GPUs to use, e.g. 0,1."),
    slots: int = typer.Option(None, min=1, help="CPU slots for CPU tasks."),
    sandbox: str = typer.Option(None, help="auto | bwrap | none"),
    plain: bool = typer.Option(False, "--plain"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Validate the task and measure the baseline's noise (no experiments are proposed)."""
    output = "json" if json_out else "plain" if plain else "live"
    # "No experiments" holds for this session only: a later `labmind run` proposes as usual.
    execute(task_dir, flags={}, given={"sandbox": sandbox}, gpus=gpus, slots=slots, output=output,
            require_existing=False, session={"max_experiments": 0}, store_slots=False)
