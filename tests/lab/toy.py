"""A toy task in a real git repository, and helpers to drive the real `labmind` command on it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

LABMIND = [sys.executable, "-m", "labmind.cli.main"]

TRAIN = """import math, os, random, time
LR = 0.001
WIDTH = 8
SLEEP = {sleep}
rng = random.Random(int(os.environ.get("SEED", "0")))
time.sleep(SLEEP)
loss = (math.log10(LR) + 2) ** 2 + 0.5 / WIDTH + rng.gauss(0, 0.01)
print(f"loss: {{loss:.5f}}")
"""

# A command brain that rewrites train.py into one of several behaviours (committed in the task repo, so
# it is visible inside the sandbox).
WRITE_BRAIN = r'''
import sys
from pathlib import Path

mode = sys.argv[1]
arg = sys.argv[2] if len(sys.argv) > 2 else ""
body = {
    "good": (
        "import os, random\nr = random.Random(int(os.environ['SEED']))\nprint(f'loss: {0.001 + r.gauss(0, 1e-4):.6f}')"
    ),
    "nometric": "print('training finished, forgot to report')",
    "nan": "print('loss: nan')",
    "hang": "import time\nprint('starting', flush=True)\ntime.sleep(600)",
    "crash": "import sys\nprint('about to fail', flush=True)\nsys.exit(3)",
    "escape_write": f"open({arg!r}, 'w').write('escaped')\nprint('loss: 0.001')",
    "read": f"print(open({arg!r}).read())\nprint('loss: 0.001')",
    "escape_net": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)\nprint('loss: 0.001')",
    "repeat": "print('loss: 0.001')\nprint('loss: 0.001')",
    "runtime_protected": "open('guard.txt', 'w').write('tampered')\nprint('loss: 0.001')",
}.get(mode)
if mode == "ladder":
    # One step better than its parent, but only on seed 0 (the lab's first baseline seed, where candidates are
    # screened); on any other seed it is worse than the baseline. Fresh-seed verification must undo the line.
    old = Path("train.py").read_text()
    step = int(old.split("STEP = ")[1].split()[0]) + 1 if "STEP = " in old else 1
    Path("train.py").write_text(
        f"import os, random\nSTEP = {step}\nseed = int(os.environ['SEED'])\nr = random.Random(seed)\n"
        "loss = (0.9 - 0.1 * STEP if seed == 0 else 1.2) + r.gauss(0, 0.01)\nprint(f'loss: {loss:.6f}')\n")
elif mode == "counter":
    # Better than every earlier proposal on every seed, whatever its parent: a counter in the file `arg` (outside
    # the worktree, so the brain runs with --sandbox none).
    counter = Path(arg)
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    Path("train.py").write_text(
        f"import os, random\nN = {n}\nr = random.Random(int(os.environ['SEED']))\n"
        "print(f'loss: {0.5 - 0.05 * N + r.gauss(0, 0.01):.6f}')\n")
elif mode == "protected":
    Path("guard.txt").write_text("tampered\n")
elif mode == "outside":
    Path("notes.md").write_text("not editable\n")
elif mode == "noop":
    pass
else:
    Path("train.py").write_text(body + "\n")
print(f"brain wrote {mode}")
'''

TOML = """[task]
name = "toy"
editable = ["train.py"]
protected = ["guard.txt"]

[run]
command = "python train.py"
timeout = "{timeout}"

[metric]
name = "loss"
goal = "minimize"
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def make_toy(root: Path, *, sleep: float = 0.0, timeout: str = "30s") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN.format(sleep=sleep))
    (root / "labmind.toml").write_text(TOML.format(timeout=timeout))
    (root / "guard.txt").write_text("original\n")
    (root / "brains").mkdir(exist_ok=True)
    (root / "brains" / "write.py").write_text(WRITE_BRAIN)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "toy task")
    return root


def labmind(*args: str, cwd: Path | None = None, timeout: float = 300, check: bool = True,
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["COLUMNS"] = "200"
    proc = subprocess.run([*LABMIND, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"labmind {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def status(task: Path) -> dict:
    return json.loads(labmind("status", str(task), "--json").stdout)


def log(task: Path) -> list[dict]:
    return json.loads(labmind("log", str(task), "--json").stdout)


def show(task: Path, exp: int) -> dict:
    return json.loads(labmind("show", str(exp), str(task), "--json").stdout)


def lab_db(task: Path) -> sqlite3.Connection:
    """The task's lab store, read-only, for tests that watch a lab running in another process."""
    conn = sqlite3.connect(f"file:{task / '.labmind' / 'lab.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def wait_for(predicate: Callable[[], object], timeout: float = 120.0, interval: float = 0.1) -> None:
    """Poll until `predicate()` is true; a store still being created (locked, no tables yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(interval)
    raise AssertionError("condition not reached in time")
