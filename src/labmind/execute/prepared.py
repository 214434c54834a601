"""Runs one RunSpec in a prepared directory on this host: sandboxed, scrubbed env, limits, trusted evaluation.

Both executors use it: the local one on the lab host, the ray one on each worker, after materialising the
run request (base commit + patch) in worktrees (see checkout.py)."""

from __future__ import annotations

import asyncio
import errno
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

from labmind.execute.base import CompileCache, RunOutcome, RunSpec, RunStatus, Slot
from labmind.execute.cgroups import Cgroups, find_cgroups
from labmind.execute.limits import RunLimits
from labmind.execute.metric import ParsedMetrics, is_usable, parse_log
from labmind.execute.procs import TOKEN_VAR, kill_by_token
from labmind.execute.runner import Ended, run_confined
from labmind.execute.sandbox import Sandbox
from labmind.execute.slots import gpu_device_nodes
from labmind.numeric import why_unusable
from labmind.workspace.digests import first_symlink
from labmind.workspace.git import force_rmtree

EVAL_SEPARATOR = "----- labmind: trusted evaluation -----"
TAIL_LINES = 40
TAIL_BYTES = 4096
#: Relative difference between a self-reported and an evaluated metric that counts as a mismatch.
MISMATCH_REL_TOL = 1e-6

#: Copied from labmind's environment into every run; nothing else is.
_ALLOWED_PARENT_VARS = ("PATH", "LANG", "LC_ALL", "TERM", "TZ")
#: GPU hosts need these to keep NCCL/PyTorch/NVSHMEM off NVLink multicast; copied when set.
_GPU_HOST_VARS = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
_SECRET_NAME = re.compile(
    r"API_?KEY|ACCESS_KEY|PRIVATE_KEY|_TOKEN$|^TOKEN$|SECRET|PASSWORD|PASSWD|CREDENTIAL|^AWS_",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def scrub_env(mapping: dict[str, str]) -> dict[str, str]:
    """`mapping` without variables that look like credentials (API keys, tokens, secrets, AWS_*)."""
    return {k: v for k, v in mapping.items() if not is_secret_name(k)}


def with_interpreter(path: str) -> str:
    """PATH with labmind's own interpreter directory first, so `python` in a task command means the
    environment labmind was installed into (its virtualenv), as it would in an activated shell."""
    bindir = os.path.dirname(sys.executable)
    parts = [p for p in path.split(os.pathsep) if p and p != bindir]
    return os.pathsep.join([bindir, *parts])


def run_env(spec_env: dict[str, str], slot: Slot, token: str, home: str) -> dict[str, str]:
    """The whole environment of a run: an allow-list of ours, the task's (scrubbed), then the fixed
    variables that the task may not override (token and device assignment)."""
    env = {k: os.environ[k] for k in (*_ALLOWED_PARENT_VARS, *_GPU_HOST_VARS) if k in os.environ}
    env["PATH"] = with_interpreter(env.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
    env["HOME"] = home
    env["PYTHONUNBUFFERED"] = "1"
    env.update(scrub_env(spec_env))
    env[TOKEN_VAR] = token
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus))
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env.update(rendezvous_env(len(slot.gpus)))
    return env


