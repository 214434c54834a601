"""What runs on a Ray worker: the cached repository, the task's setup, one run, and what goes back.

Nothing here reads the lab host's files. The code arrives as a git bundle of the lab's starting commit (an
object in Ray's object store, fetched only by a worker host whose cache lacks that commit) plus each run's
patch; the cache lives in `$LABMIND_WORKER_CACHE` or `~/.cache/labmind/workers`, one bare repository per
starting commit, shared by the worker processes of the host under a file lock. The run itself goes through
`materialise.run_request` exactly as on the lab host: sandbox, scrubbed environment, limits, trusted
evaluation, protected-file digests. Its log (and held-out log) and any artifacts asked for go back as bytes
in the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import io
import os
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from labmind.execute.base import RunOutcome, RunRequest, Slot
from labmind.execute.cgroups import Cgroups, find_cgroups
from labmind.execute.materialise import Checkouts, run_request
from labmind.execute.prepared import PreparedRunner, with_interpreter
from labmind.execute.procs import kill_by_token
from labmind.execute.sandbox import default_hidden, resolve_sandbox
from labmind.workspace import git as gitops

#: Where a bundle carries the lab's starting commit: `<BUNDLE_REF>/<commit>` (see ray_executor.make_bundle).
BUNDLE_REF = "refs/labmind-ship"


@dataclass(frozen=True)
class WorkerResult:
    outcome: RunOutcome
    log: bytes
    holdout_log: bytes | None
    artifacts: bytes | None  # a tar of the declared artifacts, when the request asked for them


#: Per worker process: commits made from patches, by repository (runs of one experiment reuse its commit).
_MADE: dict[Path, dict[tuple[str, str], str]] = {}


@functools.cache
def _cgroups() -> Cgroups | None:
    """This worker process's cgroups for runs, looked for once."""
    return find_cgroups()


def cache_root() -> Path:
    return Path(os.environ.get("LABMIND_WORKER_CACHE") or Path.home() / ".cache" / "labmind" / "workers")


@contextlib.contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """One holder at a time among this host's worker processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_repo(base: str, fetch_bundle: Callable[[], bytes], root: Path | None = None) -> Path:
    """This host's bare repository holding `base`, made from the bundle the first time only."""
    root = root or cache_root()
    repo = root / f"repo-{base[:20]}.git"
    if (repo / "labmind-ready").exists():
        return repo
    with host_lock(root / f"repo-{base[:20]}.lock"):
        if (repo / "labmind-ready").exists():
            return repo
        gitops.force_rmtree(repo)
        repo.mkdir(parents=True)
        gitops.git(repo, "init", "-q", "--bare")
        with tempfile.NamedTemporaryFile(dir=root, suffix=".bundle") as f:
            f.write(fetch_bundle())
            f.flush()
            # A bundle is read through git's `file` transport, which labmind's hardened config turns off.
            gitops.git(repo, "-c", "protocol.file.allow=always", "fetch", "-q", f.name,
                       f"+{BUNDLE_REF}/*:{BUNDLE_REF}/*")
        if not gitops.has_commit(repo, base):
            raise gitops.GitError(f"the bundle shipped by the lab host does not hold commit {base}")
        (repo / "labmind-ready").write_text(str(time.time()))
    return repo


def ensure_setup(command: str, key: str, repo: Path, base: str, subdir: str, root: Path | None = None) -> None:
    """Run the task's setup once on this host per key (command + protected digest), in a checkout of the
    starting commit kept for it (as the lab host runs it in the task directory); a failure raises with the
    log's tail."""
    root = root or cache_root()
    marker = root / f"setup-{key[:16]}.done"
    if marker.exists():
        return
    with host_lock(root / f"setup-{key[:16]}.lock"):
        if marker.exists():
            return
        checkout = root / f"setup-{key[:16]}"
        if not checkout.exists():
            gitops.add_worktree(repo, checkout, base)
        workdir = checkout / subdir if subdir else checkout
        log = root / f"setup-{key[:16]}.log"
        env = {**os.environ, "PATH": with_interpreter(os.environ.get("PATH", ""))}
        with log.open("wb") as out:
            proc = subprocess.run(["bash", "-c", command], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                  env=env)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the task's setup command failed on worker {socket.gethostname()} "
                               f"(exit {proc.returncode}); see {log} there:\n{tail}")
        marker.write_text(str(time.time()))


def setup_key(command: str, protected_digest: dict[str, str]) -> str:
    return hashlib.sha256("\n".join([command, *sorted(protected_digest.values())]).encode()).hexdigest()


def execute_on_worker(request: RunRequest, slot: Slot, sandbox_mode: str, fetch_bundle: Callable[[], bytes],
                      setup: str | None, where: str, root: Path | None = None) -> WorkerResult:
    """One run request on this host (the body of the Ray task; testable without Ray)."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    repo = cached_repo(request.change.base, fetch_bundle, root)
    if setup:
        ensure_setup(setup, setup_key(setup, request.protected_digest), repo, request.change.base, request.subdir,
                     root)
    sandbox, _ = resolve_sandbox(sandbox_mode)  # type: ignore[arg-type]
    runner = PreparedRunner([slot], sandbox, cgroups=_cgroups())
    scratch = Path(tempfile.mkdtemp(prefix=f"run-{request.run_id}-", dir=root))
    try:
        log = scratch / "logs" / "run.log"
        back = scratch / "artifacts" if request.bring_back is not None else None
        # Hidden here: this cache (it holds every committed file) and whatever of the lab host's list exists
        # on this host too (when a worker shares the lab's machine).
        hidden = (*default_hidden(root), *(p for p in request.hidden if os.path.lexists(p)))
        checkouts = Checkouts(repo, scratch / "worktrees", made=_MADE.setdefault(repo, {}))
        # The lab's compiler caches live on this host, one folder per lab start (base commit).
        cache = request.cache and replace(request.cache, folder=root / "compile-cache" / request.change.base[:16])
        outcome = asyncio.run(run_request(replace(request, bring_back=back, cache=cache), slot, runner, checkouts,
                                          hidden=tuple(hidden), log_path=log))
        holdout = log.with_name(log.name + ".holdout")
        return WorkerResult(outcome=replace(outcome, where=where), log=_read(log),
                            holdout_log=_read(holdout) if holdout.exists() else None,
                            artifacts=_tar(back) if back is not None and back.exists() else None)
    finally:
        gitops.force_rmtree(scratch)


def kill_tokens(tokens: list[str]) -> int:
    """Kill this host's processes of the given runs (a lost lab's, or a cancelled run's)."""
    return kill_by_token(tokens)


def unpack_artifacts(data: bytes, dest: Path) -> None:
    """The artifacts a worker sent back, written under dest (regular files only, no path leaves dest)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(dest, filter="data")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=path.relative_to(directory).as_posix())
    return buffer.getvalue()
