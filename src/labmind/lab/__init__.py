"""The lab: one working state of labmind on a task, and the loop that runs it."""

from labmind.lab.loop import Lab, LabError, SessionStats
from labmind.lab.paths import LabPaths
from labmind.lab.settings import LabSettings

__all__ = ["Lab", "LabError", "LabPaths", "LabSettings", "SessionStats"]
