"""The dashboard in a real headless Chromium: the chart renders every point, pages click through, and
events from a running lab arrive live without a reload. Screenshots go to <repo>/.labmind-screenshots/."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.toy import LABMIND, make_toy, wait_for  # tests/ is on sys.path (rootdir import mode)

from labmind.observe.web.thread import serve_in_thread
from labmind.paths import LabPaths
from labmind.store import Store

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / ".labmind-screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("LABMIND_REQUIRE_BROWSER") == "1":
            pytest.fail("LABMIND_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing (make chromium installs it)")
        pytest.skip("/usr/bin/chromium is missing (install the Debian package `chromium`: make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"\nscreenshot: {path}")
    return path


def test_overview_chart_and_experiment_page(browser, tiny_lm_lab: Path) -> None:
    store = Store.open(LabPaths(tiny_lm_lab).db, readonly=True)
    rows = store.experiments()
    measured = sum(1 for r in rows if r.kind == "candidate" and r.metric is not None)
    best = max((r for r in rows if r.verdict == "improved"), key=lambda r: -(r.metric or 0))
    store.close()
    errors: list[str] = []
    with serve_in_thread(tiny_lm_lab) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('chart').dataset.points !== '0'")
        assert page.locator("#chart").get_attribute("data-points") == str(measured)
        assert page.evaluate("window.labmindChart.points") == measured
        assert page.locator("#chart canvas").count() == 1
        assert page.locator("#n-experiments").inner_text() == str(sum(r.kind == "candidate" for r in rows))
        page.wait_for_timeout(300)  # let uPlot finish its first paint before the screenshot
        shot(page, "overview")
        # tiny-lm's val_bpb is positive: a log scale is offered, and the chart redraws every point on it.
        assert page.evaluate("window.labmindChart.logY") is False
        page.click("#chart-log")
        page.wait_for_function("window.labmindChart.logY === true")
        assert page.evaluate("window.labmindChart.points") == measured
        assert page.locator("#chart canvas").count() == 1

        page.click(f"#best-sub a[href='/experiments/{best.id}']")
        page.wait_for_url(f"{url}/experiments/{best.id}")
        assert page.locator("h1").inner_text().strip() == best.idea.title
        assert page.locator(".diff .add").count() > 0
        assert page.locator("table.runs tbody tr").count() == best.n_runs + 1  # screen + confirmations
        shot(page, "experiment")

        # The list filters in place with htmx: the URL changes, the page does not reload.
        page.goto(url + "/experiments")
        page.evaluate("window.__marker = 1")
        page.select_option("select[name=verdict]", "improved")
        page.wait_for_url("**verdict=improved**")
        page.wait_for_function("document.querySelectorAll('#exp-table tbody tr').length > 0 && "
                               "[...document.querySelectorAll('#exp-table .badge')].every(b => "
                               "b.classList.contains('v-improved'))")
        assert page.evaluate("window.__marker") == 1
        page.goto(url + "/tree")
        assert page.locator(".tnode").count() == len(rows)
        shot(page, "tree")
    assert not errors, errors


def test_live_update_while_a_lab_runs(browser, tmp_path: Path) -> None:
    task = make_toy(tmp_path / "toy", sleep=1.0)
    db = LabPaths(task).db
    proc = subprocess.Popen([*LABMIND, "run", str(task), "--plain", "--max-experiments", "6", "--slots", "1",
                             "--sandbox", "none"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def lab_exists() -> bool:
            if not db.exists():
                return False
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                return conn.execute("SELECT COUNT(*) FROM lab").fetchone()[0] == 1

        wait_for(lab_exists)
        with serve_in_thread(task, poll_seconds=0.2) as url:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/")
            page.evaluate("window.__marker = 1")  # survives only if the page never reloads
            first = int(page.locator("#n-experiments").get_attribute("data-count"))
            # Events arrive over SSE, then the counters and the chart refresh from the API.
            page.wait_for_function("Number(document.getElementById('live-count').dataset.count) > 0", timeout=60_000)
            page.wait_for_function(f"Number(document.getElementById('n-experiments').dataset.count) > {first}",
                                   timeout=90_000)
            page.wait_for_function("document.getElementById('chart').dataset.points !== '0'", timeout=90_000)
            assert page.evaluate("window.__marker") == 1
            assert page.locator("#events li.new").count() > 0
            shot(page, "overview-live")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_token_link_opens_the_dashboard(browser, tiny_lm_lab: Path) -> None:
    with serve_in_thread(tiny_lm_lab, token="tok-123") as url:
        context = browser.new_context()
        page = context.new_page()
        assert page.goto(url + "/").status == 401
        page.goto(url + "/?token=tok-123")
        assert page.url == url + "/"  # the token left the address bar for an HttpOnly cookie
        page.wait_for_function("document.getElementById('chart').dataset.points !== '0'")
        page.wait_for_function("document.getElementById('live-dot').classList.contains('live')")  # SSE authorised
        assert page.evaluate("document.cookie") == ""  # not readable from scripts
        context.close()
