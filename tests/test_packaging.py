"""pyproject.toml in the form current setuptools reads without deprecation warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_license_is_an_spdx_expression_with_its_file() -> None:
    data = tomllib.loads(PYPROJECT.read_text())
    # A `{ text = ... }` table makes setuptools warn on every install (deprecated by PEP 639).
    assert data["project"]["license"] == "Apache-2.0"
    assert data["project"]["license-files"] == ["LICENSE"]
    assert (PYPROJECT.parent / "LICENSE").is_file()
    setuptools = next(r for r in data["build-system"]["requires"] if r.startswith("setuptools"))
    major = int(re.search(r">=(\d+)", setuptools).group(1))  # type: ignore[union-attr]
    assert major >= 77  # the first setuptools that reads a license expression
