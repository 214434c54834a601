"""A real local Ray cluster for tests: a head and worker nodes as `ray start --block` processes, each in its
own session, so that a test can kill one node (SIGKILL of its whole process group) and always stops them
all. GPUs are logical (`--num-gpus`): Ray assigns and exports CUDA_VISIBLE_DEVICES as on a GPU machine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
RAY = str(Path(sys.executable).with_name("ray"))


def ray_or_skip() -> None:
    """Skip without Ray, or fail where CI requires it (LABMIND_REQUIRE_RAY=1; `make ray` installs it)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("LABMIND_REQUIRE_RAY") == "1":
            pytest.fail("LABMIND_REQUIRE_RAY=1 but Ray is not installed (make ray installs it)")
        pytest.skip("Ray is not installed (pip install 'labmind[ray]', or make ray)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    cache: Path

    def kill(self) -> None:
        """The node dies at once, as a machine that loses power: every process of it (its raylet, its workers
        and what they started, whatever their process group), SIGKILL."""
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def descendants(root: int) -> list[int]:
    """Every process below `root` in the process tree, now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class Cluster:
    root: Path
    port: int
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self, cache: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(PYTHONPATH=str(SRC), LABMIND_WORKER_CACHE=str(cache), RAY_USAGE_STATS_ENABLED="0",
                   # A dead node is noticed within seconds, not the default half minute.
                   RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="4",
                   RAY_health_check_initial_delay_ms="0")
        return env

    def start(self, name: str, *, gpus: int, cpus: int = 0, head: bool = False) -> Node:
        cache = self.root / f"cache-{name}"
        args = [RAY, "start", "--block", f"--num-cpus={cpus}", f"--num-gpus={gpus}", "--node-ip-address=127.0.0.1",
                "--disable-usage-stats"]
        if head:
            args += ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.root}/t"]
        else:
            args += [f"--address={self.address}"]
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115  (kept open for the node's life)
        proc = subprocess.Popen(args, env=self.env(cache), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        node = Node(name, proc, cache)
        self.nodes[name] = node
        self.wait_for_nodes(len([n for n in self.nodes.values() if n.proc.poll() is None]))
        return node

    def wait_for_nodes(self, count: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = subprocess.run([RAY, "status", f"--address={self.address}"], capture_output=True, text=True,
                                  env=self.env(self.root))
            if proc.returncode == 0 and proc.stdout.count("node_") >= count:
                return
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.root.glob("*.log"))
        raise AssertionError(f"the Ray cluster did not reach {count} node(s) in {timeout:.0f} s\n{logs}")

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            left = descendants(node.proc.pid)
            if node.proc.poll() is None:
                try:
                    os.killpg(node.proc.pid, signal.SIGTERM)
                    node.proc.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    node.kill()
            for pid in [node.proc.pid, *left]:  # whatever of it is left (workers that outlived their raylet)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


def make_cluster() -> Cluster:
    # Ray's socket paths must stay short: a temp dir under /tmp, not pytest's long tmp_path.
    return Cluster(root=Path(tempfile.mkdtemp(prefix="lmray-", dir="/tmp")), port=_free_port())