def rendezvous_env(gpus: int) -> dict[str, str]:
    """What a multi-GPU run needs to start its processes torchrun-style on its own devices: the process count
    (LABMIND_NPROC, and torchrun's PET_* defaults, so a bare `torchrun train.py` starts one process per GPU)
    and a rendezvous on loopback at a port no other run of this host is using. Set by labmind, never by the
    task: two concurrent runs must not meet at one port."""
    if gpus < 2:
        return {}
    port = str(free_port())
    return {"LABMIND_NPROC": str(gpus), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
            "PET_NPROC_PER_NODE": str(gpus), "PET_NNODES": "1", "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": port}


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, start: int = 0, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
    """The last lines of a log written since byte `start`, at most max_bytes."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-max_lines:])


class PreparedRunner:
    """Runs RunSpecs in prepared directories as subprocesses of this host; see docs/architecture.md (executor)
    and docs/integrity.md (trusted evaluation)."""

    def __init__(self, slots: list[Slot], sandbox: Sandbox, *, grace_s: float = 5.0, network: bool = False,
                 cgroups: Cgroups | Literal["auto"] | None = "auto"):
        self._slots = list(slots)
        #: Where runs get their cgroups; "auto": found on first use (see cgroups.py), None: never.
        self._cgroups = cgroups
        self._sandbox = sandbox
        self._grace_s = grace_s
        self._network = network
        # Under bwrap a GPU run gets only its own /dev/nvidia<minor> nodes (when they can be mapped).
        wants_gpus = sandbox.name == "bwrap" and any(slot.gpus for slot in slots)
        self._gpu_nodes = gpu_device_nodes() if wants_gpus else {}

    def _devices(self, slot: Slot) -> tuple[str, ...] | bool:
        if slot.gpus and all(g in self._gpu_nodes for g in slot.gpus):
            return tuple(self._gpu_nodes[g] for g in slot.gpus)
        return bool(slot.gpus)

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots)

    @property
    def cgroups(self) -> Cgroups | None:
        if self._cgroups == "auto":
            self._cgroups = find_cgroups()
        return self._cgroups

    @property
    def limits_mechanism(self) -> str:
        """How memory and process limits are enforced here, for people."""
        found = self.cgroups
        if found is not None:
            return f"{found.describe()}, enforced by the kernel"
        return ("rlimits and a watchdog polling the runs' memory and threads every 0.5 s (no writable cgroup; "
                "see docs/integrity.md)")

    @property
    def sandbox_name(self) -> str:
        return self._sandbox.name

    def kill_leftovers(self, tokens: list[str]) -> int:
        return kill_by_token(tokens)

    async def run(self, spec: RunSpec, slot: Slot) -> RunOutcome:
        token = spec.token or f"labmind-{uuid.uuid4().hex}"
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        start_offset = _size(spec.log_path)
        scratch = tempfile.mkdtemp(prefix="labmind-home-")
        started = time.time()
        try:
            home = "/tmp" if self._sandbox.name == "bwrap" else scratch  # bwrap's /tmp is a private tmpfs
            env = run_env(spec.env, slot, token, home)
            if isinstance(self._devices(slot), tuple):
                # Only the slot's GPUs exist inside the sandbox, numbered from 0 there.
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(slot.gpus)))
                env["LABMIND_GPUS"] = ",".join(map(str, slot.gpus))
            command_spec = replace(spec, hidden=(*spec.hidden, *spec.run_hidden))
            command_env = env
            if spec.cache is not None:
                folder, problem = await asyncio.to_thread(cache_folder, spec.cache, Path(scratch))
                if problem:
                    _append(spec.log_path, f"labmind: the lab's compile cache could not be copied ({problem}); "
                                           "this run starts with empty caches\n")
                command_env = {**env, **{name: str(folder / name) for name in spec.cache.variables}}
                command_spec = replace(command_spec, extra_writable=(folder,))
                started = time.time()  # the run's time starts after the copy
            proc = await self._exec(spec.command, command_spec, slot, command_env, token, spec.timeout_s)
            # The candidate's wall clock, measured here and excluding the trusted evaluation.
            times = (started, time.time())
            run_end = _size(spec.log_path)
            if proc.timed_out or proc.exit_code != 0 or proc.breach:
                status: RunStatus = "timed_out" if proc.timed_out else "crashed"
                return self._outcome(spec, status, proc.exit_code, times, start_offset)
            run_metrics = parse_log(spec.log_path, [spec.metric, *spec.secondary], start_offset, run_end)
            if spec.evaluate is None:
                outcome = self._judge_metrics(spec, run_metrics, None, times, start_offset)
                return await self._with_holdout(outcome, spec, slot, env, token)
            _append(spec.log_path, f"\n{EVAL_SEPARATOR}\n")
            eval_spec = _evaluation_spec(spec)
            eval_start = _size(spec.log_path)
            evaluation = await self._exec(spec.evaluate, eval_spec, slot, env, token, spec.timeout_s)
            if evaluation.timed_out or evaluation.exit_code != 0 or evaluation.breach:
                # Flagged so people can tell the trusted evaluator's failure from the candidate's.
                status = "timed_out" if evaluation.timed_out else "crashed"
                flag = "evaluator_timed_out" if evaluation.timed_out else "evaluator_failed"
                return self._outcome(spec, status, evaluation.exit_code, times, start_offset, (flag,))
            eval_metrics = parse_log(spec.log_path, [spec.metric, *spec.secondary], eval_start)
            outcome = self._judge_metrics(spec, eval_metrics, run_metrics, times, start_offset)
            return await self._with_holdout(outcome, spec, slot, env, token)
        finally:
            # A run may have made parts of its cache copy unreadable or unwritable: remove it all anyway.
            force_rmtree(Path(scratch))

    async def _with_holdout(self, outcome: RunOutcome, spec: RunSpec, slot: Slot, env: dict[str, str],
                            token: str) -> RunOutcome:
        """Score the run's artifacts on held-out data too (pristine checkout, separate log)."""
        if spec.holdout is None or outcome.status != "ok":
            return outcome
        held = replace(_evaluation_spec(spec), log_path=spec.log_path.with_name(spec.log_path.name + ".holdout"))
        proc = await self._exec(spec.holdout, held, slot, env, token, spec.timeout_s)
        if proc.timed_out or proc.exit_code != 0 or proc.breach:
            return replace(outcome, flags=(*outcome.flags, "holdout_failed"))
        value = parse_log(held.log_path, [spec.metric]).get(spec.metric)
        return replace(outcome, holdout=value if is_usable(value) else None)

    async def _exec(
        self, command: str, spec: RunSpec, slot: Slot, env: dict[str, str], token: str, timeout_s: float
    ) -> Ended:
        """Run `bash -c command` sandboxed and under the run's limits, output appended to the log."""
        limits = spec.limits or RunLimits()
        cgroups = self.cgroups if limits.memory is not None or limits.processes is not None else None
        for attempt in range(SETUP_ATTEMPTS):
            # Built afresh each time: the masks cover the host's sockets as they are now.
            argv = self._sandbox.wrap(
                ["bash", "-c", command],
                workdir=spec.workdir,
                writable=[spec.writable, *spec.extra_writable],
                readonly=list(spec.protected),
                hidden=list(spec.hidden),
                gpus=self._devices(slot),
                network=self._network,
                env=env,
                tmp_size=limits.memory,
            )
            start = _size(spec.log_path)
            ended = await run_confined(argv, cwd=spec.workdir, env=env, log_path=spec.log_path, token=token,
                                       timeout_s=timeout_s, limits=limits, cgroups=cgroups, grace_s=self._grace_s)
            if attempt + 1 < SETUP_ATTEMPTS and sandbox_setup_raced(ended, spec.log_path, start):
                os.truncate(spec.log_path, start)  # the command never started: nothing of its own is lost
                continue
            return ended
        raise AssertionError("unreachable")

    def _judge_metrics(
        self,
        spec: RunSpec,
        metrics: ParsedMetrics,
        self_reported_from: ParsedMetrics | None,
        times: tuple[float, float],
        start_offset: int,
    ) -> RunOutcome:
        """Status, metric and flags from the parsed part of the log that counts."""
        flags: list[str] = []
        value = metrics.get(spec.metric)
        if metrics.count(spec.metric) > 1:
            flags.append("metric_repeated")
        secondary = _secondary(spec, metrics, self_reported_from)
        self_reported = None
        if self_reported_from is not None and (claimed := self_reported_from.get(spec.metric)) is not None:
            self_reported = claimed if is_usable(claimed) else None
            if value is not None and _mismatch(claimed, value):
                flags.append("self_reported_mismatch")
        if value is None:
            status: RunStatus = "no_metric"
        elif not is_usable(value):
            # Said in the log, whose last line the verdict's reason quotes.
            _append(spec.log_path, f"\nlabmind: {spec.metric} = {value!r} {why_unusable(value)}: bad_metric\n")
            status, value = "bad_metric", None
        else:
            status = "ok"
        return self._outcome(
            spec, status, 0, times, start_offset, tuple(flags), value, secondary, self_reported
        )

    def _outcome(
        self,
        spec: RunSpec,
        status: RunStatus,
        exit_code: int | None,
        times: tuple[float, float],
        start_offset: int,
        flags: tuple[str, ...] = (),
        metric: float | None = None,
        secondary: dict[str, float] | None = None,
        self_reported: float | None = None,
    ) -> RunOutcome:
        return RunOutcome(
            status=status,
            exit_code=exit_code,
            metric=metric,
            secondary=secondary or {},
            flags=flags,
            log_tail=log_tail(spec.log_path, start_offset),
            started_at=times[0],
            ended_at=times[1],
            sandbox=self._sandbox.name,
            self_reported=self_reported,
        )


