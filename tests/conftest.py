"""Suite-wide settings. CI sets LABMIND_REQUIRE_BWRAP=1 (and LABMIND_REQUIRE_RAY=1) so a missing sandbox (or
Ray) fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from llm_server import llm_server_url  # noqa: F401  (the local LLM server fixture, for every test directory)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LABMIND_REQUIRE_BWRAP") == "1" and shutil.which("bwrap") is None:
        raise pytest.UsageError("LABMIND_REQUIRE_BWRAP=1 but bubblewrap (bwrap) is not installed")
    if os.environ.get("LABMIND_REQUIRE_RAY") == "1" and any(item.get_closest_marker("ray") for item in items):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise pytest.UsageError("LABMIND_REQUIRE_RAY=1 but Ray is not installed (make ray installs it)") from None


@pytest.fixture(autouse=True, scope="session")
def _no_user_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Before any fixture of a narrower scope (a module's lab, the red-team suite's runs of `labmind` as a
    subprocess): a library of the session's own. The per-test fixture below gives each test its own on top."""
    old = os.environ.get("LABMIND_LIBRARY")
    os.environ["LABMIND_LIBRARY"] = str(tmp_path_factory.mktemp("session-library") / "library.db")
    yield
    if old is None:
        os.environ.pop("LABMIND_LIBRARY", None)
    else:
        os.environ["LABMIND_LIBRARY"] = old


@pytest.fixture(autouse=True)
def _private_library(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labs in tests write insights to a library of their own, never to the user's ~/.local/share one."""
    monkeypatch.setenv("LABMIND_LIBRARY", str(tmp_path_factory.mktemp("library") / "library.db"))
