from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from labmind.execute import sandbox as sandbox_mod
from labmind.execute.sandbox import Sandbox, SandboxUnavailable, resolve_sandbox

from .conftest import needs_bwrap


def _wrap(sandbox: Sandbox, tmp_path: Path, **overrides: object) -> list[str]:
    wt = tmp_path / "wt"
    (wt / "task").mkdir(parents=True, exist_ok=True)
    (wt / "task" / "eval.py").write_text("")
    (tmp_path / "store").mkdir(exist_ok=True)
    kwargs: dict = {
        "workdir": wt / "task",
        "writable": [wt],
        "readonly": [wt / "task" / "eval.py"],
        "hidden": [tmp_path / "store", wt / "task" / "eval.py", tmp_path / "absent"],
        "gpus": False,
        "network": False,
        "env": {"A": "1"},
    }
    kwargs.update(overrides)
    return sandbox.wrap(["bash", "-c", "true"], **kwargs)


def _index(argv: list[str], *window: str) -> int:
    for i in range(len(argv) - len(window) + 1):
        if argv[i : i + len(window)] == list(window):
            return i
    raise AssertionError(f"{window} not in {argv}")


def test_none_returns_argv_unchanged(tmp_path: Path) -> None:
    assert _wrap(Sandbox("none"), tmp_path) == ["bash", "-c", "true"]


def test_bwrap_argv_order_and_options(tmp_path: Path) -> None:
    argv = _wrap(Sandbox("bwrap"), tmp_path)
    wt, store, protected = str(tmp_path / "wt"), str(tmp_path / "store"), str(tmp_path / "wt/task/eval.py")
    assert argv[-4:] == ["--", "bash", "-c", "true"]
    # Later mounts cover earlier ones: root, /tmp tmpfs, writable worktree, protected file, masks.
    order = [
        _index(argv, "--ro-bind", "/", "/"),
        _index(argv, "--tmpfs", "/tmp"),
        _index(argv, "--bind", wt, wt),
        _index(argv, "--ro-bind", protected, protected),
        _index(argv, "--tmpfs", store),
    ]
    assert order == sorted(order)
    from labmind.execute.sandbox import _empty_file

    assert _index(argv, "--ro-bind", str(_empty_file()), protected) > order[3]
    assert _index(argv, "--dev", "/dev") > 0
    assert "--dev-bind" not in argv and "--share-net" not in argv
    assert str(tmp_path / "absent") not in argv
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--proc"):
        assert flag in argv
    assert _index(argv, "--clearenv") < _index(argv, "--setenv", "A", "1")
    assert _index(argv, "--chdir", str(tmp_path / "wt/task")) > 0


def test_bwrap_gpu_and_network_options(tmp_path: Path) -> None:
    argv = _wrap(Sandbox("bwrap"), tmp_path, gpus=True, network=True)
    assert _index(argv, "--dev-bind", "/dev", "/dev") < _index(argv, "--tmpfs", "/dev/shm")
    assert "--share-net" in argv
    assert ["--dev", "/dev"] not in [argv[i : i + 2] for i in range(len(argv))]


def test_resolve_none_warns() -> None:
    sandbox, warning = resolve_sandbox("none")
    assert sandbox.name == "none"
    assert warning is not None and "NOT isolated" in warning


def test_auto_falls_back_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "_probe_bwrap", lambda: "bwrap is not installed")
    sandbox, warning = resolve_sandbox("auto")
    assert sandbox.name == "none"
    assert warning is not None and "NOT isolated" in warning and "not installed" in warning


def test_bwrap_mode_raises_when_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "_probe_bwrap", lambda: "bwrap is not installed")
    with pytest.raises(SandboxUnavailable, match="not installed"):
        resolve_sandbox("bwrap")
    with pytest.raises(ValueError):
        resolve_sandbox("docker")  # type: ignore[arg-type]


