"""Route and API tests of `labmind ui` on the store of a real tiny-lm lab run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labmind.observe.web import create_app
from labmind.observe.web.api import event_stream
from labmind.paths import LabPaths
from labmind.store import Store


@pytest.fixture(scope="module")
def client(tiny_lm_lab: Path) -> TestClient:
    return TestClient(create_app(tiny_lm_lab), base_url="http://127.0.0.1:8321")


@pytest.fixture(scope="module")
def store(tiny_lm_lab: Path) -> Store:
    return Store.open(LabPaths(tiny_lm_lab).db, readonly=True)


def test_status_matches_store(client: TestClient, store: Store) -> None:
    data = client.get("/api/status").json()
    rows = store.experiments()
    assert data["lab"] == "tiny-lm"
    assert data["experiments"] == store.count_candidates() == sum(r.kind == "candidate" for r in rows)
    assert data["verdicts"] == store.counts_by_verdict()
    improved = [r for r in rows if r.verdict == "improved"]
    best = min(improved, key=lambda r: r.metric)  # tiny-lm minimises val_bpb
    assert data["best"]["experiment"] == best.id
    assert data["best"]["metric"] == pytest.approx(best.metric)
    baseline = next(r for r in rows if r.kind == "baseline")
    assert data["baseline"]["metric"] == pytest.approx(baseline.metric)
    assert data["slot_hours"] == pytest.approx(store.slot_seconds() / 3600, abs=1e-4)
    assert [line["incumbent"] for line in data["lines"]] == [line.incumbent_id for line in store.lines()]


def test_overview_page_shows_counts_and_best(client: TestClient, store: Store) -> None:
    html = client.get("/").text
    assert 'id="chart"' in html and "/static/vendor/uplot/uPlot.iife.min.js" in html
    for verdict, n in store.counts_by_verdict().items():
        assert f'data-verdict="{verdict}">{n}<' in html
    assert f'data-count="{store.count_candidates()}"' in html
    # Spreads are labelled as everywhere else: the baseline's sd, the best's 95% CI half-width, with the runs.
    rows = store.experiments()
    base = next(r for r in rows if r.kind == "baseline")
    best = min((r for r in rows if r.verdict == "improved"), key=lambda r: r.metric)
    half = (best.ci_high - best.ci_low) / 2
    assert (f'<span class="num">{base.metric:.6g}</span> <span class="ci">± {base.metric_sd:.3g}</span> '
            f'<span class="spread-label">(sd, n={base.n_runs})</span>') in html
    assert (f'<span class="num">{best.metric:.6g}</span> <span class="ci">± {half:.3g}</span> '
            f'<span class="spread-label">(95% CI, n={best.n_runs})</span>') in html
    assert "minimum effect: any verified gain (min_effect auto) · log scale" in html
    data = client.get("/api/status").json()
    assert (data["min_effect_text"], data["scale"]) == ("any verified gain (min_effect auto)", "log")


def test_chart_series(client: TestClient, store: Store) -> None:
    data = client.get("/api/chart").json()
    measured = [r for r in store.experiments() if r.kind == "candidate" and r.metric is not None]
    assert [p[0] for p in data["points"]] == [r.id for r in measured]
    assert {p[2] for p in data["points"]} <= {r.verdict for r in measured}
    assert data["sampled"] is False
    # The running best steps down (val_bpb is minimised) and ends at the lab's best.
    steps = [s[1] for s in data["best"]]
    assert steps == sorted(steps, reverse=True)
    assert steps[-1] == pytest.approx(client.get("/api/status").json()["best"]["metric"])


def test_experiments_pagination_and_filters(client: TestClient, store: Store) -> None:
    everything = client.get("/api/experiments", params={"limit": 1000, "order": "asc"}).json()
    assert [e["id"] for e in everything["experiments"]] == [r.id for r in store.experiments()]
    page = client.get("/api/experiments", params={"limit": 3, "offset": 2}).json()
    assert page["total"] == len(store.experiments())
    assert [e["id"] for e in page["experiments"]] == [r.id for r in store.experiments(newest_first=True)][2:5]
    improved = client.get("/api/experiments", params={"verdict": "improved"}).json()
    assert improved["total"] == store.counts_by_verdict()["improved"]
    assert all(e["verdict"] == "improved" for e in improved["experiments"])
    line = client.get("/api/experiments", params={"line": 1}).json()
    assert {e["line"] for e in line["experiments"]} == {1}
    html = client.get("/experiments", params={"verdict": "improved"}).text
    assert html.count('class="badge v-improved"') == improved["total"]
    partial = client.get("/experiments", headers={"HX-Request": "true"}).text
    assert "<html" not in partial and "<table" in partial


def test_experiment_detail_matches_store(client: TestClient, store: Store) -> None:
    exp = next(r for r in store.experiments() if r.verdict == "improved")
    data = client.get(f"/api/experiments/{exp.id}").json()
    assert data["diff"] == exp.diff and data["reason"] == exp.reason
    assert data["ci"] == [exp.ci_low, exp.ci_high] and data["p_value"] == exp.p_value
    runs = store.runs_of(exp.id)
    assert [(r["id"], r["seed"], r["slot"], r["metric"]) for r in data["runs"]] == [
        (r.id, r.seed, r.slot, r.metric) for r in runs]
    html = client.get(f"/experiments/{exp.id}").text
    assert exp.reason in unescape(html)
    assert '<span class="dl add">' in html and '<span class="dl del">' in html
    for r in runs:
        assert f"/api/runs/{r.id}/log" in html
    log = client.get(f"/api/runs/{runs[0].id}/log")
    assert log.status_code == 200 and log.text == Path(runs[0].log_path).read_text()


def test_tree_lists_every_experiment_under_its_parent(client: TestClient, store: Store) -> None:
    data = client.get("/api/tree").json()
    rows = {r.id: r for r in store.experiments()}
    assert sorted(n["id"] for n in data["nodes"]) == sorted(rows)
    seen: set[int] = set()
    for node in data["nodes"]:  # depth-first: a parent always comes before its children
        assert rows[node["id"]].parent_id is None or rows[node["id"]].parent_id in seen
        seen.add(node["id"])
    incumbents = {line.incumbent_id for line in store.lines()}
    assert {n["id"] for n in data["nodes"] if n["incumbent"]} == incumbents
    assert "★" in client.get("/tree").text


def test_unknown_things_are_404(client: TestClient) -> None:
    assert client.get("/api/experiments/99999").status_code == 404
    assert client.get("/experiments/99999").status_code == 404
    assert client.get("/api/runs/99999/log").status_code == 404
    assert client.get("/partials/nope").status_code == 404


def test_log_download_refuses_paths_outside_the_runs_dir(tiny_lm_lab: Path, tmp_path: Path) -> None:
    # A copy of the lab whose store points run logs outside .labmind/runs: a tampered row or a symlink.
    lab = tmp_path / "lab"
    shutil.copytree(tiny_lm_lab / ".labmind", lab / ".labmind",
                    ignore=shutil.ignore_patterns("worktrees", "lock"))
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    link = lab / ".labmind" / "runs" / "exp-1" / "sneaky.log"
    os.symlink(secret, link)
    conn = sqlite3.connect(lab / ".labmind" / "lab.db")
    conn.execute("UPDATE runs SET log_path = ? WHERE id = 1", (str(secret),))
    conn.execute("UPDATE runs SET log_path = ? WHERE id = 2", ("../../../secret.txt",))
    conn.execute("UPDATE runs SET log_path = ? WHERE id = 3", (str(link),))
    conn.execute("UPDATE runs SET log_path = ? WHERE id = 4", (str(lab / ".labmind" / "runs" / ".." / "lab.db"),))
    # A legitimate log of the copy still downloads.
    original = Path(conn.execute("SELECT log_path FROM runs WHERE id = 5").fetchone()[0])
    inside = lab / ".labmind" / original.relative_to(tiny_lm_lab / ".labmind")
    conn.execute("UPDATE runs SET log_path = ? WHERE id = 5", (str(inside),))
    conn.commit()
    conn.close()
    client = TestClient(create_app(lab), base_url="http://127.0.0.1")
    for run_id in (1, 2, 3, 4):
        r = client.get(f"/api/runs/{run_id}/log")
        assert r.status_code == 404 and "do not serve me" not in r.text
    assert client.get("/api/runs/5/log").text == inside.read_text()
    # URL-level traversal never reaches a file either.
    assert client.get("/api/runs/..%2F..%2Fsecret.txt/log").status_code in (404, 422)
    assert client.get("/static/..%2F..%2F..%2Fpyproject.toml").status_code == 404


def test_token_required_when_configured(tiny_lm_lab: Path) -> None:
    client = TestClient(create_app(tiny_lm_lab, token="s3cret"))
    assert client.get("/api/status").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/static/labmind.css").status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # ?token= moves into an HttpOnly cookie and is stripped from the URL; the cookie then suffices.
    first = client.get("/?token=s3cret", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert client.get("/api/status").status_code == 200
    assert TestClient(create_app(tiny_lm_lab), base_url="http://localhost").get("/api/status").status_code == 200


def test_event_stream_yields_new_events(tiny_lm_lab: Path, store: Store) -> None:
    events = store.events(limit=10_000)

    class Request:  # the stream only asks whether the client left
        async def is_disconnected(self) -> bool:
            return False

    async def collect() -> list[Any]:
        return [sse async for sse in event_stream(Request(), LabPaths(tiny_lm_lab), events[-3].id, 0.01,
                                                  max_seconds=0.05)]

    sent = asyncio.run(collect())
    assert sent[0].retry == 2000 and sent[0].encode() == b"retry: 2000\r\n\r\n"
    chunks = [e for e in sent if e.id is not None]
    assert [json.loads(e.data)["id"] for e in chunks] == [e.id for e in events[-2:]]
    assert all(e.event == "lab" and e.id == str(json.loads(e.data)["id"]) for e in chunks)
    wire = chunks[0].encode().decode()
    assert wire.startswith(f"id: {events[-2].id}\r\nevent: lab\r\ndata: {{")
    assert client_events_match(tiny_lm_lab, events[-2].id)


def client_events_match(task: Path, after_id: int) -> bool:
    client = TestClient(create_app(task), base_url="http://127.0.0.1")
    data = client.get("/api/events", params={"after_id": after_id}).json()
    return len(data) == 1 and data[0]["id"] > after_id


def test_foreign_host_is_refused_without_a_token(tiny_lm_lab: Path) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 must not read the lab."""
    app = create_app(tiny_lm_lab)
    for base in ("http://127.0.0.1:8321", "http://localhost", "http://localhost:8321", "http://[::1]:8321"):
        assert TestClient(app, base_url=base).get("/api/status").status_code == 200, base
    client = TestClient(app, base_url="http://127.0.0.1:8321")
    for host in ("evil.example", "evil.example:8321", "127.0.0.1.evil.example", "localhost:80:80", "[::1]x", ""):
        r = client.get("/api/status", headers={"host": host})
        assert r.status_code == 400, host
        assert r.text.startswith("labmind ui: unexpected Host header")
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    # The bound host is accepted as well; with a token the token is what counts, whatever the Host.
    assert TestClient(create_app(tiny_lm_lab, host="10.1.2.3"), base_url="http://10.1.2.3:80").get(
        "/api/status").status_code == 200
    tokened = TestClient(create_app(tiny_lm_lab, token="s3cret"), base_url="http://box.lan:8321")
    assert tokened.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_read_only_uri_quotes_odd_task_directory_names(tiny_lm_lab: Path, tmp_path: Path) -> None:
    from labmind.store import queries

    odd = tmp_path / "lab #1 ?x=y %41"
    shutil.copytree(tiny_lm_lab, odd, symlinks=True)
    with queries.connect(LabPaths(odd).db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] > 0
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("CREATE TABLE nope (x)")
    client = TestClient(create_app(odd), base_url="http://127.0.0.1")
    assert client.get("/api/status").status_code == 200
