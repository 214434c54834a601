"""`[run] compile_cache` names variables only: labmind sets their values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labmind.task import Task


def _task(cache: list[str]) -> Task:
    return Task.model_validate({"task": {"name": "t", "editable": ["a.py"]},
                                "run": {"command": "x", "compile_cache": cache},
                                "metric": {"name": "loss", "goal": "minimize"}})


def test_compile_cache_takes_variable_names() -> None:
    assert _task(["TRITON_CACHE_DIR"]).run.compile_cache == ["TRITON_CACHE_DIR"]
    with pytest.raises(ValidationError, match="give the variable's name only"):
        _task(["TRITON_CACHE_DIR=/tmp/x"])
    with pytest.raises(ValidationError):
        _task(["not a name"])