@pytest.mark.sandbox
@needs_bwrap
def test_auto_uses_working_bwrap() -> None:
    sandbox, warning = resolve_sandbox("auto")
    assert sandbox.name == "bwrap" and warning is None
    assert sandbox.isolation[-2:] == ("--cap-drop", "ALL")  # verified from inside by the probe
    assert resolve_sandbox("bwrap") == (sandbox, None)


def test_gpu_runs_get_only_their_own_device_nodes(tmp_path: Path) -> None:
    from labmind.execute.sandbox import _devices

    assert _devices(False) == ["--dev", "/dev"]
    assert _devices(True)[:3] == ["--dev-bind", "/dev", "/dev"]
    node = tmp_path / "nvidia7"
    node.write_text("")
    argv = _devices((str(node),))
    assert argv[:2] == ["--dev", "/dev"]  # a fresh /dev, not the host's
    assert ["--dev-bind", str(node), str(node)] == argv[-3:]
    assert "/dev/nvidia0" not in argv or Path("/dev/nvidia0") == node


def test_nested_masks_are_made_outermost_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lab = home / "repo" / ".labmind"
    wt = lab / "worktrees" / "run-1"
    wt.mkdir(parents=True)
    argv = Sandbox("bwrap").wrap(["true"], workdir=wt, writable=[wt], readonly=[], hidden=[lab, home],
                                 gpus=False, network=False, env={})
    home_mask = _index(argv, "--tmpfs", str(home))
    lab_mask = _index(argv, "--tmpfs", str(lab))
    assert home_mask < lab_mask < _index(argv, "--bind", str(wt), str(wt))
    assert _index(argv, "--remount-ro", str(home)) < _index(argv, "--remount-ro", str(lab))


# -- issue 10: capabilities, host sockets, the worktree's .git link ------------------------------------


def test_bwrap_argv_drops_capabilities_and_protects_the_git_link(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    (wt / "task").mkdir(parents=True)
    (wt / ".git").write_text("gitdir: /repo/.git/worktrees/wt\n")
    argv = Sandbox("bwrap", ("--unshare-user", "--disable-userns", "--cap-drop", "ALL")).wrap(
        ["true"], workdir=wt / "task", writable=[wt], readonly=[], hidden=[], gpus=False, network=False, env={})
    at = _index(argv, "--unshare-all")
    assert argv[at + 1 : at + 5] == ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    link = str(wt / ".git")
    assert _index(argv, "--bind", str(wt), str(wt)) < _index(argv, "--ro-bind", link, link)
    if Path("/run").is_dir():
        assert _index(argv, "--tmpfs", "/run") < _index(argv, "--remount-ro", "/run")


def test_tmp_and_shm_are_bounded_when_bwrap_can(tmp_path: Path) -> None:
    argv = _wrap(Sandbox("bwrap", tmpfs_size=True), tmp_path, tmp_size=1 << 30)
    assert _index(argv, "--size", str(1 << 30), "--tmpfs", "/tmp") > 0
    assert _index(argv, "--size", str(1 << 30), "--tmpfs", "/dev/shm") > 0
    assert "--size" not in _wrap(Sandbox("bwrap", tmpfs_size=False), tmp_path, tmp_size=1 << 30)


def test_host_sockets_are_found(tmp_path: Path) -> None:
    from labmind.execute.hostview import bound_sockets, host_hidden, mounted_sockets

    net = tmp_path / "unix"
    net.write_text("Num RefCount Protocol Flags Type St Inode Path\n"
                   "0: 00000002 00000000 00010000 0001 01 1 /var/run/docker.sock\n"
                   "0: 00000002 00000000 00010000 0001 01 2 @/tmp/.X11-unix/X0\n"
                   "0: 00000003 00000000 00000000 0001 03 3\n"
                   "0: 00000002 00000000 00010000 0001 01 4 /srv/my app/agent.sock\n")
    assert bound_sockets(net) == {"/var/run/docker.sock", "/srv/my app/agent.sock"}
    info = tmp_path / "mountinfo"
    info.write_text("36 35 0:30 /docker.sock /run/docker\\040here.sock rw,nosuid - tmpfs tmpfs rw\n")
    assert mounted_sockets(info) == {"/run/docker here.sock"}
    visible = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(visible))
    try:
        assert visible.resolve() in host_hidden()
    finally:
        server.close()


