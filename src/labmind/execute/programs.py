"""Helper programs labmind starts outside runs (a command brain's program, the LLM brain's quick check): each
in its own process group with a harmless environment, and the whole group ended when labmind is done with it.

Runs themselves go through `labmind.execute.prepared` (limits, token sweeps, evaluation); these programs are
shorter-lived and need only the two pieces here.
"""

from __future__ import annotations

import os
import signal
import subprocess

from labmind.execute.prepared import with_interpreter
from labmind.execute.procs import signal_group

#: Variables kept in a scrubbed environment: enough to find programs and print text, nothing secret.
SAFE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TERM", "SHELL")
#: How long a program gets to exit after SIGTERM, and to be reaped after SIGKILL.
KILL_GRACE_S = 5.0


def scrubbed_env() -> dict[str, str]:
    """The caller's environment reduced to harmless variables (no keys, tokens, credentials)."""
    env = {k: v for k, v in os.environ.items() if k in SAFE_ENV or k.startswith("LC_")}
    env["PATH"] = with_interpreter(env.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
    return env


def kill_group(proc: subprocess.Popen[bytes], *, graceful: bool) -> None:
    """End the program's whole process group: SIGTERM first when it is still running (a chance to clean
    up), then SIGKILL, which also ends anything it left running in the background after a normal exit."""
    if graceful:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
