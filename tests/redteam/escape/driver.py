"""The escape red team, played by whoever runs this file (root, or an ordinary user), with real labmind.

    python driver.py BASE      # BASE: an empty directory this user owns, outside /tmp (runs see /tmp private)

It plays every class of issue 10 against the real `labmind` command, real bubblewrap and real processes,
and writes BASE/results.json: one entry per case, {"klass", "case", "contained", "detail"}. A case is
contained when the attacker got nothing (as reported by the attack from inside, and as seen from outside:
marker files, the hidden data's text in anything labmind recorded, the host file, the store). The pytest
side (test_escape.py) runs this as root and as an ordinary user and asserts every case.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from labmind.execute.base import RunSpec, Slot
from labmind.execute.cgroups import find_cgroups
from labmind.execute.limits import RunLimits
from labmind.execute.prepared import PreparedRunner
from labmind.execute.sandbox import resolve_sandbox
from labmind.workspace.digests import DigestCapExceeded, DigestCaps, digest, verify_protected

HERE = Path(__file__).resolve().parent
LABMIND = [sys.executable, "-m", "labmind.cli.main"]
TOKEN = f"ANSWER-{uuid.uuid4().hex}"  # the hidden data: it must never show up in anything labmind keeps
RESULTS: list[dict[str, Any]] = []
MiB = 1 << 20


def record(klass: int, case: str, contained: bool, detail: str = "") -> None:
    RESULTS.append({"klass": klass, "case": case, "contained": bool(contained), "detail": detail[:500]})


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def labmind(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*LABMIND, *args], capture_output=True, text=True, timeout=timeout, env=env)


# ------------------------------------------------------------------------------------ host-side bait


def serve(path: str) -> socket.socket:
    """A UNIX socket server answering "pwned" to whoever connects (in a thread)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"pwned")
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return server


def bait_sockets(base: Path) -> tuple[list[str], list[Path]]:
    paths = [str(base / "visible" / "host.sock"), f"\0labmind-redteam-{os.getpid()}"]
    made = [base / "visible"]
    (base / "visible").mkdir()
    if os.access("/run", os.W_OK):
        paths.append(f"/run/labmind-redteam-{os.getpid()}.sock")
    cache = Path.home() / ".cache"
    if cache.is_dir() and os.access(cache, os.W_OK):  # a tool folder bound back read-only into the sandbox
        folder = cache / f"labmind-redteam-{os.getpid()}"
        folder.mkdir()
        made.append(folder)
        paths.append(str(folder / "s.sock"))
    for path in paths:
        serve(path)
    return paths, made


# ------------------------------------------------------------------------------------------- the task

TOML = """[task]
name = "escape"
editable = ["train.py"]
protected = ["attacks.py", "redteam.json", "data/*"]

[run]
command = "python3 train.py"
timeout = "60s"
hide = ["secret/*"]

[metric]
name = "score"
goal = "maximize"

[noise]
baseline_runs = 2
confirm_seeds = 2
"""


def make_task(root: Path, config: dict[str, Any]) -> Path:
    root.mkdir(parents=True)
    shutil.copy(HERE / "attacks.py", root / "attacks.py")
    (root / "redteam.json").write_text(json.dumps({**config, "task_dir": str(root), "git_dir": str(root / ".git"),
                                                   "lab_dir": str(root / ".labmind"),
                                                   "store": str(root / ".labmind" / "lab.db")}))
    (root / "train.py").write_text("import attacks\nattacks.main('run')\n")
    (root / "labmind.toml").write_text(TOML)
    (root / "secret").mkdir()
    (root / "secret" / "answer.txt").write_text(TOKEN + "\n")
    (root / "data").mkdir()
    (root / "data" / "keep.txt").write_text("protected\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "escape task")
    return root


def redteam_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("REDTEAM "):]) for line in text.splitlines() if line.startswith("REDTEAM ")]


def klass_of(case: str) -> int:
    if "caps" in case or "umount" in case or "remount" in case or "userns" in case or case in (
            "read_store", "write_host_file"):
        return 2
    if case.startswith("socket"):
        return 3
    if "hidden data" in case:
        return 4
    return 1


# ---------------------------------------------------------------------------------- the lab, sandboxed


