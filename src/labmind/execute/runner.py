"""Run one (sandboxed) command line under a run's limits and report how it ended.

The command starts through `launch.py` (cgroups joined, rlimits set) in its own session. Its output comes
through a pipe into the run's log, at most `log_size` bytes of it. It ends by exiting, at the timeout (its
tree is terminated), or over a limit (its tree is killed at once): memory and processes are the kernel's
verdict when the run has a cgroup and the watchdog's otherwise; the log limit is the copy loop's; a file
over `file_size` shows as SIGXFSZ in the exit status. Whatever is left of the run afterwards is killed:
its process group, every process with its token and, with a cgroup, everything in the cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from labmind.execute.cgroups import Cgroups, RunCgroup, launcher_argv
from labmind.execute.limits import RunLimits, breach_message
from labmind.execute.procs import kill_now, reap_leftovers, signal_group, terminate_tree
from labmind.execute.watchdog import user_tasks, watch

_CHUNK = 1 << 16
#: After the run has ended, how long its output may still take to drain (a process that escaped every
#: kill could hold the pipe open forever).
DRAIN_S = 5.0


@dataclass(frozen=True)
class Ended:
    """How a command ended. `breach` names the limit it was killed for, if any."""

    exit_code: int | None
    timed_out: bool
    breach: str | None = None


@dataclass
class _Trip:
    """The first limit a run broke, and an event the waiting coroutine wakes on."""

    kind: str | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, kind: str) -> None:
        if self.kind is None:
            self.kind = kind
            self.event.set()


def rlimits(limits: RunLimits, cgroup: RunCgroup | None) -> dict[str, int]:
    """The rlimits a run starts with: no core dumps, the file size limit, and (without a cgroup, for an
    ordinary user) a process limit on top of what the user already runs."""
    out = {"CORE": 0}
    if limits.file_size is not None:
        out["FSIZE"] = limits.file_size
    if cgroup is None and limits.processes is not None and os.geteuid() != 0:
        out["NPROC"] = user_tasks(os.getuid()) + limits.processes
    return out


async def _copy(stream: asyncio.StreamReader, log: BinaryIO, cap: int | None, trip: _Trip) -> None:
    written = 0
    while chunk := await stream.read(_CHUNK):
        if cap is not None and written + len(chunk) > cap:
            log.write(chunk[: cap - written])
            log.flush()
            trip("log_size")
            while await stream.read(_CHUNK):  # keep the pipe empty until the run is killed
                pass
            return
        log.write(chunk)
        # Each chunk is what the run printed since the last read: flush it, so the log on disk (what
        # `tail -f`, `labmind show` and the dashboard read) is live, not 8 KiB behind for a quiet run.
        log.flush()
        written += len(chunk)


async def _reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(fd, "rb", buffering=0))
    return reader, transport


#: How programs report a fork or a thread refused by RLIMIT_NPROC (EAGAIN): strerror, bash, Python threads.
_REFUSED = (b"Resource temporarily unavailable", b"fork: retry", b"can't start new thread")


def _refused_fork(log_path: Path, start: int) -> bool:
    with open(log_path, "rb") as f:
        f.seek(max(start, f.seek(0, os.SEEK_END) - 16384))
        tail = f.read()
    return any(text in tail for text in _REFUSED)


def _file_size_signal(code: int | None) -> bool:
    # SIGXFSZ: -25 from a process we started directly, 128 + 25 through a shell or bubblewrap.
    return code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ)


async def run_confined(argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, token: str,
                       timeout_s: float, limits: RunLimits, cgroups: Cgroups | None, grace_s: float) -> Ended:
    """Run argv (already wrapped by the sandbox) under `limits`, appending its output to log_path."""
    cgroup = None
    if cgroups is not None and (limits.memory is not None or limits.processes is not None):
        with contextlib.suppress(OSError):  # the watchdog takes over for this run
            cgroup = cgroups.create(f"run-{uuid.uuid4().hex[:12]}", limits)
    trip = _Trip()
    limited = rlimits(limits, cgroup)
    argv = launcher_argv(cgroup.procs if cgroup else [], limited, argv)
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        # A pipe of our own rather than asyncio's: its Process.wait() would also wait for the pipe to close,
        # which a daemon the run left behind keeps open until it is killed.
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=asyncio.subprocess.STDOUT,
                cwd=cwd, env=env,  # bwrap clears env inside; the token also marks bwrap itself
                start_new_session=True,  # own process group, so the whole tree can be signalled
            )  # fmt: skip
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        stream, transport = await _reader(read_fd)
        copier = asyncio.ensure_future(_copy(stream, log, limits.log_size, trip))
        watcher = asyncio.ensure_future(watch(proc.pid, token, limits, trip)) if cgroup is None else None
        try:
            timed_out = await _wait(proc, token, timeout_s, trip, grace_s)
        except BaseException:  # cancelled (the lab is stopping) or worse: nothing may outlive the run
            kill_now(proc, token)
            if cgroup is not None:
                cgroup.remove()
            copier.cancel()
            transport.close()
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        reap_leftovers(proc.pid, token)  # background children and daemons must not outlive the run
        kernel = []
        if cgroup is not None:
            kernel = cgroup.breaches()
            await asyncio.to_thread(cgroup.remove)
        try:
            await asyncio.wait_for(copier, DRAIN_S)
        except TimeoutError:
            pass
        finally:
            transport.close()
    breach = trip.kind or (kernel[0] if kernel else None)
    if breach is None and limits.file_size is not None and _file_size_signal(proc.returncode):
        breach = "file_size"
    # A process limit (RLIMIT_NPROC, or the cgroup's pids.max when its event counter was not readable in time)
    # refused a fork or a thread: the run's own output says so.
    capped = "NPROC" in limited or (cgroup is not None and limits.processes is not None)
    if breach is None and capped and proc.returncode and _refused_fork(log_path, start):
        breach = "processes"
    if breach is not None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(f"\n{breach_message(breach, limits)}\n")
    return Ended(None if timed_out else proc.returncode, timed_out, breach)


async def _wait(proc: asyncio.subprocess.Process, token: str, timeout_s: float, trip: _Trip,
                grace_s: float) -> bool:
    """Wait for the run to exit; kill it at once over a limit, terminate it at the timeout (True)."""
    exited = asyncio.ensure_future(proc.wait())
    tripped = asyncio.ensure_future(trip.event.wait())
    try:
        done, _ = await asyncio.wait({exited, tripped}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        tripped.cancel()
    if exited in done:
        return False
    if trip.kind is not None:
        signal_group(proc.pid, signal.SIGKILL)  # no grace over a limit: it would only use more
        reap_leftovers(proc.pid, token)
        await asyncio.wait_for(exited, 10.0)
        return False
    exited.cancel()
    await terminate_tree(proc, token, grace_s)
    return True
