"""`labmind bench watchdog`: what the fallback limit enforcement costs the run it watches.

Where no cgroup can be made, labmind's watchdog checks each run twice a second (execute/watchdog.py). Here a
target process holds `gib` GiB resident and maps, touches and unmaps 8 MiB again and again (what allocators and
compilers do), and its cycle times are measured three ways: with nothing checking it; with labmind's watchdog
checking it as it checks a run (memory limit twice what it holds); and with every check reading its PSS from
/proc/PID/smaps_rollup, as the watchdog did before it bounded PSS by the kernel's counters. Reading
smaps_rollup walks the target's page tables holding its memory-map lock, so a cycle that needs the lock then
waits: the p99 and the longest cycle show it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from labmind.execute import watchdog
from labmind.execute.limits import RunLimits

INTERVAL_S = 0.5  # the watchdog's
VARIANTS = ("nothing", "watchdog", "pss every check")

# The target: touch `gib` GiB, say so, then time map/touch/unmap cycles of 8 MiB for `seconds`.
_TARGET = """
import json, mmap, sys, time
gib, seconds = float(sys.argv[1]), float(sys.argv[2])
held = bytearray(int(gib * (1 << 30)))
for i in range(0, len(held), 4096):
    held[i] = 1
print("ready", flush=True)
sys.stdin.readline()
cycles = []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    t = time.perf_counter()
    m = mmap.mmap(-1, 8 << 20)
    m[::4096] = b"\\1" * 2048
    m.close()
    cycles.append(time.perf_counter() - t)
print(json.dumps(cycles), flush=True)
"""


@dataclass(frozen=True)
class Figure:
    variant: str
    cycles: int  # map/touch/unmap cycles timed
    p50_ms: float
    p99_ms: float
    max_ms: float
    checks: int  # checks made while the target ran
    check_ms: float  # the mean time one check took (nan with nothing checking)
    held_gib: float  # the target's resident memory, from its kernel counters


def _poll(variant: str, pid: int, limit: int, stop: threading.Event, times: list[float]) -> None:
    while not stop.wait(INTERVAL_S):
        started = time.perf_counter()
        if variant == "watchdog":
            watchdog.check(pid, "labmind-bench-no-token", RunLimits(memory=limit), with_token=False)
        else:
            sum(watchdog.memory(p) for p in watchdog.tree(pid))
        times.append(time.perf_counter() - started)


def measure(variant: str, gib: float, seconds: float) -> Figure:
    """One target process, one way of checking it."""
    proc = subprocess.Popen([sys.executable, "-c", _TARGET, str(gib), str(seconds)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark's target process did not start")
        held = watchdog.resident(proc.pid)
        stop, times = threading.Event(), []
        poller = None
        if variant != "nothing":
            poller = threading.Thread(target=_poll, args=(variant, proc.pid, 2 * held, stop, times), daemon=True)
            poller.start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        cycles = sorted(json.loads(proc.stdout.readline()))
        stop.set()
        if poller is not None:
            poller.join()
    finally:
        proc.kill()
        proc.wait()
    if not cycles:
        raise RuntimeError("the benchmark's target timed no cycle")
    return Figure(variant=variant, cycles=len(cycles), p50_ms=1e3 * statistics.median(cycles),
                  p99_ms=1e3 * cycles[min(len(cycles) - 1, int(0.99 * len(cycles)))], max_ms=1e3 * cycles[-1],
                  checks=len(times), check_ms=1e3 * statistics.fmean(times) if times else float("nan"),
                  held_gib=held / (1 << 30))


def run_bench(gib: float, seconds: float) -> list[Figure]:
    if os.uname().sysname != "Linux":
        raise RuntimeError("the watchdog reads /proc: Linux only")
    return [measure(variant, gib, seconds) for variant in VARIANTS]
