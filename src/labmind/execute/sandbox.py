"""Sandboxes for runs: bubblewrap (read-only root, writable worktree, no network) or none.

Under bubblewrap every sandboxed process runs without any capability, in a user namespace where the kernel
allows one, and cannot create further user namespaces. This matters most when labmind runs as root (as in
most containers): bubblewrap keeps a privileged caller's capabilities by default, and with CAP_SYS_ADMIN a
run could unmount the masks and remount the root read-write. The capabilities are checked from inside a
probe sandbox before the first use; `--sandbox bwrap` refuses to start when they cannot be dropped.
"""

from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from labmind.execute.hostview import host_hidden, rebound_config

SandboxMode = Literal["auto", "bwrap", "none"]

NOT_ISOLATED_WARNING = (
    "bubblewrap (bwrap) is not usable here: runs are NOT isolated — they can read and write your files "
    "and reach the network. Install bubblewrap (e.g. `apt install bubblewrap`) or allow unprivileged "
    "user namespaces to sandbox runs."
)


class SandboxUnavailable(RuntimeError):
    """The requested sandbox cannot run on this machine."""


#: Namespace and capability flags, strongest first. A user namespace also makes uid 0 inside the sandbox an
#: unprivileged user outside; `--disable-userns` stops the run from making a nested one (bwrap ≥ 0.8).
USERNS_ISOLATION = ("--unshare-user", "--disable-userns", "--cap-drop", "ALL")
#: Where user namespaces are turned off (sysctl, AppArmor): root's bwrap, or a setuid bwrap, still gives the
#: sandbox no capability (the probe checks that it really has none).
ROOT_ISOLATION = ("--cap-drop", "ALL")
_CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


@dataclass(frozen=True)
class BwrapSetup:
    """How bubblewrap isolates on this machine, as the probe found it."""

    isolation: tuple[str, ...]
    tmpfs_size: bool  # `--size` for tmpfs mounts (bwrap ≥ 0.8), used to bound /tmp and /dev/shm


def _capabilities(status: str) -> dict[str, int]:
    out = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in _CAP_FIELDS:
            out[key] = int(value.strip(), 16)
    return out


@functools.cache
def _bwrap_setup() -> BwrapSetup | str:
    """The strongest isolation bwrap manages here, verified from inside (every capability set empty), or
    why there is none. Cached: the answer does not change within a process."""
    binary = shutil.which("bwrap")
    if binary is None:
        return "bwrap is not installed"
    try:
        usage = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap failed to start: {exc}"
    attempts = [tuple(f for f in USERNS_ISOLATION if f != "--disable-userns" or f in usage)]
    if "--disable-userns" in attempts[0]:
        attempts.append(tuple(f for f in USERNS_ISOLATION if f != "--disable-userns"))
    attempts.append(ROOT_ISOLATION)
    problem = "bwrap failed"
    for isolation in attempts:
        argv = [binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all", *isolation,
                "--die-with-parent", "cat", "/proc/self/status"]  # fmt: skip
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bwrap failed to start: {exc}"
        if result.returncode != 0:
            problem = f"bwrap failed (exit {result.returncode}): {result.stderr.strip()[:500]}"
            continue
        caps = _capabilities(result.stdout)
        kept = [k for k in _CAP_FIELDS if caps.get(k, 1)]
        if kept:
            problem = f"bwrap could not drop every capability inside the sandbox ({', '.join(kept)} not empty)"
            continue
        return BwrapSetup(isolation=isolation, tmpfs_size="--size" in usage)
    return problem


def _probe_bwrap() -> str | None:
    """None when bwrap isolates here (namespaces and no capabilities), else why not."""
    setup = _bwrap_setup()
    return setup if isinstance(setup, str) else None


