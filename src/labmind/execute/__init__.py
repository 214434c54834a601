"""Executing runs: slots, sandbox, scrubbed environment, process-tree kills and metric parsing."""

from labmind.execute.base import Change, Executor, RunOutcome, RunRequest, RunSpec, RunStatus, Slot
from labmind.execute.local import LocalExecutor
from labmind.execute.materialise import Checkouts
from labmind.execute.metric import ParsedMetrics, parse_log, parse_metrics
from labmind.execute.prepared import EVAL_SEPARATOR, PreparedRunner, scrub_env
from labmind.execute.procs import kill_by_token
from labmind.execute.sandbox import Sandbox, SandboxUnavailable, resolve_sandbox
from labmind.execute.slots import detect_gpus, make_slots, plan_slots

__all__ = [
    "EVAL_SEPARATOR",
    "Change",
    "Checkouts",
    "Executor",
    "LocalExecutor",
    "ParsedMetrics",
    "PreparedRunner",
    "RunOutcome",
    "RunRequest",
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