#: bubblewrap builds the sandbox from paths that other processes may remove meanwhile (a host socket it masks,
#: say): then it fails before the command starts, and a fresh attempt sees the host as it is now.
SETUP_ATTEMPTS = 3
_SETUP_RACE = re.compile(r"^bwrap: Can't (?:mkdir parents for|create file at|find source path|mount tmpfs on|"
                         r"bind mount) .*(?:No such file or directory|Read-only file system)\s*$")


def sandbox_setup_raced(ended: Ended, log_path: Path, start: int) -> bool:
    """Whether the sandbox failed to set up because a path vanished under it: exit 1 with bubblewrap's one
    line as the only output (the command never ran)."""
    if ended.exit_code != 1 or ended.timed_out or ended.breach:
        return False
    try:
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    lines = text.strip().splitlines()
    return len(lines) == 1 and bool(_SETUP_RACE.match(lines[0]))


def cache_folder(cache: CompileCache, scratch: Path) -> tuple[Path, str | None]:
    """The folder a run's compiler caches live in: the lab's own for a writer (the baseline's runs), else a
    private copy of it under the run's scratch directory (what the run writes there goes with it). With it,
    why the copy could not be made, if so: then the run starts with empty caches (a baseline run writing
    while the copy is made removes its temporary entries under it; a half-copied entry is worse than none)."""
    problem = None
    if cache.writer:
        folder = cache.folder
    else:
        folder = scratch / "compile-cache"
        if cache.folder.is_dir():
            try:
                # Compilers write an entry under a temporary name, then rename it: skip those in flight.
                shutil.copytree(cache.folder, folder, symlinks=True, ignore=shutil.ignore_patterns("tmp*"))
            except (shutil.Error, OSError) as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:300]}"
                force_rmtree(folder)
    for name in cache.variables:
        (folder / name).mkdir(parents=True, exist_ok=True)
    return folder, problem


