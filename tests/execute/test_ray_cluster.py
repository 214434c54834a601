"""The ray executor on a real local Ray cluster (a head plus worker nodes, logical GPUs): the same lab as the
local executor, exclusive devices for multi-GPU runs, a worker node killed mid-run, a lab process killed
and resumed. Slow: each node takes seconds to start on a small machine."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.toy import LABMIND, git, labmind, log, make_toy, wait_for
from lab.toy import lab_db as _db

from labmind.execute.procs import kill_by_token

from .raycluster import Cluster, make_cluster, ray_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.ray]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-lm"

#: Prints the devices and rendezvous labmind gave it, then a loss from the seed (deterministic).
DEVICES_TRAIN = """import os, random, time
print("devices", os.environ.get("CUDA_VISIBLE_DEVICES"), "nproc", os.environ.get("LABMIND_NPROC"),
      "port", os.environ.get("MASTER_PORT"), flush=True)
time.sleep({sleep})
print(f"loss: {{1.0 + random.Random(int(os.environ['SEED'])).gauss(0, 0.01):.6f}}")
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ray_or_skip()
    c = make_cluster()
    try:
        c.start("head", gpus=0, cpus=0, head=True)
        c.start("a", gpus=4, cpus=1)
        yield c
    finally:
        c.stop()


def _gpu_toy(root: Path, *, gpus: int, sleep: float) -> Path:
    task = make_toy(root)
    toml = (task / "labmind.toml").read_text().replace('timeout = "30s"', f'timeout = "60s"\ngpus = {gpus}')
    (task / "labmind.toml").write_text(toml)
    (task / "train.py").write_text(DEVICES_TRAIN.format(sleep=sleep))
    git(task, "commit", "-qam", "gpu toy")
    return task


def _events(task: Path, kind: str) -> list[str]:
    return [r["message"] for r in _db(task).execute("SELECT message FROM events WHERE kind = ?", (kind,))]


def test_the_same_lab_gives_the_same_results_on_ray_as_locally(cluster: Cluster, tmp_path: Path) -> None:
    """Which proposal comes first depends on brain threads, so the labs are compared by what is determined:
    the baseline, and every (code, seed) both labs ran gives the same metric."""
    results = {}
    for executor in ("local", "ray"):
        task = make_toy(tmp_path / executor)
        extra = ["--executor", "ray", "--ray-address", cluster.address] if executor == "ray" else ["--slots", "1"]
        labmind("run", str(task), "--plain", "--max-experiments", "2", "--sandbox", "none", "--brain-network",
                "--brain", f"command:python brains/write.py counter {tmp_path / ('counter-' + executor)}", *extra,
                timeout=600)
        db = _db(task)
        results[executor] = (
            [(r["id"], r["kind"], r["verdict"], r["metric"]) for r in log(task) if r["kind"] == "baseline"],
            {(r["diff"], r["seed"]): r["metric"] for r in db.execute(
                "SELECT e.diff, r.seed, r.metric FROM runs r JOIN experiments e ON e.id = r.experiment_id "
                "WHERE r.status = 'done'")})
    assert results["ray"][0] == results["local"][0]
    common = results["ray"][1].keys() & results["local"][1].keys()
    assert len(common) >= 4, "the baseline's runs and at least one candidate's"
    assert all(results["ray"][1][k] == results["local"][1][k] for k in common)


def test_tiny_lm_runs_through_the_ray_executor_with_its_trusted_evaluator(cluster: Cluster, tmp_path: Path) -> None:
    task = tmp_path / "tiny-lm"
    shutil.copytree(EXAMPLE, task, ignore=shutil.ignore_patterns(".labmind"))
    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "tiny-lm")
    labmind("run", str(task), "--plain", "--max-experiments", "1", "--executor", "ray", "--ray-address",
            cluster.address, timeout=900)
    runs = [dict(r) for r in _db(task).execute("SELECT * FROM runs")]
    assert runs and all(r["status"] == "done" and r["outcome"] == "ok" for r in runs)
    for run in runs:  # the log came back to the lab host, with the evaluator's part
        text = Path(run["log_path"]).read_text()
        assert "labmind: trusted evaluation" in text and "val_bpb:" in text
    done = _events(task, "run_done")
    assert done and all(re.search(r" on \S+ node [0-9a-f]{8}$", m) for m in done), done
    worktrees = task / ".labmind" / "worktrees"
    assert not worktrees.exists() or not any(worktrees.iterdir()), "no checkout of a run on the lab host"


