"""PreparedRunner (how both executors run a prepared run) with real subprocesses; the bwrap variants use a
real bubblewrap."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path

import pytest

from labmind.execute.base import Slot
from labmind.execute.prepared import EVAL_SEPARATOR, PreparedRunner, scrub_env
from labmind.execute.procs import find_by_token
from labmind.execute.sandbox import Sandbox

from .conftest import MODES, PY, Tree, alive, needs_bwrap

DAEMON = f"""{PY} - <<'PY'
import os, time
if os.fork() == 0:
    os.setsid()  # leaves the run's process group, like a daemon
    if os.fork() == 0:
        with open("gc.pid", "w") as f:
            f.write(str(os.getpid()))
        while True:
            with open("ticks", "a") as f:
                f.write(".")
            time.sleep(0.05)
    os._exit(0)
time.sleep(1000)
PY"""


def _env_of(log: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in log.splitlines() if "=" in line)


def test_scrub_env_drops_credentials() -> None:
    env = {
        "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x", "HF_TOKEN": "x", "GITHUB_TOKEN": "x",
        "AWS_REGION": "x", "MY_SECRET": "x", "DB_PASSWORD": "x", "GOOGLE_APPLICATION_CREDENTIALS": "x",
        "apikey": "x", "SEED": "3", "LR": "0.1", "TOKENIZER": "gpt2",
    }  # fmt: skip
    assert scrub_env(env) == {"SEED": "3", "LR": "0.1", "TOKENIZER": "gpt2"}


@pytest.mark.parametrize("mode", MODES)
def test_env_is_scrubbed(tree: Tree, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent")
    monkeypatch.setenv("LABMIND_TEST_PARENT_ONLY", "leak")
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "0")
    out = tree.run(mode, "env; echo score: 1", env={"SEED": "7", "ANTHROPIC_API_KEY": "sk-task"})
    env = _env_of(tree.log_text())
    assert out.status == "ok" and out.sandbox == mode
    assert "sk-" not in tree.log_text()
    assert "LABMIND_TEST_PARENT_ONLY" not in env
    assert env["SEED"] == "7"
    assert env["NCCL_NVLS_ENABLE"] == "0"
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # a CPU slot sees no GPU
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["LABMIND_RUN_TOKEN"]
    assert Path(env["HOME"]).is_absolute()


@pytest.mark.parametrize("mode", MODES)
def test_gpu_slot_sees_only_its_gpus(tree: Tree, mode: str) -> None:
    out = tree.run(mode, "echo CVD=$CUDA_VISIBLE_DEVICES; echo score: 1", slot=Slot(1, (2, 3)))
    assert out.status == "ok"
    assert "CVD=2,3" in tree.log_text()


def test_home_is_writable_scratch(tree: Tree) -> None:
    out = tree.run("none", 'echo hi > "$HOME/f" && cat "$HOME/f" && echo score: 1')
    assert out.status == "ok" and out.metric == 1.0


@pytest.mark.parametrize("mode", MODES)
def test_timeout_kills_tree_with_daemonized_grandchild(tree: Tree, mode: str) -> None:
    started = time.monotonic()
    spec_token = f"test-{uuid.uuid4().hex}"
    out = tree.run(mode, DAEMON, timeout_s=1.5, token=spec_token)
    elapsed = time.monotonic() - started
    assert out.status == "timed_out"
    assert out.exit_code is None and out.metric is None
    assert elapsed < 6
    assert out.seconds >= 1.5
    ticks = tree.task / "ticks"
    assert ticks.exists()  # the grandchild did run
    if mode == "none":  # inside bwrap the pid is in another namespace
        assert not alive(int((tree.task / "gc.pid").read_text()))
    assert find_by_token([spec_token]) == []
    size = ticks.stat().st_size
    time.sleep(0.3)
    assert ticks.stat().st_size == size  # nothing is writing any more


def test_daemon_of_a_successful_run_is_killed(tree: Tree) -> None:
    token = f"test-{uuid.uuid4().hex}"
    command = DAEMON.replace("time.sleep(1000)", "time.sleep(0.5); print('score: 1')")
    out = tree.run("none", command, token=token)
    assert out.status == "ok"
    assert not alive(int((tree.task / "gc.pid").read_text()))
    assert find_by_token([token]) == []


def test_sigterm_ignored_gets_sigkill_after_grace(tree: Tree) -> None:
    started = time.monotonic()
    out = tree.run("none", "trap '' TERM; sleep 100", timeout_s=0.5, grace_s=1.0)
    elapsed = time.monotonic() - started
    assert out.status == "timed_out"
    assert 1.4 <= elapsed < 5


def test_cancellation_kills_the_run(tree: Tree) -> None:
    token = f"test-{uuid.uuid4().hex}"
    spec = tree.spec(DAEMON, token=token)
    executor = PreparedRunner([Slot(0)], Sandbox("none"))

    async def scenario() -> None:
        task = asyncio.create_task(executor.run(spec, Slot(0)))
        for _ in range(600):  # up to 30 s on a loaded machine; it breaks as soon as the daemon is up
            await asyncio.sleep(0.05)
            if (tree.task / "gc.pid").exists():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not alive(int((tree.task / "gc.pid").read_text()))
    assert find_by_token([token]) == []


@pytest.mark.parametrize("mode", MODES)
def test_crash_reports_exit_code_and_tail(tree: Tree, mode: str) -> None:
    command = "for i in $(seq 1 100); do echo line$i; done; echo score: 1; echo boom >&2; exit 3"
    out = tree.run(mode, command)
    assert out.status == "crashed"
    assert out.exit_code == 3
    assert out.metric is None
    lines = out.log_tail.splitlines()
    assert lines[-1] == "boom"
    assert len(lines) == 40 and lines[0] == "line63"


def test_log_is_appended_and_tail_is_this_runs(tree: Tree) -> None:
    tree.log.parent.mkdir(parents=True)
    tree.log.write_text("score: 5\nearlier run\n")
    out = tree.run("none", "echo new")
    assert out.status == "no_metric"  # the earlier run's value does not count
    assert out.log_tail == "new"
    assert tree.log_text().startswith("score: 5\n")


def test_no_metric(tree: Tree) -> None:
    out = tree.run("none", "echo my_score: 1; echo scores: 2")
    assert out.status == "no_metric"
    assert out.exit_code == 0 and out.metric is None


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_bad_metric(tree: Tree, value: str) -> None:
    out = tree.run("none", f"echo score: {value}")
    assert out.status == "bad_metric"
    assert out.metric is None


def test_metric_repeated_takes_last_and_secondary_finite_only(tree: Tree) -> None:
    command = "echo score: 3; echo 'mem=10 tps: nan'; echo '{\"score\": 2.5}'"
    out = tree.run("none", command, secondary=("mem", "tps", "absent"))
    assert out.status == "ok"
    assert out.metric == 2.5
    assert out.flags == ("metric_repeated",)
    assert out.secondary == {"mem": 10.0}


def _write_evaluator(tree: Tree, value: float) -> Path:
    evaluator = tree.task / "eval.py"
    evaluator.write_text(f"print('evaluating'); print('score: {value}'); print('mem: 4')\n")
    return evaluator


def test_evaluator_metric_and_self_reported_mismatch(tree: Tree) -> None:
    _write_evaluator(tree, 1.0)
    out = tree.run("none", "echo score: 0.5; echo mem: 99", evaluate=f"{PY} eval.py", secondary=("mem",))
    assert out.status == "ok"
    assert out.metric == 1.0
    assert out.self_reported == 0.5
    assert out.flags == ("self_reported_mismatch",)
    assert out.secondary == {"mem": 4.0}  # the trusted value wins
    log = tree.log_text()
    assert log.index("score: 0.5") < log.index(EVAL_SEPARATOR) < log.index("evaluating")


def test_evaluator_matching_self_report_is_not_flagged(tree: Tree) -> None:
    _write_evaluator(tree, 1.0)
    out = tree.run("none", "echo score: 1.0000000001", evaluate=f"{PY} eval.py")
    assert out.status == "ok" and out.metric == 1.0
    assert out.self_reported == 1.0000000001
    assert out.flags == ()


def test_evaluator_only_source_of_metric(tree: Tree) -> None:
    (tree.task / "eval.py").write_text("print('no number here')\n")
    out = tree.run("none", "echo score: 0.1", evaluate=f"{PY} eval.py")
    assert out.status == "no_metric"
    assert out.self_reported == 0.1
    assert out.metric is None


def test_evaluator_failure_is_a_crash(tree: Tree) -> None:
    (tree.task / "eval.py").write_text("import sys; print('eval broke'); sys.exit(2)\n")
    out = tree.run("none", "echo score: 0.1", evaluate=f"{PY} eval.py")
    assert out.status == "crashed"
    assert out.exit_code == 2
    assert "evaluator_failed" in out.flags
    assert out.log_tail.splitlines()[-1] == "eval broke"


def test_evaluator_not_run_after_crash(tree: Tree) -> None:
    out = tree.run("none", "exit 1", evaluate="echo EVALUATED; echo score: 1")
    assert out.status == "crashed" and out.exit_code == 1
    assert "EVALUATED" not in tree.log_text()


# --- isolation (bubblewrap) -------------------------------------------------------------------------


@pytest.mark.sandbox
@needs_bwrap
def test_sandbox_writes(tree: Tree, tmp_path: Path) -> None:
    probe = f"labmind-probe-{uuid.uuid4().hex}"
    home_target = Path.home() / probe
    parent_target = tmp_path / probe  # outside the worktree (under /tmp, which is a tmpfs inside)
    tmp_target = Path("/tmp") / probe
    command = "; ".join([
        "echo inside > inside.txt && echo inside-ok",
        "echo x > ../root-level.txt && echo worktree-root-ok",
        f"echo x > {home_target} || echo home-denied",
        f"echo x > /usr/{probe} || echo usr-denied",
        f"echo x > {parent_target}; echo x > {tmp_target} && cat {tmp_target} && echo tmp-ok",
        "echo score: 1",
    ])  # fmt: skip
    out = tree.run("bwrap", command)
    log = tree.log_text()
    assert out.status == "ok" and out.sandbox == "bwrap"
    for marker in ("inside-ok", "worktree-root-ok", "home-denied", "usr-denied", "tmp-ok"):
        assert marker in log
    assert (tree.task / "inside.txt").read_text() == "inside\n"
    assert (tree.root / "root-level.txt").exists()
    assert not home_target.exists() and not Path(f"/usr/{probe}").exists()
    assert not parent_target.exists() and not tmp_target.exists()


@pytest.mark.sandbox
@needs_bwrap
def test_sandbox_protected_and_hidden(tree: Tree) -> None:
    protected = tree.task / "eval.py"
    protected.write_text("ORIGINAL\n")
    store = tree.root / ".labmind"
    store.mkdir()
    (store / "ledger.db").write_text("secret ledger")
    command = "; ".join([
        "echo hacked >> eval.py || echo append-denied",
        "rm -f eval.py || echo rm-denied",
        "mv eval.py moved.py || echo mv-denied",
        "ls -A ../.labmind | wc -l",
        "echo score: 1",
    ])  # fmt: skip
    out = tree.run("bwrap", command, protected=(protected,), hidden=(store,))
    log = tree.log_text().splitlines()
    assert out.status == "ok"
    assert {"append-denied", "rm-denied", "mv-denied"} <= set(log)
    assert "0" in log  # the hidden directory looks empty
    assert protected.read_text() == "ORIGINAL\n"
    assert (store / "ledger.db").read_text() == "secret ledger"


@pytest.mark.sandbox
@needs_bwrap
def test_sandbox_has_no_network(tree: Tree) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        probe = (
            f"{PY} -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            " print('connected')\nexcept OSError as e:\n print('refused', e)\"; echo score: 1"
        )
        assert tree.run("none", probe).status == "ok"
        assert tree.log_text().splitlines()[-2] == "connected"  # the probe itself works
        assert tree.run("bwrap", probe).status == "ok"
        assert tree.log_text().splitlines()[-2].startswith("refused")
        assert tree.run("bwrap", probe, network=True).status == "ok"
        assert tree.log_text().splitlines()[-2] == "connected"


def test_wall_clock_excludes_evaluation(tree: Tree) -> None:
    out = tree.run("none", "echo score: 1", evaluate="sleep 1; echo score: 1")
    assert out.status == "ok"
    assert out.seconds < 0.9


def test_a_multi_gpu_run_gets_its_devices_and_a_rendezvous(tree):
    command = 'echo "devices=$CUDA_VISIBLE_DEVICES nproc=$LABMIND_NPROC pet=$PET_NPROC_PER_NODE ' \
              'addr=$MASTER_ADDR port=$MASTER_PORT"; echo score: 1'
    outcome = tree.run("none", command, slot=Slot(0, gpus=(2, 3)))
    assert outcome.status == "ok"
    line = next(x for x in tree.log_text().splitlines() if x.startswith("devices="))
    fields = dict(part.split("=", 1) for part in line.split())
    assert fields["devices"] == "2,3" and fields["nproc"] == "2" and fields["pet"] == "2"
    assert fields["addr"] == "127.0.0.1" and 0 < int(fields["port"]) < 65536


def test_a_single_gpu_run_gets_no_rendezvous(tree):
    outcome = tree.run("none", 'echo "port=${MASTER_PORT:-none}"; echo score: 1', slot=Slot(0, gpus=(1,)))
    assert outcome.status == "ok" and "port=none" in tree.log_text()


def test_the_log_on_disk_is_live_while_the_run_goes_on(tree: Tree) -> None:
    """A quiet run's first line is in the log file while the run still runs (a GPU run's compilation can be
    silent for minutes: whoever watches the log must see its start, not an empty file)."""
    executor = PreparedRunner([Slot(0)], Sandbox("none"))
    spec = tree.spec(f"echo started; {PY} -c 'import time; time.sleep(60)'")

    async def scenario() -> str:
        task = asyncio.create_task(executor.run(spec, Slot(0)))
        seen = ""
        for _ in range(600):  # up to 30 s on a loaded machine
            await asyncio.sleep(0.05)
            seen = tree.log.read_text() if tree.log.exists() else ""
            if seen:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(scenario()) == "started\n"
