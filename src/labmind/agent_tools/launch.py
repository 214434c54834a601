"""Start an agent-driven lab in the background, and stop it.

`start_lab` launches the ordinary `labmind run --brain agent... --plain` as a detached process (its own
session, so it outlives the shell or MCP server that started it), logging to `.labmind/agent/lab.log`, and
returns once the lab holds its lock: from then on agents can ask it for work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labmind.agent_tools.ops import ToolsError, is_agent_brain
from labmind.brains.agent import (
    DEFAULT_CLAIM_TIMEOUT_S,
    DEFAULT_SUBMIT_TIMEOUT_S,
    agent_spec,
    parse_agent_spec,
    parse_timeout,
)
from labmind.brains.agent_inbox import inbox_dir
from labmind.paths import LabPaths
from labmind.store import Store
from labmind.store.lock import holder_pid

START_WAIT_S = 60.0
_LOG_TAIL = 3000


def _stored_brain(paths: LabPaths) -> str | None:
    lab = Store.peek_lab(paths.db)
    return str(lab.settings.get("brain")) if lab is not None else None


def brain_spec(paths: LabPaths, claim_timeout: str | None, submit_timeout: str | None) -> str:
    """The agent brain spec to run with: the lab's stored timeouts (or the defaults), changed by those given."""
    stored = _stored_brain(paths)
    claim, submit = DEFAULT_CLAIM_TIMEOUT_S, DEFAULT_SUBMIT_TIMEOUT_S
    if is_agent_brain(stored):
        assert stored is not None
        claim, submit = parse_agent_spec(stored)
    try:
        if claim_timeout is not None:
            claim = parse_timeout(claim_timeout)
    except ValueError as exc:
        raise ToolsError(f"--claim-timeout: {exc}; e.g. --claim-timeout 30m") from exc
    try:
        if submit_timeout is not None:
            submit = parse_timeout(submit_timeout)
    except ValueError as exc:
        raise ToolsError(f"--submit-timeout: {exc}; e.g. --submit-timeout 2h") from exc
    return agent_spec(claim, submit)


def run_argv(task_dir: Path, spec: str, options: dict[str, Any]) -> list[str]:
    argv = [sys.executable, "-m", "labmind.cli.main", "run", str(task_dir), "--brain", spec, "--plain"]
    for name, value in options.items():
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def start_lab(task_dir: Path, *, claim_timeout: str | None = None, submit_timeout: str | None = None,
              wait_s: float = START_WAIT_S, **options: Any) -> dict[str, Any]:
    """Launch the lab detached; `options` are `labmind run` options (slots, gpus, lines, max_experiments,
    budget, policy, sandbox, seed), None for "as stored / default"."""
    paths = LabPaths(task_dir.resolve())
    pid = holder_pid(paths.lock)
    if pid is not None:
        brain = _stored_brain(paths)
        hint = ("agents can use it now (`labmind agent next`)" if is_agent_brain(brain)
                else f"it uses the {brain} brain, which offers no work to agents")
        raise ToolsError(f"a lab is already running in {paths.task_dir} (pid {pid}); {hint}. To change how it runs, "
                         f"stop it first with `labmind stop {paths.task_dir}`.")
    if not (paths.task_dir / "labmind.toml").is_file() and not paths.db.exists():
        raise ToolsError(f"{paths.task_dir} has no labmind.toml and no lab yet; write one (see docs/task-file.md), "
                         "or create the lab with task flags: `labmind run --brain agent --edit ... --command ...`.")
    spec = brain_spec(paths, claim_timeout, submit_timeout)
    argv = run_argv(paths.task_dir, spec, options)
    log_path = inbox_dir(paths) / "lab.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        start = log.tell()
        log.write(f"--- labmind agent start, {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, cwd=paths.task_dir, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    # Reap it when it ends, in case the starter lives on (an MCP server), so it never lingers as a zombie.
    threading.Thread(target=proc.wait, name=f"reap-lab-{proc.pid}", daemon=True).start()
    deadline = time.monotonic() + wait_s
    state = "starting"
    while time.monotonic() < deadline:
        if holder_pid(paths.lock) == proc.pid:
            state = "running"
            break
        if proc.poll() is not None:
            tail = log_path.read_bytes()[start:].decode(errors="replace")[-_LOG_TAIL:]
            raise ToolsError(f"the lab exited at once (status {proc.returncode}):\n{tail.strip()}\nFix what it says, "
                             f"then run `labmind agent start {paths.task_dir}` again.")
        time.sleep(0.1)
    return {"pid": proc.pid, "state": state, "brain": spec, "log": str(log_path), "task_dir": str(paths.task_dir),
            "command": argv}


def stop_lab(task_dir: Path, *, wait_s: float = 60.0) -> dict[str, Any]:
    """Stop the running lab as `labmind stop` does: offers are withdrawn, running runs re-queued for resume."""
    paths = LabPaths(task_dir.resolve())
    pid = holder_pid(paths.lock)
    if pid is None:
        if paths.db.exists():  # it stopped by itself (limit, budget) or was stopped: nothing left to do
            return {"stopped": None, "already_stopped": True, "task_dir": str(paths.task_dir)}
        raise ToolsError(f"no lab in {paths.task_dir}; start one with `labmind agent start {paths.task_dir}`.")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if holder_pid(paths.lock) is None:
            return {"stopped": pid, "already_stopped": False, "task_dir": str(paths.task_dir)}
        time.sleep(0.2)
    raise ToolsError(f"lab process {pid} did not stop within {wait_s:g} s; it may be finishing a step. Ask again, "
                     f"or end it with `kill {pid}`.")
