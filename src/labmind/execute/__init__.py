"""Executing runs: slots, sandbox, scrubbed environment, process-tree kills and metric parsing."""

from labmind.execute.base import Executor, RunOutcome, RunSpec, RunStatus, Slot
from labmind.execute.local import EVAL_SEPARATOR, LocalExecutor, scrub_env
from labmind.execute.metric import ParsedMetrics, parse_log, parse_metrics
from labmind.execute.procs import kill_by_token
from labmind.execute.sandbox import Sandbox, SandboxUnavailable, resolve_sandbox
from labmind.execute.slots import detect_gpus, make_slots, plan_slots

__all__ = [
    "EVAL_SEPARATOR",
    "Executor",
    "LocalExecutor",
    "ParsedMetrics",
    "RunOutcome",
    "RunSpec",
    "RunStatus",
    "Sandbox",
    "SandboxUnavailable",
    "Slot",
    "detect_gpus",
    "kill_by_token",
    "make_slots",
    "parse_log",
    "parse_metrics",
    "plan_slots",
    "resolve_sandbox",
    "scrub_env",
]
