"""The dashboard's library pages, over two real labs that share a library: the list (this lab's insights
first), search, an insight's page with provenance and applications, and the same in a real Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lab.toy import labmind, make_toy  # tests/ is on sys.path (rootdir import mode)
from observe.test_web_browser import browser, shot  # noqa: F401  (the browser fixture)

from labmind.library import Library
from labmind.observe.web import create_app
from labmind.observe.web.thread import serve_in_thread


@pytest.fixture(scope="module")
def two_labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    root = tmp_path_factory.mktemp("web-library")
    library = root / "lib.db"
    first, second = make_toy(root / "first"), make_toy(root / "second")
    for task, n in ((first, 8), (second, 3)):
        labmind("run", str(task), "--max-experiments", str(n), "--slots", "1", "--lines", "1", "--plain",
                "--sandbox", "none", "--library", str(library))
    yield first, second, library
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_library_pages_show_insights_provenance_and_applications(two_labs: tuple[Path, Path, Path]) -> None:
    first, second, library = two_labs
    with Library(library, readonly=True) as lib:
        insights = lib.all()
    mine = [i for i in insights if i.provenance.lab_dir == str(second)]
    theirs = [i for i in insights if i.provenance.lab_dir == str(first)]
    assert theirs, "the first lab recorded insights"
    client = TestClient(create_app(second), base_url="http://127.0.0.1:8321")
    page = client.get("/library")
    assert page.status_code == 200 and 'href="/library"' in page.text
    order = [int(chunk.split('"', 1)[0]) for chunk in page.text.split('data-insight="')[1:]]
    assert sorted(order) == sorted(i.id for i in insights)
    assert order[:len(mine)] == sorted((i.id for i in mine), reverse=True)  # this lab's first
    applied = [i for i in theirs if i.applications]
    assert applied, "the second lab warm-started from the first lab's insights"
    assert 'id="applied"' in page.text and f'href="/library/{applied[0].id}"' in page.text
    detail = client.get(f"/library/{applied[0].id}")
    assert detail.status_code == 200 and str(first) in detail.text and 'id="applications"' in detail.text
    assert str(second) in detail.text  # the application's lab
    found = client.get("/library", params={"q": "WIDTH LR"})
    assert found.status_code == 200 and "same family" in found.text
    assert client.get("/library/9999").status_code == 404


@pytest.mark.slow
@pytest.mark.browser
def test_library_page_in_a_browser(browser, two_labs: tuple[Path, Path, Path]) -> None:  # noqa: F811
    _, second, library = two_labs
    with Library(library, readonly=True) as lib:
        first_id = min(i.id or 0 for i in lib.all())
    with serve_in_thread(second) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.click("nav >> text=Library")
        page.wait_for_selector("#insights")
        assert page.locator("#insights tbody tr").count() >= 1
        shot(page, "library")
        page.fill("input[name=q]", "LR")
        page.click("button:has-text('search')")
        page.wait_for_url("**/library?q=LR")
        page.click(f"a[href='/library/{first_id}']")
        page.wait_for_selector("#provenance")
        assert page.locator("#insight-title").inner_text().strip() != ""
        assert "lab toy" in page.locator("#provenance").inner_text().replace("\n", " ")
        shot(page, "insight")
        page.close()
