"""The library in real labs: insights from verified gains with provenance, a knobs warm start in a second lab
of the same family, its application recorded, and the `labmind library` verbs."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from lab.toy import labmind, log, make_toy  # tests/ is on sys.path (rootdir import mode)

from labmind.findings import Finding
from labmind.library import Insight, Kind, Library, Provenance, Status
from labmind.library.record import LabIdentity, Librarian
from labmind.model import Idea
from labmind.store import Store


def knobs_lab(task: Path, library: Path, experiments: int) -> list[dict]:
    labmind("run", str(task), "--max-experiments", str(experiments), "--slots", "1", "--lines", "1", "--plain",
            "--sandbox", "none", "--library", str(library))
    return [r for r in log(task) if r["kind"] == "candidate"]


def cli_json(*args: str) -> object:
    return json.loads(labmind(*args, "--json").stdout)


@pytest.fixture(scope="module")
def first_lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("first")
    library = root / "lib.db"
    task = make_toy(root / "task")
    knobs_lab(task, library, 8)
    return task, library


@pytest.mark.slow
def test_a_verified_gain_becomes_an_insight_with_provenance(first_lab: tuple[Path, Path]) -> None:
    task, library = first_lab
    rows = {r["id"]: r for r in log(task)}
    improved = [r for r in rows.values() if r["verdict"] == "improved"]
    assert improved, "the toy task's knobs lab verifies at least one gain"
    listed = cli_json("library", "list", "--library", str(library))
    assert isinstance(listed, list)
    assert {i["key"] for i in listed} == {f"{task}#exp{r['id']}" for r in improved}
    for ins in listed:
        exp = rows[int(ins["key"].rsplit("#exp", 1)[1])]
        assert ins["kind"] == "insight" and ins["status"] == "proposed" and ins["family"] == "toy"
        assert ins["provenance"]["lab_dir"] == str(task) and ins["provenance"]["commit"] == exp["commit"]
        assert ins["provenance"]["experiments"][-1] == exp["id"]
        verify = exp["judgement"]["verify"]
        assert ins["effect"]["value"] == pytest.approx(verify["effect"]) and ins["effect"]["n_cand"] == verify["n_cand"]
        effect = ins["effect"]
        assert effect["low"] is not None and effect["low"] <= effect["value"] <= effect["high"]
        assert ins["knobs"] and all(k["before"] != k["after"] for k in ins["knobs"])
        assert "LR" in {k["name"] for k in ins["knobs"]} or "WIDTH" in {k["name"] for k in ins["knobs"]}
        assert "train.py" in ins["diff_excerpt"]
    # No kept-only, not_improved or other experiment gave one.
    assert len(listed) == len(improved)
    shown = labmind("library", "show", str(listed[0]["id"]), "--library", str(library)).stdout
    assert f"from      lab toy at {task}" in shown and "knob      " in shown


@pytest.mark.slow
def test_a_second_lab_of_the_family_warm_starts_from_it_and_records_the_outcome(
        first_lab: tuple[Path, Path], tmp_path: Path) -> None:
    _, library = first_lab
    lib_copy = tmp_path / "lib.db"
    shutil.copy(library, lib_copy)
    before = {i["id"]: i for i in cli_json("library", "list", "--library", str(lib_copy))}  # type: ignore[union-attr]
    task = make_toy(tmp_path / "second")
    [first, *rest] = knobs_lab(task, lib_copy, 2)
    applies = first["idea"]["params"].get("applies")
    assert applies and applies[0] in before, "the first proposal applies a library insight"
    source = before[applies[0]]
    # One move at a time, the largest first: the same starting point here, so the insight's value as is.
    moved = first["idea"]["params"]["_warm_knob"]
    move = next(k for k in source["knobs"] if k["name"] == moved)
    assert abs(math.log(move["factor"])) == max(abs(math.log(k["factor"])) for k in source["knobs"])
    assert first["idea"]["params"][moved] == pytest.approx(move["after"], rel=1e-3)
    assert first["idea"]["params"]["_parent"] == {"LR": 0.001, "WIDTH": 8}
    assert f"insight #{applies[0]}" in first["idea"]["rationale"]
    after = {i["id"]: i for i in cli_json("library", "list", "--library", str(lib_copy))}  # type: ignore[union-attr]
    applied = after[applies[0]]
    shown = cli_json("library", "show", str(applies[0]), "--library", str(lib_copy))
    apps = shown["application_log"]  # type: ignore[index]
    appliers = {r["id"]: r for r in (first, *rest) if applies[0] in (r["idea"]["params"].get("applies") or [])}
    # Every settled application is an experiment of this lab that said it applied the insight.
    assert apps and all(a["lab_dir"] == str(task) and a["experiment_id"] in appliers for a in apps)
    assert applied["applications"] == len(apps) and applied["hits"] == sum(a["outcome"] == "hit" for a in apps)
    for a in apps:
        exp = appliers[a["experiment_id"]]
        assert (a["outcome"] == "hit") == (exp["verdict"] in ("improved", "kept"))  # kept: verified in a stack
    if applied["hits"]:
        assert applied["status"] == "validated"


@pytest.mark.slow
def test_export_import_retract_and_off(first_lab: tuple[Path, Path], tmp_path: Path) -> None:
    _, library = first_lab
    dump = tmp_path / "insights.jsonl"
    labmind("library", "export", "--library", str(library), "--out", str(dump))
    lines = dump.read_text().splitlines()
    assert lines and all(json.loads(x)["kind"] == "insight" for x in lines)
    other = tmp_path / "other.db"
    assert cli_json("library", "import", str(dump), "--library", str(other)) == {
        "read": len(lines), "added": len(lines), "skipped": 0, "library": str(other)}
    assert cli_json("library", "import", str(dump), "--library", str(other))["added"] == 0  # type: ignore[index]
    first_id = json.loads(json.dumps(cli_json("library", "list", "--library", str(other))))[0]["id"]
    labmind("library", "retract", str(first_id), "--reason", "measured on a broken evaluator", "--library", str(other))
    assert first_id not in [h["id"] for h in cli_json("library", "search", "LR WIDTH loss", "--family", "toy",
                                                     "--library", str(other))]  # type: ignore[union-attr]
    shown = cli_json("library", "show", str(first_id), "--library", str(other))
    assert shown["status"] == "retracted" and "broken evaluator" in shown["status_reason"]  # type: ignore[index]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n{\"kind\": \"insight\"}\n")
    proc = labmind("library", "import", str(bad), "--library", str(other), check=False)
    assert proc.returncode == 1 and "line 2" in proc.stderr and "missing field 'provenance'" in proc.stderr
    # --library off: a lab records nothing and offers nothing.
    task = make_toy(tmp_path / "off")
    env_lib = Path(os.environ["LABMIND_LIBRARY"])
    labmind("run", str(task), "--max-experiments", "2", "--slots", "1", "--plain", "--sandbox", "none",
            "--library", "off")
    assert not env_lib.exists()


@pytest.mark.slow
def test_unconfirmed_flagged_and_rejected_experiments_never_become_insights_and_dead_ends_do(
        first_lab: tuple[Path, Path], tmp_path: Path) -> None:
    task, _ = first_lab
    store = Store.open(task / ".labmind" / "lab.db", readonly=True)
    try:
        rows = {r.id: r for r in store.experiments()}
    finally:
        store.close()
    improved = next(r for r in rows.values() if r.verdict == "improved")
    who = LabIdentity(task="toy", lab_dir=str(tmp_path / "lab"), family="toy", tags=(), metric="loss", goal="minimize")
    with Library(tmp_path / "lib.db") as lib:
        librarian = Librarian(lib, who)
        for verdict in ("kept", "flagged", "rejected", "inconclusive", "not_improved", "no_change"):
            assert librarian.on_verdict(replace(improved, verdict=verdict), rows) == []
        assert librarian.on_verdict(replace(improved, flags=[Finding("metric_repeated", evidence="x")]), rows) == []
        assert lib.all() == []
        # A family of LLM-style ideas failing four times is a dead end, recorded once; a kept try prevents it.
        tries = {}
        for i, verdict in enumerate(("not_improved", "crashed", "not_improved", "inconclusive"), start=100):
            tries[i] = replace(improved, id=i, verdict=verdict, idea=Idea(title=f"Add dropout p={i / 1000}"),
                               reason=f"reason {i}", flags=[])
        everything = dict(rows)
        got = []
        for i in sorted(tries):  # as a lab sees them: one verdict at a time
            everything[i] = tries[i]
            got.append(librarian.on_verdict(tries[i], everything))
        assert [len(g) for g in got] == [0, 0, 0, 1]
        dead = got[-1][0]
        assert dead.kind == Kind.DEAD_END and dead.title.startswith("dead end: add dropout (4 tries")
        assert dead.evidence == {"not_improved": 2, "crashed": 1, "inconclusive": 1}
        assert dead.provenance.experiments == (100, 101, 102, 103) and dead.status == Status.PROPOSED
        assert librarian.on_verdict(tries[103], everything) == []  # once
        kept = {**everything, 104: replace(tries[100], id=104, verdict="kept", idea=Idea(title="Add dropout later"))}
        assert librarian.dead_end("add dropout", kept) is None
        # A step that applied an insight and was verified as part of a later head's stack counts as a hit.
        source = lib.record(Insight(key="src", kind=Kind.INSIGHT, title="t", body="", task="o", family="toy",
                                    provenance=Provenance(lab="o", lab_dir="/o", experiments=(1,))))[0]
        anchor = int(improved.judgement["verify"]["anchor"])
        step = replace(improved, id=200, verdict="kept", parent_id=anchor, flags=[],
                       idea=Idea(title="warm start", params={"applies": [source.id]}))
        head = replace(improved, id=201, parent_id=200, flags=[])
        librarian.on_verdict(head, {**rows, 200: step, 201: head})
        [app] = lib.applications_of(source.id or 0)
        assert (app["experiment_id"], app["outcome"]) == (200, "hit") and "stack" in app["verdict"]
        assert lib.get(source.id or 0).status == Status.VALIDATED  # confirmed in another lab


@pytest.mark.slow
def test_two_labs_running_at_once_share_one_library(tmp_path: Path) -> None:
    import sqlite3
    import subprocess

    from lab.toy import LABMIND

    library = tmp_path / "lib.db"
    tasks = [make_toy(tmp_path / name) for name in ("one", "two")]
    procs = [subprocess.Popen([*LABMIND, "run", str(t), "--max-experiments", "8", "--slots", "2", "--plain",
                               "--sandbox", "none", "--library", str(library)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for t in tasks]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert "could not record" not in out and "without the insight library" not in err
    with Library(library, readonly=True) as lib:
        insights = lib.all()
    for task in tasks:
        improved = {r["id"] for r in log(task) if r["verdict"] == "improved"}
        assert improved
        assert {int(i.key.rsplit("#exp", 1)[1]) for i in insights if i.provenance.lab_dir == str(task)} == improved
    conn = sqlite3.connect(library)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
