from __future__ import annotations

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
