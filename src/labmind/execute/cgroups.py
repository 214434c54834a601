"""cgroups for runs: a cgroup per run with a memory and a process limit the kernel enforces.

labmind makes one parent cgroup per process (`labmind-<pid>-<random>`) and one child per run inside it.
It looks for a place, in order:

1. cgroup v2: the directory named by `LABMIND_CGROUP` (a cgroup delegated to labmind, e.g. by systemd's
   `Delegate=yes`), else the parent of labmind's own cgroup (a sibling of it) or, at the top of the
   hierarchy, the top itself, provided `memory` and `pids` can be enabled there;
2. cgroup v1: children of labmind's own cgroups in the `memory` and `pids` hierarchies;

and keeps the first where a real process can be moved into a test cgroup. Otherwise there is none, and
`limits.py` falls back to rlimits and a watchdog. `LABMIND_CGROUPS=off` turns cgroups off (to check the
fallback, or where writing cgroups is unwelcome).
"""

from __future__ import annotations

import atexit
import errno
import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from labmind.execute.limits import RunLimits

LAUNCHER = Path(__file__).with_name("launch.py")


def launcher_argv(procs: list[Path], rlimits: dict[str, int], argv: list[str]) -> list[str]:
    """argv that joins the cgroups (their cgroup.procs files) and sets rlimits, then execs `argv`."""
    opts = [f"--cgroup-procs={p}" for p in procs] + [f"--rlimit={k}:{v}" for k, v in sorted(rlimits.items())]
    return [sys.executable, "-I", "-S", str(LAUNCHER), *opts, "--", *argv]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _counter(path: Path, key: str) -> int:
    """A `key value` counter from a cgroup events file (memory.events, pids.events, memory.oom_control)."""
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def _kill_procs(directory: Path) -> None:
    for _ in range(20):
        pids = [int(p) for p in _read(directory / "cgroup.procs").split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


def _rmdir(directory: Path, timeout_s: float = 3.0) -> None:
    """Remove an (emptied) cgroup directory; a cgroup whose last process is still exiting is busy briefly."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                return
            time.sleep(0.05)


@dataclass
class RunCgroup:
    """One run's cgroup (one directory in v2; one in each of the memory and pids hierarchies in v1)."""

    version: int
    dirs: list[Path]
    limits: RunLimits

    @property
    def procs(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def breaches(self) -> list[str]:
        """Which limits the kernel enforced on the run: "memory" (an OOM kill), "processes" (a refused fork)."""
        out = []
        if self.version == 2:
            d = self.dirs[0]
            if _counter(d / "memory.events", "oom_kill") or _counter(d / "memory.events", "oom_group_kill"):
                out.append("memory")
            if _counter(d / "pids.events", "max"):
                out.append("processes")
        else:
            memory, pids = self.dirs
            if _counter(memory / "memory.oom_control", "oom_kill"):
                out.append("memory")
            if _counter(pids / "pids.events", "max"):
                out.append("processes")
        return out

    def kill(self) -> None:
        """SIGKILL everything still in the cgroup: also what left the run's process group and environment."""
        for d in self.dirs:
            if self.version == 2 and (d / "cgroup.kill").exists():
                try:
                    _write(d / "cgroup.kill", "1")
                except OSError:
                    pass
            _kill_procs(d)

    def remove(self) -> None:
        self.kill()
        for d in self.dirs:
            _rmdir(d)


@dataclass
class Cgroups:
    """Where this process makes run cgroups: `parents` (one for v2; memory and pids for v1)."""

    version: int
    parents: list[Path]
    runs: list[RunCgroup] = field(default_factory=list)

    def describe(self) -> str:
        return f"cgroup v{self.version} ({', '.join(map(str, self.parents))})"

    def create(self, name: str, limits: RunLimits) -> RunCgroup:
        dirs = [parent / name for parent in self.parents]
        for d in dirs:
            d.mkdir()
        run = RunCgroup(self.version, dirs, limits)
        try:
            if self.version == 2:
                d = dirs[0]
                if limits.memory:
                    _write(d / "memory.max", str(limits.memory))
                    if (d / "memory.swap.max").exists():
                        _write(d / "memory.swap.max", "0")  # over the limit means killed, not swapping
                    if (d / "memory.oom.group").exists():
                        _write(d / "memory.oom.group", "1")  # the whole run, not one of its processes
                if limits.processes:
                    _write(d / "pids.max", str(limits.processes))
            else:
                memory, pids = dirs
                if limits.memory:
                    _write(memory / "memory.limit_in_bytes", str(limits.memory))
                    if (memory / "memory.memsw.limit_in_bytes").exists():
                        _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory))
                if limits.processes:
                    _write(pids / "pids.max", str(limits.processes))
        except OSError:
            run.remove()
            raise
        return run

    def close(self) -> None:
        for parent in self.parents:
            for child in parent.glob("run-*"):
                _kill_procs(child)
                _rmdir(child)
            _rmdir(parent)