@pytest.mark.sandbox
@needs_bwrap
def test_sandboxed_code_cannot_connect_to_host_sockets(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))  # visible to the sandbox (its /tmp is private)
    path = base / "host.sock"
    abstract = f"\0labmind-test-{os.getpid()}"
    servers = []
    for address in (str(path), abstract):
        server = socket.socket(socket.AF_UNIX)
        server.bind(address)
        server.listen()
        servers.append(server)
    probe = ("import socket, sys\nfor a in sys.argv[1:]:\n    s = socket.socket(socket.AF_UNIX)\n    try:\n"
             "        s.connect(a.replace('@', chr(0), 1)); print('connected', a)\n"
             "    except OSError as e:\n        print('refused', a, e)\n")
    try:
        sandbox, _ = resolve_sandbox("bwrap")
        argv = sandbox.wrap([sys.executable, "-c", probe, str(path), "@" + abstract[1:]], workdir=tmp_path,
                            writable=[tmp_path], readonly=[], hidden=[], gpus=False, network=False, env={})
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
    finally:
        for server in servers:
            server.close()
        shutil.rmtree(base, ignore_errors=True)
    assert [line.split()[0] for line in out.splitlines()] == ["refused", "refused"], out


@pytest.mark.sandbox
@needs_bwrap
def test_bwrap_mode_refuses_when_capabilities_cannot_be_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root keeps capabilities in a sandbox without a user namespace")
    # Isolation that keeps root's capabilities (what bwrap does for root unless told otherwise):
    monkeypatch.setattr(sandbox_mod, "USERNS_ISOLATION", ())
    monkeypatch.setattr(sandbox_mod, "ROOT_ISOLATION", ())
    sandbox_mod._bwrap_setup.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="could not drop every capability"):
            resolve_sandbox("bwrap")
        sandbox, warning = resolve_sandbox("auto")
        assert sandbox.name == "none" and warning is not None and "NOT isolated" in warning
    finally:
        sandbox_mod._bwrap_setup.cache_clear()


@pytest.mark.sandbox
@needs_bwrap
def test_no_capability_survives_inside(tmp_path: Path) -> None:
    sandbox, _ = resolve_sandbox("bwrap")
    argv = sandbox.wrap(["sh", "-c", "grep ^Cap /proc/self/status; mount -o remount,rw / && echo REMOUNTED; "
                         f"umount {tmp_path / 'store'} && echo UNMOUNTED"], workdir=tmp_path / "wt",
                        writable=[tmp_path / "wt"], readonly=[], hidden=[tmp_path / "store"], gpus=False,
                        network=False, env={})
    (tmp_path / "wt").mkdir()
    (tmp_path / "store").mkdir()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
    caps = dict(line.split(":") for line in out.splitlines() if line.startswith("Cap"))
    assert caps and all(int(v.strip(), 16) == 0 for v in caps.values()), out
    assert "REMOUNTED" not in out and "UNMOUNTED" not in out


def test_places_sandboxed_runs_cannot_see_are_named() -> None:
    from labmind.execute.sandbox import hidden_from_runs, tool_paths

    home = Path.home()
    if home.resolve() == Path("/") or home.resolve().is_relative_to(Path("/tmp").resolve()):
        pytest.skip("a home directory at / or under /tmp makes the two cases one")
    assert "private to each sandboxed run" in (hidden_from_runs(Path("/tmp/shards")) or "")
    assert "the sandbox hides" in (hidden_from_runs(home / "data" / "shards") or "")
    assert hidden_from_runs(home / ".cache" / "labmind" / "speedrun") is None  # bound back read-only
    assert hidden_from_runs(Path("/srv/data")) is None
    assert all(hidden_from_runs(bound / "data") is None for bound in tool_paths())  # bound back: visible