def test_multi_gpu_runs_get_exclusive_devices_and_a_rendezvous(cluster: Cluster, tmp_path: Path) -> None:
    task = _gpu_toy(tmp_path / "task", gpus=2, sleep=2.0)
    labmind("run", str(task), "--plain", "--max-experiments", "2", "--sandbox", "none", "--brain",
            "command:python brains/write.py noop", "--executor", "ray", "--ray-address", cluster.address,
            "--slots", "2", timeout=600)
    runs = [dict(r) for r in _db(task).execute("SELECT * FROM runs WHERE status = 'done'")]
    seen = []
    for run in runs:
        m = re.search(r"devices (\S+) nproc (\S+) port (\S+)", Path(run["log_path"]).read_text())
        assert m is not None
        devices = set(m.group(1).split(","))
        assert len(devices) == 2 and m.group(2) == "2" and m.group(3).isdigit()
        seen.append((run["started_at"], run["ended_at"], devices))
    overlapping = 0
    for i, (s1, e1, d1) in enumerate(seen):
        for s2, e2, d2 in seen[i + 1:]:
            if s1 < e2 and s2 < e1:
                overlapping += 1
                assert not d1 & d2, "runs at the same time never share a device"
    assert overlapping >= 1, "with two slots some runs overlap"


def test_a_worker_node_dying_mid_run_requeues_the_run_once_and_the_lab_waits_for_workers(tmp_path: Path) -> None:
    ray_or_skip()
    c = make_cluster()
    proc = None
    try:
        c.start("head", gpus=0, cpus=0, head=True)
        victim = c.start("b", gpus=1)
        task = _gpu_toy(tmp_path / "task", gpus=1, sleep=6.0)
        proc = subprocess.Popen([*LABMIND, "run", str(task), "--plain", "--max-experiments", "0", "--sandbox",
                                 "none", "--executor", "ray", "--ray-address", c.address],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: _db(task).execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] >= 1,
                 timeout=180, interval=0.2)
        time.sleep(2.0)  # the run is under way on node b
        lost = _db(task).execute("SELECT id, token FROM runs WHERE status = 'running'").fetchone()
        victim.kill()
        wait_for(lambda: _events(task, "paused"), timeout=120, interval=0.2)
        assert "no live node with GPU=1" in _events(task, "paused")[0]
        c.start("c", gpus=1)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        runs = {r["id"]: dict(r) for r in _db(task).execute("SELECT * FROM runs")}
        assert runs[lost["id"]]["status"] == "interrupted"
        assert "slot_lost" in runs[lost["id"]]["flags"]
        again = [r for r in runs.values() if r["requeued_from"] == lost["id"]]
        assert len(again) == 1 and again[0]["status"] == "done" and again[0]["outcome"] == "ok"
        baseline_runs = [r for r in runs.values() if r["status"] == "done"]
        assert len(baseline_runs) == 3  # exactly the baseline's runs, none twice
        assert _events(task, "resumed")
        kill_by_token([lost["token"]])  # its process outlived node b on this shared machine
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        c.stop()


def test_a_killed_lab_resumes_on_ray_without_losing_or_duplicating_runs(cluster: Cluster, tmp_path: Path) -> None:
    task = _gpu_toy(tmp_path / "task", gpus=1, sleep=4.0)
    proc = subprocess.Popen([*LABMIND, "run", str(task), "--plain", "--max-experiments", "3", "--sandbox", "none",
                             "--brain", "command:python brains/write.py noop", "--executor", "ray",
                             "--ray-address", cluster.address, "--slots", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: _db(task).execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0] >= 1
             and _db(task).execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] >= 1,
             timeout=180, interval=0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    db = _db(task)
    done = {r["id"]: r["metric"] for r in db.execute("SELECT * FROM runs WHERE status = 'done'")}
    running = {r["id"]: r["token"] for r in db.execute("SELECT * FROM runs WHERE status = 'running'")}
    assert running
    resumed = labmind("resume", str(task), "--plain", timeout=600)
    db = _db(task)
    after = {r["id"]: dict(r) for r in db.execute("SELECT * FROM runs")}
    assert all(after[i]["metric"] == m and after[i]["status"] == "done" for i, m in done.items())
    for run_id in running:
        assert after[run_id]["status"] == "interrupted"
        assert [r["status"] for r in after.values() if r["requeued_from"] == run_id] == ["done"]
    keys = [(r["experiment_id"], r["purpose"], r["seed"]) for r in after.values() if r["status"] == "done"]
    assert len(keys) == len(set(keys)), "no run was done twice"
    assert "requeued" in resumed.stdout
    assert not _alive(list(running.values()))


def _alive(tokens: list[str]) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if any(f"LABMIND_RUN_TOKEN={t}".encode() in env for t in tokens if t):
                found.append(int(pid))
    return found