def _evaluation_spec(spec: RunSpec) -> RunSpec:
    """The spec the trusted evaluator runs under: in the pristine checkout when there is one, with the
    run's declared artifacts (regular files only, never symlinks) copied in."""
    if spec.eval_workdir is None or spec.eval_writable is None:
        return spec
    copy_artifacts(spec.workdir, spec.artifacts, spec.eval_workdir)
    protected = tuple(spec.eval_workdir / p.relative_to(spec.workdir) for p in spec.protected
                      if p.is_relative_to(spec.workdir))
    return replace(spec, workdir=spec.eval_workdir, writable=spec.eval_writable, protected=protected)


def copy_artifacts(workdir: Path, patterns: tuple[str, ...], dest: Path) -> list[Path]:
    """Copy the files a run declared as artifacts (regular files only, never symlinks nor anything reached
    through one) from workdir to the same relative places under dest; returns the copies."""
    copied = []
    for pattern in patterns:
        for src in workdir.glob(pattern):
            # A file reached through a symlinked directory is a host file the run pointed at, never one it made.
            if src.is_symlink() or not src.is_file() or first_symlink(workdir, src) is not None:
                continue
            dst = dest / src.relative_to(workdir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            copy_sparse(src, dst)
            copied.append(dst)
    return copied


def copy_sparse(src: Path, dst: Path) -> None:
    """Copy a file keeping its holes: a run's 64 GiB sparse artifact stays a few blocks on disk, instead of
    64 GiB of zeros written by labmind (SEEK_DATA/SEEK_HOLE; a plain copy where they are unsupported)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        try:
            regions = list(_data_regions(fin.fileno(), size))
        except OSError:  # no SEEK_DATA on this file system: all of it is data
            regions = [(0, size)]
        for start, end in regions:
            fin.seek(start)
            fout.seek(start)
            remaining = end - start
            while remaining > 0 and (block := fin.read(min(remaining, 1 << 20))):
                fout.write(block)
                remaining -= len(block)
        fout.truncate(size)
    shutil.copymode(src, dst)


def _data_regions(fd: int, size: int) -> Iterator[tuple[int, int]]:
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        offset = end


def _secondary(spec: RunSpec, primary: ParsedMetrics, fallback: ParsedMetrics | None) -> dict[str, float]:
    """Finite secondary values, from the trusted part first and the run's own output otherwise."""
    out = {}
    for name in spec.secondary:
        value = primary.get(name)
        if value is None and fallback is not None:
            value = fallback.get(name)
        if is_usable(value):
            out[name] = value
    return out


def _mismatch(claimed: float, evaluated: float) -> bool:
    if not (math.isfinite(claimed) and math.isfinite(evaluated)):
        return not (claimed == evaluated or (math.isnan(claimed) and math.isnan(evaluated)))
    return not math.isclose(claimed, evaluated, rel_tol=MISMATCH_REL_TOL, abs_tol=1e-12)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
