"""The ray executor: each run a Ray task on a cluster worker, with the local executor's semantics.

What crosses the network, lab host → worker: a git bundle of the lab's starting commit (put in Ray's object
store once per lab session, fetched by a worker host only when its cache lacks that commit, see
ray_worker.py), then per run the request itself (patch, command, environment, limits, protected digests).
Worker → lab host: the outcome, the run's log and held-out log, and the artifacts when asked for. There is
never a shared filesystem.

Each run asks Ray for `gpus` GPUs (Ray picks them and the worker passes them to the run as
CUDA_VISIBLE_DEVICES; a multi-GPU run gets them all on one node, with labmind's rendezvous variables), plus
any custom resources (`--resources H100=1`). Runs are never retried by Ray: a run whose worker or node dies
comes back as `SlotLost`, and the lab re-queues it once.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labmind.execute.base import RunOutcome, RunRequest, Slot, SlotLost
from labmind.execute.ray_worker import BUNDLE_REF, WorkerResult, execute_on_worker, kill_tokens, unpack_artifacts
from labmind.workspace import git as gitops

INSTALL_HINT = "install it with `pip install 'labmind[ray]'` (and the same on every worker)"


class RayUnavailable(RuntimeError):
    """Ray is not installed, or no cluster answers at the address; the message says what to do."""


def import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise RayUnavailable(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from exc


def parse_resources(items: list[str]) -> dict[str, float]:
    """`--resources H100=1` (repeatable) as Ray custom resources; errors name the flag and the form."""
    out: dict[str, float] = {}
    for item in items:
        name, eq, amount = item.partition("=")
        try:
            value = float(amount) if eq else 1.0
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0:
            raise ValueError(f"--resources expects NAME=AMOUNT with a positive amount, such as H100=1, got {item!r}")
        if name in ("CPU", "GPU", "memory"):
            raise ValueError(f"--resources {item!r}: {name} is set by labmind from the task ([run] gpus); "
                             "name custom resources only")
        out[name.strip()] = value
    return out


def make_bundle(repo_root: Path, base: str, directory: Path) -> Path:
    """A git bundle of `base` and its history, made once per commit under `directory`."""
    path = directory / f"{base}.bundle"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    ref = f"{BUNDLE_REF}/{base}"  # a bundle carries refs, not bare commits: one for as long as it takes
    gitops.git(repo_root, "update-ref", ref, base)
    try:
        gitops.git(repo_root, "bundle", "create", "-q", str(tmp), ref)
        tmp.replace(path)
    finally:
        gitops.git(repo_root, "update-ref", "-d", ref, check=False)
        tmp.unlink(missing_ok=True)
    return path


def _remote_run(request: RunRequest, sandbox_mode: str, bundle_box: list[Any], setup: str | None
                ) -> WorkerResult:
    """The Ray task: runs on a worker, with the GPUs Ray assigned to it."""
    import ray

    gpus = tuple(int(g) for g in ray.get_gpu_ids())
    where = f"{ray.util.get_node_ip_address()} node {ray.get_runtime_context().get_node_id()[:8]}"
    if gpus:
        where += f" gpu{','.join(map(str, gpus))}"
    return execute_on_worker(request, Slot(0, gpus=gpus), sandbox_mode, lambda: ray.get(bundle_box[0]), setup,
                             where)


def unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing listens at a HOST:PORT or ray://HOST:PORT address, or None (`auto` is Ray's to find)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return None
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


#: The hooks this module installed (a second executor in one process must not wrap its own hook again).
_OURS: set[Any] = set()


def cluster_messages_to_stderr(ray: Any) -> None:
    """Ray prints the cluster's warnings (from raylets) on the driver's stdout, which is labmind's event stream
    (`--json` is read by programs): send them to stderr instead. Ray's own hook; left alone where a Ray version
    has none."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or original in _OURS:
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            for line in data.get("lines", []):
                print(f"ray cluster: {line}", file=sys.stderr)
            return
        original(data, ignore_prefix)

    _OURS.add(to_stderr)
    worker.print_to_stdstream = to_stderr


