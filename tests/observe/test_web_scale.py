"""Scale: the dashboard answers correctly on a lab with 100,000 experiments (synthetic store, real schema).

How fast it answers is a benchmark, not a test: `labmind bench dashboard` (docs/dashboard.md has its figures)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from labmind.bench.dashboard import build_store, urls
from labmind.cli.main import app
from labmind.observe.web import create_app

N_EXPERIMENTS = 100_000


@pytest.fixture(scope="module")
def big_lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("scale"), N_EXPERIMENTS)


def test_every_page_answers_and_the_chart_is_sampled_but_exact_at_100k_experiments(big_lab: Path) -> None:
    client = TestClient(create_app(big_lab), base_url="http://127.0.0.1")
    status = client.get("/api/status").json()
    assert status["experiments"] == N_EXPERIMENTS
    chart = client.get("/api/chart").json()
    assert chart["sampled"] and len(chart["points"]) <= 4000 * 1.25 + len(chart["best"])
    # The running best is exact: it ends at the best improved metric in the store.
    best = min(p[1] for p in chart["points"] if p[2] == "improved")
    assert chart["best"][-1][1] == pytest.approx(best)
    assert chart["best"][-1][1] == pytest.approx(status["best"]["metric"])
    for url, _ in urls(N_EXPERIMENTS):
        response = client.get(url)
        assert response.status_code == 200 and response.content, url
    # A deep page is the one asked for (newest first: page 1,500 holds ids 25,051 down to 25,002), not page 1.
    deep_url, about = urls(N_EXPERIMENTS)[4]
    linked = {int(i) for i in re.findall(r'href="/experiments/(\d+)"', client.get(deep_url).text)}
    assert "offset 74,950" in about and set(range(25_002, 25_052)) <= linked and N_EXPERIMENTS + 1 not in linked


def test_the_dashboard_bench_times_every_url_over_http() -> None:
    out = CliRunner().invoke(app, ["bench", "dashboard", "--experiments", "2000", "--repeat", "2", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["experiments"] == 2000 and data["build_s"] > 0
    assert [f["url"] for f in data["figures"]] == [u for u, _ in urls(2000)]
    assert all(f["median_ms"] > 0 and f["max_ms"] >= f["median_ms"] and f["bytes"] > 0 and f["repeat"] == 2
               for f in data["figures"])
