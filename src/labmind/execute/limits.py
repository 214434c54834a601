"""Per-run resource limits: what a run may use, and how the limit is enforced on this machine.

Each run (and its trusted evaluation) gets: a memory limit, a limit on processes and threads, a largest
file it may write, and a largest log. Enforcement, strongest available first (see `cgroups.py`):

- **cgroup v2** (a delegated cgroup labmind can write): `memory.max` with swap off and `memory.oom.group`,
  and `pids.max`. The kernel enforces both; the memory limit counts everything the run's processes use,
  their `/tmp` and `/dev/shm` files included.
- **cgroup v1** (writable `memory` and `pids` hierarchies, as root on older hosts): the same limits.
- **otherwise**, rlimits and a watchdog: RLIMIT_NPROC for an ordinary user (it counts the user's other
  processes too, so it is set to those plus the limit; the kernel ignores it for root; a run it stops is
  named as over its process limit when it crashed reporting a refused fork or thread), and every half
  second labmind adds up the proportional memory (PSS, anonymous and shared) and the threads of the run's
  processes and kills the run when one is over. A run can exceed its memory limit between two checks.

Always: RLIMIT_FSIZE (the largest file a run may write; the kernel stops it with SIGXFSZ), no core dumps,
and `/tmp` and `/dev/shm` inside the sandbox bounded by the memory limit. The log is capped by labmind
itself, which reads the run's output through a pipe. RLIMIT_AS is never used: GPU frameworks reserve far
more address space than they use.

A run that breaks a limit is killed with its whole tree and ends `crashed`; its log's last line says
which limit (`labmind: killed: ...`), and so does its verdict's reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from labmind.task.fields import show_size
from labmind.task.model import RunSection

#: `[run] memory = "auto"` gives each slot this share of the machine's memory (what labmind itself may use).
AUTO_MEMORY_SHARE = 0.9
MIN_AUTO_MEMORY = 256 << 20


@dataclass(frozen=True)
class RunLimits:
    """Limits of one run; None means unlimited."""

    memory: int | None = None  # bytes
    processes: int | None = None  # processes and threads together
    file_size: int | None = None  # bytes, per file
    log_size: int | None = None  # bytes of output kept

    def describe(self) -> str:
        parts = [
            f"memory {show_size(self.memory) if self.memory else 'unlimited'}",
            f"processes {self.processes or 'unlimited'}",
            f"file size {show_size(self.file_size) if self.file_size else 'unlimited'}",
            f"log {show_size(self.log_size) if self.log_size else 'unlimited'}",
        ]
        return ", ".join(parts)


#: How the line that names a limit labmind killed a run for begins (the log's last line then).
KILLED = "labmind: killed:"


def physical_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def resolve_limits(run: RunSection, slots: int, available: int | None = None) -> RunLimits:
    """The task's `[run]` limits for one of `slots` concurrent runs. `available`: the memory labmind may use
    (its own cgroup's limit, or the machine's); "auto" memory shares it between the slots."""
    memory = run.memory
    if memory == "auto":
        pool = available if available is not None else physical_memory()
        memory = max(MIN_AUTO_MEMORY, int(pool * AUTO_MEMORY_SHARE / max(1, slots)))
    return RunLimits(memory=memory, processes=run.processes, file_size=run.file_size, log_size=run.log_size)


#: Names of the limits as the task file spells them, for messages.
SETTING = {"memory": "[run] memory", "processes": "[run] processes", "file_size": "[run] file_size",
           "log_size": "[run] log_size"}


def breach_message(kind: str, limits: RunLimits) -> str:
    """The log line (and the verdict's reason) for a run killed over a limit."""
    if kind == "memory":
        what = f"used more than its memory limit of {show_size(limits.memory or 0)}"
    elif kind == "processes":
        what = f"tried to run more than {limits.processes} processes and threads"
    elif kind == "file_size":
        what = f"wrote a file larger than the file size limit of {show_size(limits.file_size or 0)}"
    else:
        what = f"printed more than the log limit of {show_size(limits.log_size or 0)}"
    return f"{KILLED} the run {what} ({SETTING[kind]})"
