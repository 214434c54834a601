"""Killing a run's whole process tree, including processes that left its process group.

A run starts in its own session (process group = its pid), so signalling the group reaches ordinary
children. A child that calls setsid() or daemonizes leaves the group; it still carries the run's
LABMIND_RUN_TOKEN in its environment, so a sweep over /proc finds it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

TOKEN_VAR = "LABMIND_RUN_TOKEN"
_PROC = Path("/proc")


def signal_group(pgid: int, sig: int) -> bool:
    """Send sig to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _environ_has(pid: str, needles: list[bytes]) -> bool:
    try:
        data = (_PROC / pid / "environ").read_bytes()
    except OSError:  # gone, a kernel thread, or not ours to read
        return False
    data = b"\0" + data  # every entry is now preceded by NUL, so a needle matches whole entries only
    return any(needle in data for needle in needles)


def find_by_token(tokens: Iterable[str]) -> list[int]:
    """Pids of live processes whose environment has LABMIND_RUN_TOKEN set to one of `tokens`."""
    needles = [f"\0{TOKEN_VAR}={t}\0".encode() for t in tokens if t]
    if not needles:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir(_PROC):
        if entry.isdigit() and int(entry) != me and _environ_has(entry, needles):
            found.append(int(entry))
    return found


def kill_by_token(tokens: Iterable[str], rounds: int = 5) -> int:
    """SIGKILL every process carrying one of `tokens`; return how many were killed.

    Repeated a few rounds because a process may fork between the scan and the kill.
    """
    tokens = [t for t in tokens if t]
    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in find_by_token(tokens) if p not in killed]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
    _wait_dead(killed)
    return len(killed)


def _running(pid: int) -> bool:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_dead(pids: set[int], timeout_s: float = 2.0) -> None:
    """SIGKILL is delivered asynchronously: wait until the processes are really gone (or zombies), so a
    run's outcome is recorded only once nothing of it is left running."""
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if _running(p)}
        if pids:
            time.sleep(0.01)


async def _wait_exit(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def terminate_tree(proc: asyncio.subprocess.Process, token: str, grace_s: float = 5.0) -> None:
    """SIGTERM the run's group, give it grace_s to exit, then SIGKILL the group and sweep the token."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        if not await _wait_exit(proc, grace_s):
            signal_group(proc.pid, signal.SIGKILL)
            await _wait_exit(proc, 5.0)
    reap_leftovers(proc.pid, token)


def reap_leftovers(pgid: int, token: str) -> int:
    """Kill whatever of a finished run is still alive: its group, then anything with its token."""
    # The kernel does not reuse a pid while it names a live process group, so this cannot hit a stranger.
    signal_group(pgid, signal.SIGKILL)
    return kill_by_token([token])


def kill_now(proc: asyncio.subprocess.Process, token: str) -> None:
    """Synchronous SIGKILL of the run's tree, for cancellation paths that cannot wait."""
    reap_leftovers(proc.pid, token)
