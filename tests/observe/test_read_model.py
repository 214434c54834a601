"""One read model: the CLI, the dashboard, export and the agent verbs show an experiment with the same keys and
values, agree on the lab's status and on "best" (on the store of a real tiny-lm lab run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labmind.agent_tools.records import experiment_record as agent_record
from labmind.lab.status import lab_status
from labmind.lab.views import best_experiment
from labmind.observe.export import experiment_record as export_record
from labmind.observe.web import create_app
from labmind.paths import LabPaths
from labmind.store import Store, queries
from labmind.store.records import FLAT_COLUMNS, experiment_json
from labmind.task import Task

#: The keys every experiment carries, wherever it is shown (README: one experiment, one shape).
RECORD_KEYS = {"id", "kind", "line", "parent", "status", "verdict", "meaning", "reason", "error", "metric", "sd", "ci",
               "n_runs", "p_value", "flags", "near_miss", "idea", "brain", "commit", "slot_seconds", "created_at",
               "finished_at"}
#: The figure of an experiment, equal in every view.
FIGURE = ("id", "kind", "line", "parent", "verdict", "metric", "sd", "ci", "n_runs", "p_value", "flags",
          "slot_seconds")


def labmind(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labmind.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def store(tiny_lm_lab: Path) -> Store:
    return Store.open(LabPaths(tiny_lm_lab).db, readonly=True)


def test_an_experiment_has_one_shape_in_cli_dashboard_agent_and_export(tiny_lm_lab: Path, store: Store) -> None:
    exp = next(r for r in store.experiments() if r.verdict == "improved")
    rows = {r.id: r for r in store.experiments()}
    shown = json.loads(labmind("show", str(exp.id), str(tiny_lm_lab), "--json").stdout)
    logged = {e["id"]: e for e in json.loads(labmind("log", str(tiny_lm_lab), "--json").stdout)}[exp.id]
    client = TestClient(create_app(tiny_lm_lab), base_url="http://127.0.0.1")
    detail = client.get(f"/api/experiments/{exp.id}").json()
    listed = {e["id"]: e for e in client.get("/api/experiments", params={"limit": 1000}).json()["experiments"]}[exp.id]
    agent = agent_record(exp, rows)
    for view in (shown, logged, detail, listed, agent):
        assert set(view) >= RECORD_KEYS, sorted(RECORD_KEYS - set(view))
        assert {k: view[k] for k in FIGURE} == {
            "id": exp.id, "kind": exp.kind, "line": exp.line_id, "parent": exp.parent_id, "verdict": exp.verdict,
            "metric": exp.metric, "sd": exp.metric_sd, "ci": [exp.ci_low, exp.ci_high], "n_runs": exp.n_runs,
            "p_value": exp.p_value, "flags": exp.flags, "slot_seconds": exp.slot_seconds}
        assert view["idea"]["title"] == exp.idea.title
    assert shown["idea"] == exp.idea.to_dict() and listed["idea"] == {"title": exp.idea.title}
    assert exp.slot_seconds > 0  # the run time of its runs, named as users see it
    # Export is the same record as table columns.
    flat = export_record(exp)
    assert list(flat) == FLAT_COLUMNS
    record = experiment_json(exp)
    assert (flat["ci_low"], flat["ci_high"]) == tuple(record["ci"]) == (exp.ci_low, exp.ci_high)
    assert {k: flat[k] for k in ("metric", "sd", "n_runs", "p_value", "slot_seconds")} == {
        k: record[k] for k in ("metric", "sd", "n_runs", "p_value", "slot_seconds")}


def test_status_is_one_object_for_cli_and_dashboard(tiny_lm_lab: Path, store: Store) -> None:
    cli = json.loads(labmind("status", str(tiny_lm_lab), "--json").stdout)
    web = TestClient(create_app(tiny_lm_lab), base_url="http://127.0.0.1").get("/api/status").json()
    assert cli == lab_status(store, LabPaths(tiny_lm_lab))
    for volatile in ("running", "progress"):
        cli.pop(volatile), web.pop(volatile)
    assert web == cli


def test_best_has_one_definition(tiny_lm_lab: Path, store: Store) -> None:
    lab = store.lab()
    assert lab is not None
    task = Task.model_validate_json(lab.task_json)
    python_best = best_experiment(store.experiments(), task)
    sql_best = queries.best(store.connection, task.sign)
    assert python_best is not None and sql_best is not None and python_best.verdict == "improved"
    assert sql_best["id"] == python_best.id
    assert lab_status(store, LabPaths(tiny_lm_lab))["best"]["experiment"] == python_best.id