class RayExecutor:
    """Runs RunRequests as Ray tasks; see the module docstring and docs/ray.md."""

    def __init__(self, *, repo_root: Path, bundle_dir: Path, address: str | None, gpus_per_run: int,
                 slots: int | None = None, resources: dict[str, float] | None = None, sandbox: str = "auto",
                 setup: str | None = None) -> None:
        self.ray = import_ray()
        self.address = address or "auto"
        cluster_messages_to_stderr(self.ray)
        problem = unreachable(self.address)
        if problem is not None:  # Ray itself would retry for minutes
            raise RayUnavailable(f"no Ray cluster answers at --ray-address {self.address} ({problem}). Start one "
                                 "with `ray start --head` (see docs/ray.md) or pass its address, e.g. "
                                 "--ray-address ray://HOST:10001")
        try:
            self.ray.init(address=self.address, namespace="labmind", log_to_driver=False,
                          ignore_reinit_error=True, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"no Ray cluster answers at --ray-address {self.address} ({exc}). Start one with "
                                 "`ray start --head` (see docs/ray.md) or pass its address, e.g. "
                                 "--ray-address ray://HOST:10001") from exc
        self.repo_root, self.bundle_dir = repo_root, bundle_dir
        self.gpus_per_run = gpus_per_run
        self.resources = dict(resources or {})
        self.sandbox = sandbox
        self.setup = setup
        self._bundles: dict[str, Any] = {}
        self._bundle_lock = threading.Lock()
        self._checked = (0.0, None)  # (when, answer) of the last availability check
        # max_calls=0: a worker process serves run after run. Ray's default for GPU tasks is one call per
        # process (to free GPU memory the task held), but the run's GPU work happens in its own subprocess,
        # so that default would only add a Python + Ray + labmind start to every run.
        self._task = self.ray.remote(max_retries=0, max_calls=0)(_remote_run)
        self._killer = self.ray.remote(max_retries=0, num_cpus=0)(kill_tokens)
        self._slots = [Slot(i, cluster_gpus=gpus_per_run) for i in range(slots or self.cluster_slots())]
        if not self._slots:
            raise RayUnavailable(f"the Ray cluster at {self.address} has no node that can take a run "
                                 f"({self.need_text()}); add such workers or pass --slots")

    # -- what the lab asks -------------------------------------------------------------------------------

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots)

    @property
    def sandbox_name(self) -> str:
        return self.sandbox

    @property
    def limits_mechanism(self) -> str:
        return "enforced on each Ray worker (cgroups where writable, else rlimits and a watchdog)"

    def adopt(self, commit: str, worktree: Path) -> bool:
        return False  # a lab-host checkout is of no use on a worker

    def close(self) -> None:
        self.ray.shutdown()

    async def run(self, request: RunRequest, slot: Slot) -> RunOutcome:
        exceptions = self.ray.exceptions
        bundle = await asyncio.to_thread(self._bundle_ref, request.change.base)
        options: dict[str, Any] = {"num_gpus": self.gpus_per_run, "name": f"labmind-run-{request.run_id}",
                                   # A GPU run is held by its GPUs; CPU runs take one CPU each.
                                   "num_cpus": 0 if self.gpus_per_run else 1}
        if self.resources:
            options["resources"] = self.resources
        ref = self._task.options(**options).remote(request, self.sandbox, [bundle], self.setup)
        try:
            result: WorkerResult = await ref
        except asyncio.CancelledError:
            self.ray.cancel(ref, force=True)
            await asyncio.shield(asyncio.to_thread(self.kill_leftovers, [request.token]))
            raise
        except exceptions.RayTaskError as exc:  # labmind failed on the worker (not the run: that is an outcome)
            raise RuntimeError(f"on the Ray worker: {exc.cause if exc.cause is not None else exc}") from None
        except (exceptions.TaskCancelledError, exceptions.GetTimeoutError):
            raise
        except exceptions.RayError as exc:  # the worker process or its node died
            raise SlotLost(f"its Ray worker was lost ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") \
                from None
        await asyncio.to_thread(self._bring_back, request, result)
        return result.outcome

    def kill_leftovers(self, tokens: list[str]) -> int:
        """Kill the given runs' processes on every live node (after a lab restart or a cancelled run)."""
        if not tokens:
            return 0
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        refs = [self._killer.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(tokens) for node in self.ray.nodes() if node.get("Alive")]
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=60)
        killed = 0
        for ref in done:
            try:
                killed += int(self.ray.get(ref))
            except self.ray.exceptions.RayError:
                continue  # that node went away meanwhile: nothing of it to kill
        return killed

    def unavailable(self) -> str | None:
        """Why no run can start: no live node has the resources one run needs (checked every 2 s)."""
        when, answer = self._checked
        if time.monotonic() - when < 2.0:
            return answer
        try:
            fits = self.cluster_slots() > 0
            answer = None if fits else (f"the Ray cluster at {self.address} has no live node with "
                                        f"{self.need_text()}")
        except Exception as exc:  # the head itself is unreachable: that is a pause too
            answer = f"the Ray cluster at {self.address} does not answer ({type(exc).__name__}: {exc})"
        self._checked = (time.monotonic(), answer)
        return answer

    # -- helpers -------------------------------------------------------------------------------------------

    def need(self) -> dict[str, float]:
        """What one run asks of a node."""
        return ({"GPU": float(self.gpus_per_run)} if self.gpus_per_run else {"CPU": 1.0}) | self.resources

    def need_text(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.need().items())

    def cluster_slots(self) -> int:
        """How many runs the live nodes can hold at once: per node, the least over the resources a run needs."""
        total = 0
        need = self.need()
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            have = node.get("Resources", {})
            total += int(min(have.get(k, 0.0) // v for k, v in need.items()))
        return total

    def _bundle_ref(self, base: str) -> Any:
        with self._bundle_lock:
            if base not in self._bundles:
                path = make_bundle(self.repo_root, base, self.bundle_dir)
                self._bundles[base] = self.ray.put(path.read_bytes())
            return self._bundles[base]

    @staticmethod
    def _bring_back(request: RunRequest, result: WorkerResult) -> None:
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(request.log_path, "ab") as f:
            f.write(result.log)
        if result.holdout_log is not None:
            request.log_path.with_name(request.log_path.name + ".holdout").write_bytes(result.holdout_log)
        if result.artifacts is not None and request.bring_back is not None:
            unpack_artifacts(result.artifacts, request.bring_back)
