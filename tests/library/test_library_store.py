"""The library store: recording, retrieval, status, applications, and two processes writing at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labmind.library import Effect, Insight, Kind, KnobChange, Library, Provenance, Status
from labmind.library.store import contradicted


def make(key: str, *, title: str = "raise the learning rate", family: str = "training/llm", lab_dir: str = "/labs/a",
         kind: Kind = Kind.INSIGHT, body: str = "warmup then a higher LR helped",
         tags: tuple[str, ...] = ()) -> Insight:
    return Insight(key=key, kind=kind, title=title, body=body, task=lab_dir.rsplit("/", 1)[-1], family=family,
                   provenance=Provenance(lab="a", lab_dir=lab_dir, experiments=(3, 5), commit="abc"),
                   effect=Effect(0.05, 0.01, 0.09, "log", "val_bpb", "minimize", 3, 3, 0.004, 1.0, 0.95),
                   tags=tags, knobs=(KnobChange("LR", 0.001, 0.003),))


def test_recording_is_idempotent_by_key_and_round_trips_every_field(tmp_path: Path) -> None:
    with Library(tmp_path / "lib.db") as lib:
        first, new = lib.record(make("a#1"))
        again, new_again = lib.record(make("a#1", title="something else"))
        assert new and not new_again and again.id == first.id and again.title == "raise the learning rate"
        got = lib.get(first.id or 0)
    assert got.effect is not None and got.effect.low == 0.01 and got.effect.n_cand == 3
    assert got.provenance.experiments == (3, 5) and got.provenance.commit == "abc"
    assert got.knobs[0].factor == pytest.approx(3.0) and got.knobs[0].direction == "up"
    assert got.status == Status.PROPOSED and got.created_at > 0
    assert Insight.from_dict(got.to_dict()).with_(id=got.id) == got
    # Said as the judge says an effect: the metric's own change (a loss that fell), its direction and 95% CI.
    assert got.effect.text() == "val_bpb 1 → 0.95, -4.88% (better; 95% CI -8.61% to -0.995%), n=3 vs 3"


def test_search_puts_the_same_family_first_and_never_returns_retracted(tmp_path: Path) -> None:
    with Library(tmp_path / "lib.db") as lib:
        kernel = lib.record(make("k#1", title="tile the reduction in shared memory", family="kernel/reduction",
                                 body="a learning rate has nothing to do with it"))[0]
        same = lib.record(make("t#1", title="cosine schedule", body="decay to zero", family="training/llm"))[0]
        other = lib.record(make("t#2", title="learning rate warmup", family="training/vision"))[0]
        gone = lib.record(make("t#3", title="learning rate x10", family="training/llm"))[0]
        lib.set_status(gone.id or 0, Status.RETRACTED, "wrong")
        hits = lib.search("learning rate", family="training/llm")
        ids = [h.insight.id for h in hits]
        assert gone.id not in ids
        # The same family comes first even without a word in common; a related family next; then text only.
        assert ids[0] == same.id and ids[1] == other.id and ids[2] == kernel.id
        assert "same family" in hits[0].why and "related family" in hits[1].why
        # Without a family, text decides.
        assert [h.insight.id for h in lib.search("shared memory tile")] == [kernel.id]
        # Words that are FTS5 syntax are searched as words.
        assert lib.search('"NEAR( OR AND *') == []


def test_an_application_elsewhere_validates_and_repeated_misses_retract(tmp_path: Path) -> None:
    with Library(tmp_path / "lib.db") as lib:
        ins = lib.record(make("a#1"))[0]
        iid = ins.id or 0
        # In its own lab, a hit is no validation.
        assert lib.apply(iid, lab_dir="/labs/a", experiment_id=9, verdict="improved", hit=True).status == "proposed"
        assert lib.apply(iid, lab_dir="/labs/b", experiment_id=2, verdict="improved", hit=True).status == "validated"
        # Recording the same application twice counts it once.
        again = lib.apply(iid, lab_dir="/labs/b", experiment_id=2, verdict="improved", hit=True)
        assert again is not None and (again.applications, again.hits) == (2, 2)
        bad = lib.record(make("a#2", title="other"))[0]
        for n in range(4):
            got = lib.apply(bad.id or 0, lab_dir="/labs/c", experiment_id=n, verdict="not_improved", hit=False)
            assert got is not None and got.status == Status.PROPOSED
        got = lib.apply(bad.id or 0, lab_dir="/labs/c", experiment_id=4, verdict="not_improved", hit=False)
        assert got is not None and got.status == Status.RETRACTED and "0 of 5" in got.status_reason
        assert bad.id not in [h.insight.id for h in lib.search("other", family="training/llm")]
        assert lib.apply(999, lab_dir="/x", experiment_id=1, verdict="improved", hit=True) is None
    assert not contradicted(4, 0) and contradicted(5, 0) and not contradicted(5, 1) and contradicted(10, 1)


WRITER = textwrap.dedent("""
    import sys
    from labmind.library import Effect, Insight, Kind, Library, Provenance
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lib = Library.open(__import__("pathlib").Path(path))
    shared = lib.record(Insight(key="shared", kind=Kind.INSIGHT, title="shared", body="", task="t", family="f",
                                provenance=Provenance(lab="t", lab_dir="/origin", experiments=())))[0]
    for i in range(n):
        lib.record(Insight(key=f"{who}#{i}", kind=Kind.INSIGHT, title=f"{who} insight {i}", body="b", task=who,
                           family="f", provenance=Provenance(lab=who, lab_dir=f"/{who}", experiments=(i,))))
        lib.apply(shared.id, lab_dir=f"/{who}", experiment_id=i, verdict="improved", hit=True)
    lib.close()
""")


@pytest.mark.slow
def test_two_processes_write_one_library_at_once_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "lib.db"
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, str(n)], stderr=subprocess.PIPE, text=True)
             for who in ("one", "two")]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    with Library(path, readonly=True) as lib:
        rows = lib.all()
        assert len(rows) == 2 * n + 1
        shared = next(r for r in rows if r.key == "shared")
        assert (shared.applications, shared.hits) == (2 * n, 2 * n) and shared.status == Status.VALIDATED
        assert len(lib.search("insight", limit=500)) == 2 * n


def test_a_read_only_library_that_does_not_exist_says_how_insights_get_there(tmp_path: Path) -> None:
    from labmind.library import LibraryError

    with pytest.raises(LibraryError, match="recorded there by `labmind run`"):
        Library(tmp_path / "none.db", readonly=True)
