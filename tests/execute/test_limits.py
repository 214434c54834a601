"""Per-run resource limits with real processes: each limit through the kernel (a cgroup, where this machine
lets labmind make one) and through the fallback (rlimits and the watchdog), with and without bubblewrap."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from labmind.execute.base import RunOutcome, Slot
from labmind.execute.cgroups import find_cgroups
from labmind.execute.limits import RunLimits, resolve_limits
from labmind.execute.prepared import PreparedRunner
from labmind.execute.sandbox import resolve_sandbox
from labmind.task.model import RunSection

from .conftest import PY, Tree, needs_bwrap

MiB = 1 << 20
BACKENDS = [pytest.param("cgroup", id="cgroup"), pytest.param("watchdog", id="watchdog")]
MODES = [pytest.param("none", id="none"),
         pytest.param("bwrap", id="bwrap", marks=[pytest.mark.sandbox, needs_bwrap])]


def run(tree: Tree, mode: str, backend: str, command: str, limits: RunLimits, timeout_s: float = 60) -> RunOutcome:
    if backend == "cgroup":
        cgroups = find_cgroups()
        if cgroups is None:
            pytest.skip("no writable cgroup (v2 delegated, or v1 memory+pids) on this machine: "
                        "the watchdog variant covers the fallback")
    else:
        cgroups = None
    sandbox = resolve_sandbox("bwrap")[0] if mode == "bwrap" else resolve_sandbox("none")[0]
    executor = PreparedRunner([Slot(0)], sandbox, grace_s=0.5, cgroups=cgroups)
    spec = tree.spec(command, limits=limits, timeout_s=timeout_s)
    return asyncio.run(executor.run(spec, Slot(0)))


def last_line(tree: Tree) -> str:
    return tree.log_text().strip().splitlines()[-1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_memory_hog_is_killed(tree: Tree, mode: str, backend: str) -> None:
    hog = f"{PY} -c \"import time; x = bytearray(600 << 20); print('allocated', flush=True); time.sleep(30)\""
    started = time.monotonic()
    out = run(tree, mode, backend, hog + "; echo score: 1", RunLimits(memory=200 * MiB))
    assert out.status == "crashed" and out.metric is None
    assert time.monotonic() - started < 20  # killed, not left to sleep out its 30 s
    assert last_line(tree) == "labmind: killed: the run used more than its memory limit of 200 MiB ([run] memory)"
    assert out.log_tail.strip().endswith("([run] memory)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_reserved_address_space_is_not_memory(tree: Tree, backend: str) -> None:
    # GPU frameworks reserve far more address space than they touch: only memory in use counts (no RLIMIT_AS).
    # 64 GiB of private anonymous address space (MAP_NORESERVE: 0x4000), of which one page is touched.
    reserve = (f"{PY} -c \"import mmap, time; m = mmap.mmap(-1, 64 << 30, flags=mmap.MAP_PRIVATE | "
               f"mmap.MAP_ANONYMOUS | 0x4000); m[:4] = b'1234'; time.sleep(1.2); print('score: 1')\"")
    out = run(tree, "none", backend, reserve, RunLimits(memory=200 * MiB, processes=64))
    assert out.status == "ok" and out.metric == 1.0, tree.log_text()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_process_limit_stops_a_fork_bomb(tree: Tree, mode: str, backend: str) -> None:
    bomb = (f"{PY} - <<'PY'\nimport os, time\nkids = []\nfor _ in range(200):\n    pid = os.fork()\n"
            "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    kids.append(pid)\n"
            "time.sleep(30)\nprint('score: 1')\nPY")
    started = time.monotonic()
    out = run(tree, mode, backend, bomb, RunLimits(processes=40))
    assert out.status == "crashed"
    assert time.monotonic() - started < 20
    assert last_line(tree) == ("labmind: killed: the run tried to run more than 40 processes and threads "
                               "([run] processes)")


@pytest.mark.parametrize("mode", MODES)
def test_file_size_limit(tree: Tree, mode: str) -> None:
    out = run(tree, mode, "watchdog", "head -c 3000000 /dev/zero > big.bin && echo score: 1",
              RunLimits(file_size=MiB))
    assert out.status == "crashed"
    assert (tree.task / "big.bin").stat().st_size <= MiB
    assert last_line(tree) == ("labmind: killed: the run wrote a file larger than the file size limit of 1 MiB "
                               "([run] file_size)")


@pytest.mark.parametrize("mode", MODES)
def test_log_limit_keeps_the_log_bounded(tree: Tree, mode: str) -> None:
    flood = f"{PY} -c \"import sys; [sys.stdout.write('x' * 1000 + chr(10)) for _ in range(20000)]\"; echo score: 1"
    out = run(tree, mode, "watchdog", flood, RunLimits(log_size=MiB))
    assert out.status == "crashed"
    size = tree.log.stat().st_size
    assert MiB <= size < MiB + 200  # the limit, plus labmind's own line
    assert last_line(tree) == "labmind: killed: the run printed more than the log limit of 1 MiB ([run] log_size)"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_within_its_limits_is_untouched(tree: Tree, backend: str) -> None:
    threads = f"{PY} -c \"import threading; [threading.Thread(target=lambda: None).start() for _ in range(20)]\""
    out = run(tree, "none", backend, threads + "; echo score: 2",
              RunLimits(memory=256 * MiB, processes=64, file_size=MiB, log_size=MiB))
    assert out.status == "ok" and out.metric == 2.0


def test_no_core_dumps(tree: Tree) -> None:
    out = run(tree, "none", "watchdog", "ulimit -c; echo score: 1", RunLimits())
    assert out.status == "ok" and tree.log_text().splitlines()[0] == "0"


def test_auto_memory_shares_the_machine_between_slots() -> None:
    section = RunSection(command="true")
    assert resolve_limits(section, 4, available=40 << 30).memory == int((40 << 30) * 0.9 / 4)
    assert resolve_limits(section, 1000, available=1 << 30).memory == 256 * MiB  # a floor
    limits = resolve_limits(RunSection(command="true", memory="unlimited", processes="unlimited",
                                       file_size="unlimited", log_size="1M"), 1)
    assert limits == RunLimits(memory=None, processes=None, file_size=None, log_size=MiB)
    assert limits.describe() == "memory unlimited, processes unlimited, file size unlimited, log 1 MiB"


def test_cgroups_are_removed_after_each_run(tree: Tree) -> None:
    cgroups = find_cgroups()
    if cgroups is None:
        pytest.skip("no writable cgroup on this machine")
    out = run(tree, "none", "cgroup", "sleep 0.2 & echo score: 1", RunLimits(memory=64 * MiB, processes=64))
    assert out.status == "ok"
    for parent in cgroups.parents:
        assert [p.name for p in Path(parent).iterdir() if p.name.startswith("run-")] == []
    assert os.path.isdir(cgroups.parents[0])


def test_memory_shared_by_forked_workers_counts_once(tree: Tree) -> None:
    # A parent touches 300 MiB and forks a worker that shares it: resident memory counts it twice (600 MiB,
    # over the 450 MiB limit), proportional memory once; the watchdog must decide on the latter.
    shared = (f"{PY} -c \"import os, time; x = bytearray(300 << 20); pid = os.fork(); time.sleep(2.5); "
              "os._exit(0) if pid == 0 else (os.waitpid(pid, 0), print('score: 1'))\"")
    out = run(tree, "none", "watchdog", shared, RunLimits(memory=450 * MiB))
    assert out.status == "ok" and out.metric == 1.0, tree.log_text()


def test_the_watchdog_walks_no_page_tables_far_under_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading smaps_rollup stalls the process it reads: only a run near its memory limit pays for it.
    from labmind.execute import watchdog

    walked: list[int] = []
    real = watchdog.memory
    monkeypatch.setattr(watchdog, "memory", lambda pid: walked.append(pid) or real(pid))
    me = os.getpid()
    held = watchdog.resident(me)
    assert held > MiB  # this interpreter holds some memory of its own
    assert watchdog.check(me, "no-token", RunLimits(memory=64 * held), with_token=False) is None
    assert walked == []
    assert watchdog.check(me, "no-token", RunLimits(memory=held // 2), with_token=False) == "memory"
    assert me in walked