def sandboxed_lab(base: Path, config: dict[str, Any]) -> None:
    task = make_task(base / "task", config)
    lab = task / ".labmind"
    run = labmind("run", str(task), "--brain", "command:python3 attacks.py brain", "--max-experiments", "1",
                  "--slots", "1", "--sandbox", "bwrap", "--plain")
    record(2, "lab runs under --sandbox bwrap", run.returncode == 0, run.stdout[-400:] + run.stderr[-400:])
    # What the attacks saw from inside: every run (baseline) and the brain's transcript.
    seen = ""
    for log in sorted(lab.glob("runs/*/*.log")):
        seen += log.read_text(errors="replace")
    transcripts = "".join(p.read_text(errors="replace") for p in lab.glob("transcripts/*"))
    lines = redteam_lines(seen) + redteam_lines(transcripts)
    for line in lines:
        record(klass_of(line["case"]), line["case"], not line["escaped"], line["detail"])
    record(2, "the attacks ran inside the sandbox", len(lines) >= 20, f"{len(lines)} attack reports")
    # From outside: the host file, the hidden data in anything labmind recorded.
    record(2, "host file outside the worktree untouched", not Path(config["host_file"]).exists())
    stored = labmind("log", str(task), "--json").stdout + labmind("show", "2", str(task), "--json").stdout
    record(4, "hidden data absent from the store (idea titles, reasons)", TOKEN not in stored)
    record(4, "hidden data absent from run logs and brain transcripts", TOKEN not in seen + transcripts)
    # Class 5: the brain made the run print -1e308.
    shown = json.loads(labmind("show", "2", str(task), "--json").stdout or "{}")
    record(5, "-1e308 is a bad_metric with its reason", shown.get("verdict") == "bad_metric"
           and "1e+150" in (shown.get("reason") or ""), f"{shown.get('verdict')}: {shown.get('reason')}")
    resumed = labmind("resume", str(task), "--plain")
    record(5, "the lab resumes after the poison value", resumed.returncode == 0, resumed.stderr[-400:])
    for verb in (["status", str(task), "--json"], ["log", str(task)], ["show", "2", str(task)],
                 ["report", str(task)], ["export", str(task), "--what", "runs", "--out", "-"]):
        out = labmind(*verb)
        record(5, f"`labmind {verb[0]}` works on the lab", out.returncode == 0, out.stderr[-300:])


def unsandboxed_git(base: Path, config: dict[str, Any]) -> None:
    """Without a sandbox the brain can rewrite the worktree's git metadata at will: labmind's own git
    calls must still run nothing of it."""
    task = make_task(base / "task-git", config)
    run = labmind("run", str(task), "--brain", "command:python3 attacks.py brain-git", "--max-experiments", "1",
                  "--slots", "1", "--sandbox", "none", "--plain")
    transcripts = "".join(p.read_text(errors="replace") for p in (task / ".labmind").glob("transcripts/*"))
    replaced = [line for line in redteam_lines(transcripts) if "replaces" in line["case"]]
    record(1, "(without a sandbox) the brain did rewrite the .git link", bool(replaced and replaced[0]["escaped"]),
           run.stdout[-300:])
    marks = sorted(p.name for p in Path(config["mark"]).parent.glob("*"))
    record(1, "no git hook, fsmonitor or filter ran on the host", not marks, f"marker files: {marks}")
    shown = json.loads(labmind("show", "2", str(task), "--json").stdout or "{}")
    record(1, "the rewritten worktree was judged, not trusted", shown.get("verdict") == "rejected",
           f"{shown.get('verdict')}: {shown.get('reason')}")


# --------------------------------------------------------------------------- class 6: resource limits


