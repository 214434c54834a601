"""The task: what to optimise, loaded from labmind.toml and/or CLI flags."""

from labmind.task.load import TaskError, load_task
from labmind.task.model import Task, parse_duration

__all__ = ["Task", "TaskError", "load_task", "parse_duration"]
