"""The command's own edges: --version, a fast --help, exit codes, a busy port, Ctrl-C, the stop summary."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from labmind.cli.main import COMMANDS, load_command

from .toy import LABMIND, labmind, make_toy


def test_version() -> None:
    proc = labmind("--version")
    assert re.fullmatch(r"labmind \S+\n", proc.stdout), proc.stdout


def test_help_imports_none_of_the_heavy_libraries() -> None:
    code = ("import sys, runpy; sys.argv = ['labmind', '--help']\n"
            "try:\n    runpy.run_module('labmind.cli.main', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('scipy', 'numpy', 'optuna', 'fastapi', 'uvicorn', 'labmind.lab.loop',"
            " 'labmind.judge') if m in sys.modules)\nprint('HEAVY', heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:]
    assert "reset" in proc.stdout and "guard-report" in proc.stdout  # every verb is still listed
    assert "--install-completion" in proc.stdout and "--version" in proc.stdout


def test_the_listed_help_is_each_commands_own_first_line() -> None:
    for name, (_, _, summary) in COMMANDS.items():
        command = load_command(name)
        own = " ".join((command.help or "").split("\n\n")[0].split())
        assert own == summary, f"{name}: COMMANDS says {summary!r}, the command says {own!r}"


def test_malformed_numbers_exit_2_alike(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    for args in (["run", "{t}", "--slots", "0"], ["run", "{t}", "--lines", "0"], ["resume", "{t}", "--slots", "0"],
                 ["check", "{t}", "--slots", "0"], ["ui", "{t}", "--port", "99999"],
                 ["agent", "start", "{t}", "--slots", "0"]):
        proc = labmind(*(str(task) if a == "{t}" else a for a in args), check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_unknown_brain_lists_the_llm_specs(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    proc = labmind("run", str(task), "--brain", "gpt5", "--plain", check=False)
    assert proc.returncode == 1
    for spec in ("knobs", "anthropic:MODEL", "openai:MODEL", "openai-compatible:MODEL@URL", "command:"):
        assert spec in proc.stderr, proc.stderr


def test_ui_on_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("check", str(task), "--plain")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = labmind("ui", str(task), "--port", str(port), check=False, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in proc.stderr
    assert f"--port {port + 1}" in proc.stderr
    assert "open http" not in proc.stdout  # no URL printed for a server that never started


def test_ctrl_c_exits_130_and_the_session_counts_the_interrupted_run(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task", sleep=30)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([*LABMIND, "run", str(task), "--plain"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    started = None
    for line in proc.stdout:
        if "run 1 of exp 1" in line:
            started = time.monotonic()
            break
    assert started is not None
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    duty = float(re.search(r"slot duty cycle (\d\.\d+)", out).group(1))  # type: ignore[union-attr]
    assert duty > 0.3, out  # before: 0.00 (the run in flight at the stop was never counted)


def test_stop_after_the_lab_stopped_itself_exits_0_saying_so(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    nothing = labmind("stop", str(task), check=False)
    assert nothing.returncode == 1 and "no lab in" in nothing.stderr
    labmind("run", str(task), "--max-experiments", "1", "--plain")  # ends by itself at its limit
    proc = labmind("stop", str(task))
    assert proc.returncode == 0 and "it has already stopped" in proc.stdout
