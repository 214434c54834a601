"""The suite never touches the user's own insight library, not even from fixtures wider than one test (the
red-team suite runs its labs in a module-scoped fixture, before any per-test setting applies)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labmind.library.store import default_path


@pytest.fixture(scope="module")
def library_seen_by_a_module_fixture() -> str | None:
    return os.environ.get("LABMIND_LIBRARY")


def test_a_module_fixture_sees_a_private_library(library_seen_by_a_module_fixture: str | None,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    seen = library_seen_by_a_module_fixture
    assert seen is not None
    assert Path(seen).is_relative_to(tmp_path_factory.getbasetemp())
    assert Path(seen) != Path.home() / ".local" / "share" / "labmind" / "library.db"
    assert default_path() != Path.home() / ".local" / "share" / "labmind" / "library.db"