def executor_cases(base: Path) -> None:
    sandbox, _ = resolve_sandbox("bwrap")
    cgroups = find_cgroups()
    record(6, "limits enforced by " + (cgroups.describe().split(" (")[0] if cgroups else "rlimits and the watchdog"),
           True)
    executor = PreparedRunner([Slot(0)], sandbox, grace_s=0.5, cgroups=cgroups)
    work = base / "limits"
    py = os.path.realpath(sys.executable)

    def run(name: str, command: str, limits: RunLimits, **spec: Any) -> tuple[str, str, float]:
        root = work / name
        (root / "data").mkdir(parents=True)
        (root / "data" / "keep.txt").write_text("protected\n")
        log = work / f"{name}.log"
        started = time.monotonic()
        outcome = asyncio.run(executor.run(RunSpec(
            run_id=1, command=command, workdir=root, writable=root, log_path=log, timeout_s=60, metric="score",
            token=f"redteam-{uuid.uuid4().hex}", limits=limits, protected=(root / "data" / "keep.txt",), **spec),
            Slot(0)))
        return outcome.status, log.read_text(errors="replace"), time.monotonic() - started

    status, log, took = run("memory", f"{py} -c \"import time; x = bytearray(512 << 20); time.sleep(30)\"",
                            RunLimits(memory=128 * MiB))
    record(6, "a memory hog is killed (crashed, memory limit named)", status == "crashed" and took < 20
           and "([run] memory)" in log, f"{status} after {took:.1f}s")
    bomb = (f"{py} -c \"import os, time\nfor _ in range(300):\n    if os.fork() == 0:\n        time.sleep(30)\n"
            "        os._exit(0)\ntime.sleep(30)\"")
    status, log, took = run("fork", bomb, RunLimits(processes=50))
    record(6, "a fork bomb is stopped (crashed, process limit named)", status == "crashed" and took < 20
           and "([run] processes)" in log, f"{status} after {took:.1f}s")
    status, log, took = run("file", "head -c 3000000 /dev/zero > big.bin && echo score: 1", RunLimits(file_size=MiB))
    record(6, "a file over file_size stops the run", status == "crashed" and "([run] file_size)" in log, status)
    flood = f"{py} -c \"import sys\nwhile True: sys.stdout.write('x' * 4096)\""
    status, log, took = run("flood", flood, RunLimits(log_size=MiB))
    size = (work / "flood.log").stat().st_size
    record(6, "an endless log is cut at log_size", status == "crashed" and size < MiB + 200
           and "([run] log_size)" in log, f"{status}, log {size} bytes after {took:.1f}s")
    # Digests: what a run leaves in a protected folder is never hashed blindly.
    status, _, _ = run("sparse", "truncate -s 16G data/huge.bin && ln -s / data/root && echo score: 1",
                       RunLimits(file_size=64 << 30))
    expected = {"data/keep.txt": digest(work / "sparse", ["data/keep.txt"])["data/keep.txt"]}
    started = time.monotonic()
    problem = verify_protected(work / "sparse", ["data/*"], expected, DigestCaps.after_changes(1, 10))
    took = time.monotonic() - started
    record(6, "a 16 GiB sparse file and a symlink to / in a protected folder are rejected at once",
           bool(problem) and "gained a new file" in (problem or "") and took < 2.0, f"{problem!r} in {took:.2f}s")
    started = time.monotonic()
    try:
        digest(work / "sparse", ["data/*"], DigestCaps(max_bytes=256 * MiB))
        capped = "no cap hit"
    except DigestCapExceeded as exc:
        capped = str(exc)
    took = time.monotonic() - started
    record(6, "hashing stops at its size cap with a named reason", "more than 268,435,456 bytes (the cap)" in capped
           and took < 60, f"{capped} in {took:.1f}s")
    # A sparse artifact stays sparse in the evaluator's checkout.
    pristine = work / "pristine"
    (pristine / "data").mkdir(parents=True)
    status, log, _ = run("artifact", "truncate -s 8G ckpt.bin && echo ok",
                         RunLimits(file_size=64 << 30), evaluate="echo score: $(stat -c %b ckpt.bin)",
                         eval_workdir=pristine, eval_writable=pristine, artifacts=("ckpt.bin",))
    blocks = [line for line in log.splitlines() if line.startswith("score:")]
    record(6, "an 8 GiB sparse artifact is copied sparse", status == "ok" and blocks and
           int(float(blocks[-1].split()[1])) < 1024, f"{status}: {blocks}; log ends: {log[-600:]!r}")


# ------------------------------------------------------------------------------------ class 7: inputs


def bad_inputs(base: Path) -> None:
    task = base / "bad"
    task.mkdir()
    (task / "train.py").write_text("print('score: 1')\n")
    (task / "labmind.toml").write_text(TOML.replace('hide = ["secret/*"]', 'hide = ["/etc/shadow"]'))
    git(task, "init", "-q", "-b", "main")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "bad")
    out = labmind("run", str(task), "--max-experiments", "1", "--plain")
    record(7, "an absolute [run] hide glob is refused before anything is written", out.returncode == 1
           and "[run] hide" in out.stderr and not (task / ".labmind").exists(), out.stderr[-300:])


def main() -> None:
    base = Path(sys.argv[1]).resolve()
    (base / "marks").mkdir()
    sockets, made = bait_sockets(base)
    config = {"host_file": str(base / "host-file.txt"), "sockets": sockets, "mark": str(base / "marks" / "mark"),
              "secret_rel": "secret/answer.txt", "secret_repo_path": "secret/answer.txt"}
    try:
        for step in (sandboxed_lab, unsandboxed_git):
            step(base, config)
        executor_cases(base)
        bad_inputs(base)
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        for path in sockets:
            if path.startswith("/run/"):
                Path(path).unlink(missing_ok=True)
    (base / "results.json").write_text(json.dumps({"uid": os.getuid(), "cases": RESULTS}, indent=1))


if __name__ == "__main__":
    main()
