"""The fallback enforcement of memory and process limits where no cgroup can be made (see limits.py).

Every `interval_s` it finds the run's processes — descendants of the process labmind started (a
sandboxed run stays below it: bubblewrap's pid namespace reparents orphans to its own init) plus any
process carrying the run's token — and adds up their proportional memory (PSS of anonymous and shared
memory, from /proc/PID/smaps_rollup, so pages shared between forked workers count once) and their
threads. Over a limit, it reports which one; the executor kills the run.

PSS is read only when the run's resident memory (the kernel's counters in /proc/PID/status, which bound
PSS from above) is over the limit: reading smaps_rollup walks the process's page tables holding its
memory-map lock, which stalls its page faults and mmap calls, for about 20 ms per GB it holds. Polled twice a
second over a GPU trainer and its compile workers that is a stall the run would pay all the time, in its
compilation and in its timed training; near the limit, a rare case, exactness matters more.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from labmind.execute.limits import RunLimits
from labmind.execute.procs import find_by_token

_PROC = Path("/proc")
#: Every this many checks, processes that left the tree are also looked up by token (it reads every
#: process's environment, so not every time).
TOKEN_EVERY = 4


def _stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, threads) of a process, or None when it is gone."""
    try:
        text = (_PROC / pid / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[17])


def tree(root: int) -> dict[int, int]:
    """The process `root` and its descendants, each with its thread count."""
    parents: dict[int, list[int]] = {}
    threads: dict[int, int] = {}
    for entry in os.listdir(_PROC):
        if not entry.isdigit():
            continue
        found = _stat(entry)
        if found is None:
            continue
        ppid, count = found
        parents.setdefault(ppid, []).append(int(entry))
        threads[int(entry)] = count
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in out or pid not in threads:
            continue
        out[pid] = threads[pid]
        todo.extend(parents.get(pid, []))
    return out


def _sizes(pid: int, name: str) -> dict[str, int]:
    """The `Key:  123 kB` lines of /proc/PID/NAME, in bytes (empty when the process is gone)."""
    try:
        text = (_PROC / str(pid) / name).read_text()
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    return values


def memory(pid: int) -> int:
    """Bytes of anonymous and shared memory the process accounts for, proportionally (PSS)."""
    values = _sizes(pid, "smaps_rollup")
    if "Pss_Anon" in values:
        return values["Pss_Anon"] + values.get("Pss_Shmem", 0)
    return values.get("Pss", 0)  # kernels before 5.x: all of PSS, file pages included (conservative)


def resident(pid: int) -> int:
    """Bytes of anonymous and shared memory resident in the process, from the kernel's counters (no page-table
    walk, no lock the process needs): at least its PSS of the same memory, as pages shared with other
    processes count whole here."""
    values = _sizes(pid, "status")
    if "RssAnon" in values:
        return values["RssAnon"] + values.get("RssShmem", 0)
    return values.get("VmRSS", 0)  # kernels before 4.5: all resident memory, file pages included (an upper bound)


def over_memory(pids: list[int], limit: int) -> bool:
    """Whether the processes' proportional memory is over `limit`, reading PSS only when their resident memory,
    its upper bound, is near it: within 1/16 of the limit, as the kernel's counters can lag behind by a few
    pages per CPU."""
    return (sum(resident(pid) for pid in pids) > limit - limit // 16
            and sum(memory(pid) for pid in pids) > limit)


def check(root: int, token: str, limits: RunLimits, *, with_token: bool) -> str | None:
    """"memory" or "processes" when the run is over that limit now, else None."""
    procs = tree(root)
    if with_token:
        for pid in find_by_token([token]):
            if pid not in procs and (found := _stat(str(pid))) is not None:
                procs[pid] = found[1]
    if limits.processes is not None and sum(procs.values()) > limits.processes:
        return "processes"
    if limits.memory is not None and over_memory(list(procs), limits.memory):
        return "memory"
    return None


async def watch(root: int, token: str, limits: RunLimits, tripped: Callable[[str], None],
                interval_s: float = 0.5) -> None:
    """Check the run every `interval_s` until cancelled; call `tripped(kind)` once on the first breach."""
    if limits.memory is None and limits.processes is None:
        return
    n = 0
    while True:
        await asyncio.sleep(interval_s)
        n += 1
        kind = await asyncio.to_thread(check, root, token, limits, with_token=n % TOKEN_EVERY == 0)
        if kind is not None:
            tripped(kind)
            return


def user_tasks(uid: int) -> int:
    """Threads of every process whose real user is `uid`: what RLIMIT_NPROC counts against its limit."""
    total = 0
    for entry in os.listdir(_PROC):
        if not entry.isdigit():
            continue
        try:
            text = (_PROC / entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total
