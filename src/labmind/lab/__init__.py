"""The lab: one working state of labmind on a task, and the loop that runs it.

Names are loaded on first use: a command that needs only the settings must not pull in the loop and, behind
it, the judge's scipy. Where a lab keeps its files is `labmind.paths.LabPaths`, below every part."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Lab": "loop", "LabError": "loop", "SessionStats": "loop", "LabSettings": "settings"}

__all__ = ["Lab", "LabError", "LabSettings", "SessionStats"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"labmind.lab.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'labmind.lab' has no attribute {name!r}")
