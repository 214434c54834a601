"""`labmind report` and `labmind export`: read-only views of a lab for people (report) and tools (export)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from labmind.cli.common import TaskDirArg, console, err_console, fail, read_store
from labmind.lab.campaign import CampaignError, campaign_markdown, campaign_status, is_campaign
from labmind.observe.export import ExportError, log_mlflow
from labmind.observe.export import export as export_rows


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class What(StrEnum):
    experiments = "experiments"
    runs = "runs"


def report(task_dir: Path = TaskDirArg,
           out: Path = typer.Option(None, "--out", help="Folder to write into [default: <task>/.labmind/report/].")
           ) -> None:
    """Write report.md, report.html (self-contained) and PNG plots of the lab; for a campaign directory,
    campaign.md with every task's scores."""
    if is_campaign(task_dir):
        try:
            text = campaign_markdown(campaign_status(task_dir))
        except CampaignError as exc:
            fail(str(exc))
        folder = (out or task_dir / "report").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "campaign.md").write_text(text)
        console.print(f"campaign report written to {folder / 'campaign.md'}; per-task reports: "
                      f"`labmind report {task_dir}/TASK`")
        return
    # Imported here: matplotlib takes a while to load, and no other verb needs it.
    from labmind.observe.report import write_report
    from labmind.observe.report_data import collect

    with read_store(task_dir) as (store, paths):
        data = collect(store, paths)
    folder = (out or paths.root / "report").resolve()
    files = write_report(data, folder)
    console.print(f"report of {data.lab} ({len(data.experiments)} experiment(s)) written to {folder}")
    for key in ("markdown", "html"):
        console.print(f"  {files[key]}")


def export(task_dir: Path = TaskDirArg,
           fmt: Format = typer.Option(Format.jsonl, "--format", help="jsonl: one JSON object a line; csv: header row."),
           what: What = typer.Option(What.experiments, "--what", help="Export experiments or runs."),
           out: str = typer.Option("-", "--out", help="File to write, or - for stdout."),
           mlflow: str = typer.Option(None, "--mlflow", metavar="URI",
                                      help="Log each experiment as an MLflow run to this tracking URI instead, "
                                           "e.g. sqlite:///mlflow.db; `default` is a SQLite database in the lab "
                                           "(.labmind/mlflow.db). Needs: pip install 'labmind[mlflow]'."),
           mlflow_experiment: str = typer.Option(None, "--mlflow-experiment",
                                                 help="MLflow experiment name [default: labmind/<lab>].")) -> None:
    """Export experiments or runs as JSONL or CSV, or log them to MLflow."""
    with read_store(task_dir) as (store, paths):
        try:
            if mlflow == "default":
                # MLflow's file store (file:./mlruns) is in maintenance mode; a SQLite database is what it
                # recommends, and inside .labmind/ it stays out of the task's git tree.
                mlflow = f"sqlite:///{paths.root / 'mlflow.db'}"
            if mlflow:
                try:
                    n = log_mlflow(store, mlflow, mlflow_experiment)
                except ExportError:
                    raise
                except Exception as exc:  # MLflow's own errors (bad URI, store in maintenance mode, ...)
                    fail(f"MLflow export to {mlflow} failed: {type(exc).__name__}: {str(exc)[:500]}. "
                         "A database URI such as sqlite:///mlflow.db works with the mlflow-skinny client.")
                err_console.print(f"logged {n} experiment(s) to MLflow at {mlflow}; browse them with "
                                  f"`mlflow ui --backend-store-uri {mlflow}`", highlight=False, soft_wrap=True)
                return
            if out == "-":
                n = export_rows(store, what=what.value, fmt=fmt.value, out=sys.stdout)
            else:
                path = Path(out)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("w", encoding="utf-8", newline="") as fh:
                    n = export_rows(store, what=what.value, fmt=fmt.value, out=fh)
                err_console.print(f"wrote {n} {what.value} to {path}")
        except ExportError as exc:
            fail(str(exc))