@dataclass(frozen=True)
class Sandbox:
    """Turns a command line into one that runs confined. `name` is "bwrap" or "none"; `isolation` holds the
    namespace and capability flags the probe verified (the strongest set when not probed)."""

    name: Literal["bwrap", "none"]
    isolation: tuple[str, ...] = ("--unshare-user", "--cap-drop", "ALL")
    tmpfs_size: bool = False

    def wrap(
        self,
        argv: list[str],
        *,
        workdir: Path,
        writable: list[Path],
        readonly: list[Path],
        hidden: list[Path],
        gpus: bool | Sequence[str],
        network: bool,
        env: dict[str, str],
        tmp_size: int | None = None,
    ) -> list[str]:
        """The argv to execute. For "none" it is argv itself; the caller passes env to the process.
        `tmp_size` bounds the sandbox's private /tmp and /dev/shm (bytes), where bwrap supports it."""
        if self.name == "none":
            return list(argv)
        tmp_size = tmp_size if self.tmpfs_size else None
        out = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/"]
        # GPUs need the host's /dev/nvidia* nodes; a fresh /dev/shm keeps shared memory private either way.
        out += _devices(gpus, tmp_size)
        out += ["--proc", "/proc", *(["--size", str(tmp_size)] if tmp_size else []), "--tmpfs", "/tmp"]
        # The host's sockets and secret files are masked like the caller's hidden paths (see hostview), except
        # where they lie inside a writable path: what a run makes in its own worktree is its own.
        mine = [w.resolve() for w in writable]
        hidden = [*hidden, *(h for h in host_hidden() if not any(h.is_relative_to(w) for w in mine))]
        # Order matters: later mounts cover earlier ones. After the /tmp tmpfs come, in order: masks of hidden
        # directories that contain a tool or writable path (the home directory, the lab's .labmind/ holding the
        # run's worktree), the tool paths bound back read-only, the writable binds, the protected files, and
        # last every other mask, so it also hides what lies inside bound-back or writable paths.
        tools = tool_paths()
        inside = [w.resolve() for w in writable] + tools
        # Shallowest first: a mask made inside another would be covered (and lost) by the outer one.
        outer = sorted({p.resolve() for p in hidden if any(w.is_relative_to(p.resolve()) for w in inside)},
                       key=lambda p: len(p.parts))
        for path in outer:
            out += _mask(path)
        for path in tools:
            out += ["--ro-bind", str(path), str(path)]
        for path in writable:
            out += ["--bind", str(path.resolve()), str(path.resolve())]
            # A worktree's `.git` link stays labmind's: read-only, so it cannot be replaced or redirected.
            link = path.resolve() / ".git"
            if link.exists() and not link.is_symlink():
                out += ["--ro-bind", str(link), str(link)]
        for path in readonly:
            if path.exists():
                out += ["--ro-bind", str(path.resolve()), str(path.resolve())]
        for path in hidden:
            if path.resolve() not in outer:
                out += _mask(path.resolve())
        for path in rebound_config([h.resolve() for h in hidden]):
            out += ["--ro-bind", str(path), str(path)]
        # Masks are empty tmpfs mounts: make them read-only too (mounts bound inside keep their own mode), so
        # a write "outside the worktree" fails loudly instead of vanishing into a private directory.
        for path in sorted({p.resolve() for p in hidden}, key=lambda p: len(p.parts)):
            if path.is_dir():
                out += ["--remount-ro", str(path)]
        out += ["--unshare-all", *self.isolation]
        if network:
            out += ["--share-net"]
        out += ["--die-with-parent", "--new-session", "--clearenv"]
        for key, value in env.items():
            out += ["--setenv", key, value]
        out += ["--chdir", str(workdir.resolve()), "--", *argv]
        return out




#: Credential stores in a home directory. Runs and brains see the home directory only through the
#: tool directories bound back (see tool_paths); these stay masked even inside those.
SECRET_HOME_PATHS = (
    ".ssh", ".aws", ".azure", ".gnupg", ".netrc", ".docker", ".kube", ".config", ".anthropic", ".claude",
    ".claude.json", ".codex", ".git-credentials", ".pypirc", ".npmrc", ".cargo/credentials",
    ".cargo/credentials.toml", ".kaggle", ".vault-token", ".huggingface", ".cache/huggingface/token",
    ".bash_history", ".zsh_history", ".python_history", ".local/share/keyrings", ".password-store",
)


def default_hidden(lab_dir: Path) -> list[Path]:
    """What sandboxed code never sees: the lab's own directory, the home directory (tools bound back)
    and, within what is bound back, known credential stores."""
    home = Path.home()
    return [lab_dir, home, *(home / p for p in SECRET_HOME_PATHS)]


def hidden_from_runs(path: Path) -> str | None:
    """Why sandboxed runs would not see `path` (data a task reads from outside its worktree), or None when
    they do: each run's /tmp is its own, and the home directory is hidden except what `tool_paths` binds
    back read-only (~/.cache, and the folders holding the interpreter, PATH entries and site-packages)."""
    resolved, home = path.resolve(), Path.home().resolve()
    if any(resolved.is_relative_to(bound) for bound in tool_paths()):
        return None
    if resolved.is_relative_to(Path("/tmp").resolve()):
        return f"{path} lies under /tmp, which is private to each sandboxed run"
    if resolved.is_relative_to(home) and not resolved.is_relative_to(home / ".cache"):
        return f"{path} lies in the home directory, which the sandbox hides (all but ~/.cache and the tools' folders)"
    return None


