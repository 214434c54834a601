"""What the host exposes that sandboxed code must never reach, whoever the lab belongs to.

A read-only bind of `/` still lets a process *connect* to any UNIX socket it can see (connect needs no
write access to the file system, only to the socket file), and a socket is a door to a process outside the
sandbox: Docker's or containerd's API (root on the host), D-Bus, systemd, an X server, an SSH agent. A
network namespace cuts abstract sockets and TCP, not pathname sockets. So the sandbox masks:

- `/run` (and `/var/run` when it is a directory of its own), where services keep their sockets;
- every pathname socket a process has bound in labmind's network namespace (`/proc/net/unix`), wherever
  it lives;
- every socket file mounted in from elsewhere (`/proc/self/mountinfo`), such as a Docker socket bound
  into a container, whose listener lives in another network namespace;
- files that hold host secrets readable by root (password hashes, SSH host keys).

Known gap, stated in the README: a socket file bound in another network namespace whose file lies on a
visible path outside `/run`, and one created after the sandbox started, are not found.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Masked for every sandboxed process: where services keep sockets, and secret files of the host.
HOST_HIDDEN = ("/run", "/var/run", "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/ssh")
#: Files under a masked directory that programs read through /etc symlinks (DNS resolution for network
#: brains, e.g. /etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf): bound back read-only.
REBOUND_CONFIG = ("/etc/resolv.conf",)


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040).
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def bound_sockets(proc_net_unix: Path = Path("/proc/net/unix")) -> set[str]:
    """Pathname sockets bound in this network namespace (abstract ones, `@name`, are cut by the sandbox's
    own network namespace)."""
    found: set[str] = set()
    try:
        lines = proc_net_unix.read_text(errors="replace").splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7].startswith("/"):
            found.add(fields[7])
    return found


def mounted_sockets(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[str]:
    """Socket files bind-mounted into this mount namespace (a Docker socket given to a container)."""
    found: set[str] = set()
    try:
        lines = mountinfo.read_text(errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            found.add(_unescape(fields[4]))
    return found


def host_hidden() -> list[Path]:
    """Paths to mask in every sandbox: HOST_HIDDEN (when present) and the host's socket files."""
    out = [Path(p) for p in HOST_HIDDEN if os.path.lexists(p) and not os.path.islink(p)]
    masked_dirs = [p for p in out if p.is_dir()]
    for path in sorted(bound_sockets() | mounted_sockets()):
        if not _is_socket(path):
            continue
        resolved = Path(os.path.realpath(path))
        if not any(resolved.is_relative_to(d) for d in masked_dirs):
            out.append(resolved)
    return out


def rebound_config(hidden: list[Path]) -> list[Path]:
    """REBOUND_CONFIG targets that a mask would otherwise take away (regular files only)."""
    out = []
    for name in REBOUND_CONFIG:
        target = Path(os.path.realpath(name))
        if target.is_file() and any(target.is_relative_to(h) for h in hidden if h.is_dir()):
            out.append(target)
    return out