# ------------------------------------------------------------------------------------------ discovery


def _mounts() -> list[tuple[str, str, str, list[str]]]:
    """(mount root, mount point, fstype, super options) of every cgroup mount."""
    out = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((fields[3], fields[4], tail[0], tail[2].split(",")))
    return out


def _own_paths() -> dict[str, str]:
    """labmind's cgroup path per controller ("" is the v2 hierarchy), from /proc/self/cgroup."""
    out = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def _under(mount_root: str, mount_point: str, path: str) -> Path | None:
    """The directory of cgroup `path` inside a mount of the hierarchy rooted at `mount_root`."""
    root = Path(mount_root)
    own = Path(path)
    if not own.is_relative_to(root):
        return None
    return Path(mount_point) / own.relative_to(root)


def _works(cgroups: Cgroups) -> bool:
    """Make a test cgroup and move a real process into it: permissions to do that are the last hurdle."""
    probe = f"run-probe-{uuid.uuid4().hex[:8]}"
    try:
        run = cgroups.create(probe, RunLimits(memory=64 << 20, processes=16))
    except OSError:
        return False
    try:
        argv = launcher_argv(run.procs, {}, ["true"])
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        run.remove()


def _sweep_stale(parent_dir: Path) -> None:
    """Remove labmind cgroups left by processes that were killed (their runs are gone or are killed now)."""
    for stale in parent_dir.glob("labmind-*"):
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            Cgroups(0, [stale]).close()


def _try_v2(mount_root: str, mount_point: str, own: str) -> Cgroups | None:
    here = _under(mount_root, mount_point, own)
    candidates = []
    if os.environ.get("LABMIND_CGROUP"):
        candidates.append(Path(os.environ["LABMIND_CGROUP"]))
    if here is not None:
        candidates.append(here.parent if here != Path(mount_point) else here)
    for base in candidates:
        if not (base / "cgroup.subtree_control").exists():
            continue
        _sweep_stale(base)
        parent = base / f"labmind-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # Controllers are used where they are already enabled: turning them on here would change the
        # accounting of every sibling cgroup, which belongs to the system, not to labmind.
        if not {"memory", "pids"} <= set(_read(base / "cgroup.subtree_control").split()):
            continue
        try:
            parent.mkdir()
            _write(parent / "cgroup.subtree_control", "+memory +pids")
        except OSError:
            _rmdir(parent)
            continue
        found = Cgroups(2, [parent])
        if _works(found):
            return found
        found.close()
    return None


def _try_v1(mounts: list[tuple[str, str, str, list[str]]], own: dict[str, str]) -> Cgroups | None:
    parents = []
    for controller in ("memory", "pids"):
        mount = next((m for m in mounts if m[2] == "cgroup" and controller in m[3]), None)
        here = _under(mount[0], mount[1], own.get(controller, "/")) if mount else None
        if here is None or not here.is_dir():
            return None
        _sweep_stale(here)
        parents.append(here / f"labmind-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    made = []
    try:
        for parent in parents:
            parent.mkdir()
            made.append(parent)
    except OSError:
        for parent in made:
            _rmdir(parent)
        return None
    found = Cgroups(1, parents)
    if _works(found):
        return found
    found.close()
    return None


@functools.cache
def find_cgroups() -> Cgroups | None:
    """This process's place for run cgroups, or None (then limits fall back to rlimits and a watchdog).
    Found once per process; the parent cgroup is removed when the process exits."""
    if os.environ.get("LABMIND_CGROUPS", "").lower() in ("0", "off", "no", "false"):
        return None
    mounts, own = _mounts(), _own_paths()
    found = None
    v2 = next((m for m in mounts if m[2] == "cgroup2"), None)
    if v2 is not None and "" in own:
        found = _try_v2(v2[0], v2[1], own[""])
    if found is None:
        found = _try_v1(mounts, own)
    if found is not None:
        atexit.register(found.close)
    return found


def memory_available() -> int | None:
    """The memory labmind itself may use when its own cgroup is limited (a container), else None."""
    own = _own_paths()
    limits = []
    for mount_root, mount_point, fstype, options in _mounts():
        if fstype == "cgroup2" and "" in own:
            here = _under(mount_root, mount_point, own[""])
            while here is not None and here.is_relative_to(mount_point) and here != Path(mount_point):
                value = _read(here / "memory.max").strip()
                if value.isdigit():
                    limits.append(int(value))
                here = here.parent
        elif fstype == "cgroup" and "memory" in options and "memory" in own:
            here = _under(mount_root, mount_point, own["memory"])
            value = _read(here / "memory.limit_in_bytes").strip() if here else ""
            if value.isdigit() and int(value) < 1 << 60:
                limits.append(int(value))
    return min(limits) if limits else None