def tool_paths() -> list[Path]:
    """Directories sandboxed code needs although they live where the sandbox hides things: the
    interpreter, PATH entries and the user site-packages under /tmp (private inside the sandbox) or
    under the home directory (hidden), plus ~/.cache for datasets and model caches. Bound back
    read-only. Under the home directory the whole top-level folder is bound (pyenv's shims need
    ~/.pyenv), minus SECRET_HOME_PATHS."""
    tmp, home = Path("/tmp"), Path.home().resolve()
    candidates = {Path(sys.prefix), Path(sys.base_prefix), Path(site.getusersitepackages()), home / ".cache"}
    candidates.update(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    out: set[Path] = set()
    for path in candidates:
        try:
            resolved = path.resolve()
            if not resolved.exists():
                continue
        except OSError:  # a PATH entry this user may not even look into: nothing of it to bind
            continue
        if resolved.is_relative_to(tmp) and resolved != tmp:
            out.add(resolved)
        elif resolved.is_relative_to(home) and resolved != home:
            top = home / resolved.relative_to(home).parts[0]
            if top.name not in SECRET_HOME_PATHS:
                out.add(top)
    return sorted(out)


#: Device nodes every CUDA process needs besides its GPUs' own /dev/nvidia<minor>.
NVIDIA_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset",
                        "/dev/nvidia-caps")


def _devices(gpus: bool | Sequence[str], shm_size: int | None = None) -> list[str]:
    """A minimal /dev; for GPU runs plus either the given GPU nodes only (the run cannot reach other
    slots' GPUs whatever it sets CUDA_VISIBLE_DEVICES to) or, when the nodes are unknown, all of /dev.
    /dev/shm is always a private tmpfs, bounded by `shm_size` when given."""
    size = ["--size", str(shm_size)] if shm_size else []
    if not gpus:
        return ["--dev", "/dev", *size, "--tmpfs", "/dev/shm"] if size else ["--dev", "/dev"]
    if gpus is True:
        return ["--dev-bind", "/dev", "/dev", *size, "--tmpfs", "/dev/shm"]
    out = ["--dev", "/dev", *([*size, "--tmpfs", "/dev/shm"] if size else [])]
    for node in [*NVIDIA_CONTROL_NODES, *gpus]:
        if Path(node).exists():
            out += ["--dev-bind", node, node]
    return out


@functools.cache
def _empty_file() -> Path:
    """An empty, read-only regular file to mount over hidden files. (/dev/null would not do: bind mounts
    of a device node are unreadable where the mount is `nodev`.)"""
    fd, name = tempfile.mkstemp(prefix="labmind-empty-")
    os.close(fd)
    os.chmod(name, 0o444)
    return Path(name)


def _mask(path: Path) -> list[str]:
    # A directory is replaced by an empty tmpfs, a file by an empty file; absent paths need no mask.
    if path.is_dir():
        return ["--tmpfs", str(path)]
    if path.exists():
        return ["--ro-bind", str(_empty_file()), str(path)]
    return []


def resolve_sandbox(mode: SandboxMode = "auto") -> tuple[Sandbox, str | None]:
    """The sandbox to use and a warning for people (or None).

    "auto" uses bwrap when it works and otherwise falls back to "none" with a warning that runs are
    not isolated; "bwrap" raises SandboxUnavailable when bwrap does not work; "none" never isolates.
    """
    if mode == "none":
        return Sandbox("none"), "sandbox disabled (--sandbox none): runs are NOT isolated"
    if mode not in ("auto", "bwrap"):
        raise ValueError(f"sandbox mode must be auto, bwrap or none, got {mode!r}")
    problem = _probe_bwrap()
    if problem is None:
        setup = _bwrap_setup()
        assert isinstance(setup, BwrapSetup)
        return Sandbox("bwrap", setup.isolation, setup.tmpfs_size), None
    if mode == "bwrap":
        raise SandboxUnavailable(
            f"sandbox 'bwrap' requested but {problem}. Install bubblewrap and allow unprivileged user "
            "namespaces, or pass --sandbox auto / --sandbox none to run without isolation."
        )
    return Sandbox("none"), f"{NOT_ISOLATED_WARNING} ({problem})"
