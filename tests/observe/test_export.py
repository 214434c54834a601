"""`labmind export` on a real tiny-lm lab: rows, columns and values must round-trip from the store."""

from __future__ import annotations

import csv
import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labmind.cli.main import app
from labmind.findings import findings_json
from labmind.observe import export as export_mod
from labmind.observe.export import EXPERIMENT_COLUMNS, RUN_COLUMNS, ExportError, log_mlflow
from labmind.paths import LabPaths
from labmind.store import Store

runner = CliRunner()


@pytest.fixture()
def store(tiny_lm_lab: Path):
    s = Store.open(LabPaths(tiny_lm_lab).db, readonly=True)
    yield s
    s.close()


def invoke(*args: str) -> Any:
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    return result


def test_jsonl_experiments_round_trip(tiny_lm_lab: Path, store: Store, tmp_path: Path) -> None:
    out = tmp_path / "exp.jsonl"
    invoke(str(tiny_lm_lab), "--format", "jsonl", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    exps = store.experiments()
    assert len(rows) == len(exps)
    for row, exp in zip(rows, exps, strict=True):
        assert list(row) == EXPERIMENT_COLUMNS
        assert (row["id"], row["kind"], row["parent"], row["verdict"]) == (exp.id, exp.kind, exp.parent_id,
                                                                            exp.verdict)
        assert row["metric"] == exp.metric and row["p_value"] == exp.p_value and row["ci_low"] == exp.ci_low
        assert row["idea_params"] == exp.idea.params and row["flags"] == findings_json(exp.flags)
        assert row["changed_files"] == exp.changed_files and row["commit"] == exp.commit_sha


def test_csv_experiments_header_and_rows(tiny_lm_lab: Path, store: Store) -> None:
    text = invoke(str(tiny_lm_lab), "--format", "csv", "--out", "-").stdout
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert header[:len(EXPERIMENT_COLUMNS)] == EXPERIMENT_COLUMNS
    # tiny-lm is a knobs lab: one sortable column per knob after the fixed ones.
    params = header[len(EXPERIMENT_COLUMNS):]
    assert params and all(p.startswith("param.") for p in params)
    exps = store.experiments()
    assert len(rows) - 1 == len(exps)
    by_id = {e.id: e for e in exps}
    for raw in rows[1:]:
        rec = dict(zip(header, raw, strict=True))
        exp = by_id[int(rec["id"])]
        for p in params:
            value = exp.idea.params.get(p.removeprefix("param."))
            assert rec[p] == ("" if value is None else str(value))
        assert (float(rec["metric"]) if rec["metric"] else None) == exp.metric
        assert json.loads(rec["idea_params"]) == exp.idea.params  # nested values are JSON in a cell
        assert rec["verdict"] == (exp.verdict or "")


def test_runs_export(tiny_lm_lab: Path, store: Store) -> None:
    text = invoke(str(tiny_lm_lab), "--what", "runs").stdout  # jsonl to stdout by default
    rows = [json.loads(line) for line in text.splitlines()]
    runs = store.runs()
    assert sorted(r["id"] for r in rows) == [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    for row in rows:
        run = by_id[row["id"]]
        assert list(row) == RUN_COLUMNS
        assert (row["experiment"], row["purpose"], row["seed"], row["metric"]) == (
            run.experiment_id, run.purpose, run.seed, run.metric)
        assert row["secondary"] == run.secondary and row["log_path"] == run.log_path
        assert row["seconds"] == pytest.approx(run.seconds)
    csv_rows = list(csv.reader(io.StringIO(invoke(str(tiny_lm_lab), "--what", "runs", "--format", "csv").stdout)))
    assert csv_rows[0] == RUN_COLUMNS and len(csv_rows) == len(runs) + 1


def test_missing_lab_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 1
    assert "no lab in" in result.output


def test_mlflow_missing_extra_is_a_clear_error(tiny_lm_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    result = runner.invoke(app, ["export", str(tiny_lm_lab), "--mlflow", "file:/nowhere"])
    assert result.exit_code == 1
    assert "pip install 'labmind[mlflow]'" in result.output
    with pytest.raises(ExportError, match=r"labmind\[mlflow\]"):
        export_mod.import_mlflow()


def test_mlflow_logging_calls(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a recording stand-in for mlflow: one run per experiment, with params, metrics, tags and the diff."""
    calls: list[tuple[str, Any]] = []
    fake = types.ModuleType("mlflow")

    class Run:
        def __enter__(self) -> Run:
            calls.append(("start", None))
            return self

        def __exit__(self, *exc: object) -> None:
            calls.append(("end", None))

    fake.set_tracking_uri = lambda uri: calls.append(("uri", uri))
    fake.set_experiment = lambda name: calls.append(("experiment", name))
    fake.start_run = lambda run_name: Run()
    fake.log_params = lambda p: calls.append(("params", p))
    fake.log_metrics = lambda m: calls.append(("metrics", m))
    fake.set_tags = lambda t: calls.append(("tags", t))
    fake.log_text = lambda text, path: calls.append(("artifact", (path, text)))
    monkeypatch.setitem(sys.modules, "mlflow", fake)

    n = log_mlflow(store, "file:/tmp/mlruns")
    exps = store.experiments()
    assert n == len(exps)
    assert calls[:2] == [("uri", "file:/tmp/mlruns"), ("experiment", f"labmind/{store.lab().name}")]
    assert sum(1 for c in calls if c[0] == "start") == len(exps)
    metrics = [c[1] for c in calls if c[0] == "metrics"]
    assert [m.get("metric") for m in metrics] == [e.metric for e in exps]
    tags = [c[1] for c in calls if c[0] == "tags"]
    assert [t["verdict"] for t in tags] == [e.verdict or "baseline" for e in exps]
    params = [c[1] for c in calls if c[0] == "params"]
    assert all("_brain" not in p for p in params)
    artifacts = [c[1] for c in calls if c[0] == "artifact"]
    assert len(artifacts) == sum(1 for e in exps if e.diff)
    assert all(path == "diff.patch" for path, _ in artifacts)


def test_mlflow_export_for_real(tiny_lm_lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a real MLflow tracking store (the mlflow-skinny client on a SQLite backend)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow keeps artifacts under ./mlruns by default
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(app, ["export", str(tiny_lm_lab), "--mlflow", uri])
    assert result.exit_code == 0, result.output
    store = Store.open(tiny_lm_lab / ".labmind" / "lab.db", readonly=True)
    rows = store.experiments()
    store.close()
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("labmind/tiny-lm")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(runs) == len(rows)
    by_verdict = {r.data.tags.get("verdict") for r in runs}
    assert "improved" in by_verdict
    improved = next(r for r in rows if r.verdict == "improved")
    logged = next(r for r in runs if r.info.run_name.startswith(f"{improved.id}:"))
    assert logged.data.metrics["metric"] == pytest.approx(improved.metric)
    assert "diff.patch" in [a.path for a in client.list_artifacts(logged.info.run_id)]


@pytest.mark.slow
def test_mlflow_default_is_a_sqlite_database_in_the_lab(tiny_lm_lab: Path) -> None:
    """The real mlflow client: `--mlflow default` logs to .labmind/mlflow.db (the file store is deprecated)."""
    mlflow = pytest.importorskip("mlflow")
    result = runner.invoke(app, ["export", str(tiny_lm_lab), "--mlflow", "default"])
    assert result.exit_code == 0, result.output
    db = tiny_lm_lab / ".labmind" / "mlflow.db"
    assert db.is_file() and f"mlflow ui --backend-store-uri sqlite:///{db}" in result.output
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("labmind/tiny-lm")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    store = Store.open(tiny_lm_lab / ".labmind" / "lab.db", readonly=True)
    try:
        assert len(runs) == len(store.experiments())
    finally:
        store.close()
