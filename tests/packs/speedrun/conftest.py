"""One task packed per module from the stand-in upstream and a small local corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from .srkit import pack, write_corpus


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for name in ("numpy", "tiktoken", "rustbpe", "torch"):
        pytest.importorskip(name, reason=f"packing needs {name}: pip install 'labmind[nanochat]'")
    base = tmp_path_factory.mktemp("speedrun")
    corpus = write_corpus(base / "stories")
    result = pack(f"local:{corpus}", base / "task", base / "data", "--any-commit", "--target", "4.0",
                  "--iterations", "6", "--extension", "1", "--confirm-seeds", "4", "--val-tokens", "2048")
    assert result.returncode == 0, result.stdout + result.stderr
    return base / "task"
