"""`labmind export`: experiments or runs as JSONL or CSV, and optional MLflow logging.

Rows are read from the store in pages and written as they come, so exporting a lab of 100,000 experiments never
holds them all (or one huge string) in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, TextIO

from labmind.findings import findings_json
from labmind.model import ExperimentKind
from labmind.store import ExperimentRow, RunRow, Store, queries
from labmind.store.records import FLAT_COLUMNS, experiment_json, flat

PAGE = 1000

EXPERIMENT_COLUMNS = FLAT_COLUMNS
RUN_COLUMNS = [
    "id", "experiment", "purpose", "seed", "slot", "status", "outcome", "metric", "self_reported", "secondary",
    "flags", "exit_code", "started_at", "ended_at", "seconds", "sandbox", "log_path", "requeued_from",
]
#: Columns holding lists or dicts: native in JSONL, JSON text in a CSV cell.
JSON_COLUMNS = {"flags", "idea_params", "changed_files", "secondary"}


class ExportError(Exception):
    pass


def experiment_record(exp: ExperimentRow) -> dict[str, Any]:
    """The experiment's one record (`labmind.store.records`) as a table row."""
    return flat(experiment_json(exp))


def run_record(run: RunRow) -> dict[str, Any]:
    return {
        "id": run.id, "experiment": run.experiment_id, "purpose": run.purpose, "seed": run.seed, "slot": run.slot,
        "status": run.status, "outcome": run.outcome, "metric": run.metric, "self_reported": run.self_reported,
        "secondary": run.secondary, "flags": findings_json(run.flags), "exit_code": run.exit_code,
        "started_at": run.started_at,
        "ended_at": run.ended_at, "seconds": run.seconds if run.ended_at is not None else None,
        "sandbox": run.sandbox, "log_path": run.log_path, "requeued_from": run.requeued_from,
    }


def iter_experiments(store: Store) -> Iterator[ExperimentRow]:
    after = 0
    while page := queries.experiments_after(store.connection, after, PAGE):
        yield from page
        after = page[-1].id


def iter_runs(store: Store) -> Iterator[RunRow]:
    # Runs page through their experiments (runs_of is indexed), so memory stays bounded by one page.
    for exp in iter_experiments(store):
        yield from store.runs_of(exp.id)


#: CSV columns of the ideas' parameters (a knobs lab's knob values), one per name: `param.LEARNING_RATE`.
PARAM_PREFIX = "param."


def param_names(store: Store) -> list[str]:
    """Every idea parameter name in the lab (labmind's own `_` ones left out), in one paged pass."""
    names: set[str] = set()
    for exp in iter_experiments(store):
        names |= {str(k) for k in exp.idea.params if not str(k).startswith("_") and k != "family"}
    return sorted(names)


def records(store: Store, what: str, *, params: bool = False) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """Columns and rows; `params`: one column per idea parameter too (CSV, where idea_params is a JSON cell)."""
    if what == "experiments":
        if not params:
            return EXPERIMENT_COLUMNS, (experiment_record(e) for e in iter_experiments(store))
        names = param_names(store)
        columns = EXPERIMENT_COLUMNS + [PARAM_PREFIX + n for n in names]
        return columns, ({**experiment_record(e), **{PARAM_PREFIX + n: e.idea.params.get(n) for n in names}}
                         for e in iter_experiments(store))
    if what == "runs":
        return RUN_COLUMNS, (run_record(r) for r in iter_runs(store))
    raise ExportError(f"cannot export {what!r}: choose experiments or runs")


def write_jsonl(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def _cell(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value  # csv writes None as "" anyway; explicit for readers of this code


def write_csv(columns: list[str], rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow([_cell(c, row[c]) for c in columns])
        n += 1
    return n


def export(store: Store, *, what: str, fmt: str, out: TextIO) -> int:
    """Write every experiment or run of the lab to `out`; return how many rows were written."""
    columns, rows = records(store, what, params=fmt == "csv")
    if fmt == "jsonl":
        return write_jsonl(rows, out)
    if fmt == "csv":
        return write_csv(columns, rows, out)
    raise ExportError(f"unknown format {fmt!r}: choose jsonl or csv")


# -------------------------------------------------------------------------------------------- MLflow

MLFLOW_MISSING = ("MLflow export needs the optional mlflow extra, which is not installed. "
                  "Install it with: pip install 'labmind[mlflow]'")


def import_mlflow() -> Any:
    """mlflow is an optional, heavy dependency: import it only when asked to log."""
    try:
        import mlflow
    except ImportError as exc:
        raise ExportError(MLFLOW_MISSING) from exc
    return mlflow


def mlflow_params(exp: ExperimentRow) -> dict[str, str]:
    # MLflow params are strings of bounded length; internal keys like `_brain` become a tag instead.
    return {str(k): str(v)[:500] for k, v in exp.idea.params.items() if not str(k).startswith("_")}


def mlflow_metrics(exp: ExperimentRow) -> dict[str, float]:
    values = {"metric": exp.metric, "sd": exp.metric_sd, "p_value": exp.p_value, "ci_low": exp.ci_low,
              "ci_high": exp.ci_high, "n_runs": float(exp.n_runs), "slot_seconds": exp.slot_seconds}
    return {k: float(v) for k, v in values.items() if v is not None}


def mlflow_tags(exp: ExperimentRow, lab: str) -> dict[str, str]:
    return {"labmind.lab": lab, "labmind.experiment": str(exp.id), "labmind.kind": exp.kind,
            "verdict": exp.verdict or ("baseline" if exp.kind == ExperimentKind.BASELINE else exp.status),
            "line": str(exp.line_id or ""), "parent": str(exp.parent_id or ""), "brain": exp.brain,
            "commit": exp.commit_sha or "", "flags": ",".join(f.rule for f in exp.flags)}


def log_mlflow(store: Store, uri: str, experiment_name: str | None = None) -> int:
    """Log every experiment of the lab as one MLflow run; return how many were logged.

    Each call logs afresh (MLflow runs are append-only); use a new experiment name to keep exports apart."""
    mlflow = import_mlflow()
    lab = store.lab()
    name = lab.name if lab else "lab"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_name or f"labmind/{name}")
    n = 0
    for exp in iter_experiments(store):
        with mlflow.start_run(run_name=f"{exp.id}: {exp.idea.title[:80]}"):
            mlflow.log_params(mlflow_params(exp))
            mlflow.log_metrics(mlflow_metrics(exp))
            mlflow.set_tags(mlflow_tags(exp, name))
            if exp.diff:
                mlflow.log_text(exp.diff, "diff.patch")
        n += 1
    return n
