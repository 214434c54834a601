"""Shared CLI plumbing: opening a lab's store read-only, printing JSON, clean error exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from labmind.paths import LabPaths
from labmind.store import Store
from labmind.terminal import printable

console = Console()
err_console = Console(stderr=True)

TaskDirArg = typer.Argument(Path("."), help="The task directory (holds labmind.toml and .labmind/).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable JSON output.")


def safe(text: str) -> str:
    """Stored text (run output, ideas, reasons) for rich: control sequences shown as escapes, markup escaped."""
    return escape(printable(text))


def fail(message: str, code: int = 1) -> NoReturn:
    # soft_wrap: a hard wrap at the console width splits paths and commands mid-word, so they
    # could not be copied from the message (and the wrap point moved with the path's length).
    err_console.print(f"[red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def read_store(task_dir: Path) -> Iterator[tuple[Store, LabPaths]]:
    paths = LabPaths(task_dir.resolve())
    if not paths.db.exists():
        fail(f"no lab in {paths.task_dir}. Start one with `labmind run {task_dir}`.")
    store = Store.open(paths.db, readonly=True)
    try:
        if store.lab() is None:
            fail(f"the lab in {paths.task_dir} was never set up. Run `labmind run {task_dir}`.")
        yield store, paths
    finally:
        store.close()


