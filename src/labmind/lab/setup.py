"""The task's `setup` command: run once per machine and protected-files digest, before the baseline."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable

from labmind.execute.prepared import with_interpreter
from labmind.paths import LabPaths


class SetupFailed(Exception):
    """The setup command exited with an error; the message names its log and shows the tail."""


def run_setup(cmd: str, paths: LabPaths, protected_digest: dict[str, str], note: Callable[..., None]) -> None:
    key = hashlib.sha256("\n".join([cmd, *sorted(protected_digest.values())]).encode()).hexdigest()
    marker = paths.root / f"setup-{key[:16]}.done"
    if marker.exists():
        return
    note("setup", f"running setup: {cmd}")
    log = paths.root / "setup.log"
    # The same `python` as runs and evaluators get: labmind's interpreter first on PATH.
    env = {**os.environ, "PATH": with_interpreter(os.environ.get("PATH", ""))}
    with log.open("wb") as out:
        proc = subprocess.run(["bash", "-c", cmd], cwd=paths.task_dir, stdout=out, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SetupFailed(f"the task's setup command failed (exit {proc.returncode}); see {log}:\n{tail}")
    marker.write_text(str(time.time()))
