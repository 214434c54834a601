"""Git operations through the git CLI: worktrees per experiment, commits, diffs, refs for kept work.

Experiment worktrees hold untrusted content: brains and runs write them. Git reads a worktree's `.git` link
to find its repository, and a repository's config can name programs to run (`core.fsmonitor`, hooks, filter
and diff drivers). So no git command here ever trusts the worktree for either: `worktree_git` passes the
administrative directory labmind's own repository keeps for that worktree (`.git/worktrees/<id>`, found
from the repository's side, never from the worktree's `.git`) and the worktree as `--work-tree`, and every
command runs with config that turns off fsmonitor, hooks, external diff and textconv programs, submodule
recursion and transports. Filter and diff drivers can then only be ones the user's own (trusted) config
defines.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Ref-changing git commands on one repository must not overlap (index.lock / worktree metadata races).
_REPO_LOCK = threading.Lock()
_IDENTITY = ["-c", "user.name=labmind", "-c", "user.email=labmind@localhost", "-c", "commit.gpgsign=false"]
#: Config that keeps every git command labmind runs from executing programs named by repository content.
_HARDENED = [
    "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.untrackedCache=false",
    "-c", "protocol.allow=never", "-c", "submodule.recurse=false", "-c", "diff.submodule=short",
    "-c", "status.submoduleSummary=false", "-c", "gc.auto=0", "-c", "maintenance.auto=false",
    "-c", "core.sshCommand=false", "-c", "credential.helper=",
]  # fmt: skip
#: Variables that would point git somewhere else than the paths labmind names.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
                      "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES",
                      "GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_EXTERNAL_DIFF", "GIT_CONFIG_PARAMETERS",
                      "GIT_CONFIG_COUNT")


class GitError(Exception):
    pass


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS and not k.startswith("GIT_CONFIG_")}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    env.update(extra or {})
    return env


def _run(cwd: Path, args: tuple[str, ...], *, check: bool, env: dict[str, str] | None = None,
         prefix: tuple[str, ...] = ()) -> str:
    proc = subprocess.run(["git", *_IDENTITY, *_HARDENED, *prefix, *args], cwd=cwd, capture_output=True, text=True,
                          env=_env(env))
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """git in a directory labmind trusts: the user's repository or task directory. For an experiment
    worktree, use `worktree_git`."""
    return _run(cwd, args, check=check)


_COMMON_DIRS: dict[Path, Path] = {}


def common_dir(root: Path) -> Path:
    """The repository's own git directory (shared by all its worktrees), from the repository's side."""
    root = root.resolve()
    if root not in _COMMON_DIRS:
        found = Path(git(root, "rev-parse", "--git-common-dir").strip())
        _COMMON_DIRS[root] = (found if found.is_absolute() else root / found).resolve()
    return _COMMON_DIRS[root]


def worktree_git_dir(root: Path, worktree: Path) -> Path:
    """The administrative directory `root`'s repository keeps for `worktree` (`.git/worktrees/<id>`).

    Found by reading the repository's own records (each holds the path of its worktree's `.git`), so a
    worktree whose `.git` was replaced or redirected cannot choose which repository git opens."""
    want = os.path.realpath(worktree)
    admin_root = common_dir(root) / "worktrees"
    try:
        entries = list(os.scandir(admin_root))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        try:
            recorded = (Path(entry.path) / "gitdir").read_text().strip()
        except OSError:
            continue
        # Compare the directory holding the recorded `.git`, never the `.git` itself: it may now be a symlink.
        if recorded and os.path.realpath(os.path.dirname(recorded)) == want:
            return Path(entry.path)
    raise GitError(f"{worktree} is not a worktree of the repository at {root} (labmind made none there). "
                   "Remove it, or run `git worktree prune` in the repository.")


def worktree_git(root: Path, worktree: Path, *args: str, check: bool = True) -> str:
    """git on an experiment worktree of the repository at `root`, immune to what the worktree holds (see the
    module docstring)."""
    git_dir = worktree_git_dir(root, worktree)
    return _run(worktree, args, check=check, prefix=(f"--git-dir={git_dir}", f"--work-tree={worktree}"))


@dataclass(frozen=True)
class RepoInfo:
    root: Path  # the repository's top level
    subdir: str  # the task directory relative to root ("" when the task is the whole repo)
    head: str  # the commit experiments start from


def repo_info(task_dir: Path) -> RepoInfo:
    task_dir = task_dir.resolve()
    if not task_dir.is_dir():
        raise GitError(f"{task_dir} is not a directory")
    proc = subprocess.run(["git", *_HARDENED, "rev-parse", "--show-toplevel"], cwd=task_dir, capture_output=True,
                          text=True, env=_env())
    if proc.returncode != 0:
        raise GitError(f"{task_dir} is not inside a git repository. Run `labmind init {task_dir}` to make it one.")
    root = Path(proc.stdout.strip()).resolve()
    head = subprocess.run(["git", *_HARDENED, "rev-parse", "--verify", "HEAD"], cwd=root, capture_output=True,
                          text=True, env=_env())
    if head.returncode != 0:
        raise GitError(f"{root} has no commits yet. Commit your code (or run `labmind init {task_dir}`).")
    subdir = task_dir.relative_to(root).as_posix()
    return RepoInfo(root=root, subdir="" if subdir == "." else subdir, head=head.stdout.strip())


def dirty_paths(info: RepoInfo) -> list[str]:
    """Uncommitted changes (tracked or untracked, not ignored) under the task directory."""
    out = git(info.root, "status", "--porcelain", "-z", "--untracked-files=all", "--", info.subdir or ".")
    entries = out.split("\0")
    paths, i = [], 0
    while i < len(entries):
        entry = entries[i]
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename/copy entry is followed by its original name
                i += 1
        i += 1
    return paths


def exclude_lab_dir(root: Path) -> None:
    """Keep `.labmind/` out of git without touching the user's .gitignore."""
    common = Path(git(root, "rev-parse", "--git-common-dir").strip())
    exclude = (common if common.is_absolute() else root / common) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    if ".labmind/" not in text.splitlines():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".labmind/\n")


def init_repo(path: Path) -> str:
    """`labmind init`: make a plain directory a git repository with one commit of its files."""
    path.mkdir(parents=True, exist_ok=True)
    if (path / ".git").exists():
        raise GitError(f"{path} is already a git repository")
    git(path, "init", "-q")
    exclude_lab_dir(path)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "--no-verify", "-m", "labmind init")
    return git(path, "rev-parse", "HEAD").strip()


def add_worktree(root: Path, path: Path, commit: str) -> None:
    with _REPO_LOCK:
        if os.path.lexists(path):
            remove_worktree_locked(root, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        git(root, "worktree", "add", "--detach", "--force", str(path), commit)


def remove_worktree(root: Path, path: Path) -> None:
    with _REPO_LOCK:
        remove_worktree_locked(root, path)


def remove_worktree_locked(root: Path, path: Path) -> None:
    # The files go first and git only prunes its records afterwards: `git worktree remove` would read the
    # worktree (its `.git` link among others), which sandboxed code may have rewritten.
    force_rmtree(path)
    git(root, "worktree", "prune", check=False)


def force_rmtree(path: Path) -> None:
    """Delete a tree that sandboxed code wrote: never following symlinks, and making directories it locked
    (mode 000) writable again so that an ordinary user can delete them."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return

    def retry(func, name, exc_info) -> None:  # type: ignore[no-untyped-def]
        error = exc_info[1]
        if not isinstance(error, PermissionError) and getattr(error, "errno", None) != errno.EACCES:
            if isinstance(error, FileNotFoundError):
                return
            raise error
        parent = os.path.dirname(name)
        for directory in (parent, name):
            st = os.lstat(directory) if os.path.lexists(directory) else None
            if st is not None and stat.S_ISDIR(st.st_mode):
                os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        func(name)

    shutil.rmtree(path, onerror=retry)
    if os.path.lexists(path):  # a directory made unreadable after the walk listed it: once more
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Snapshot:
    commit: str | None  # None when nothing changed
    diff: str
    changed: list[str]  # paths relative to the repository root
    #: Directories (repository-relative) holding a `.git` of their own: never committed (git would record
    #: them as gitlinks to commits that exist nowhere), and a change that adds one is rejected.
    nested_repos: list[str] = field(default_factory=list)


def snapshot(worktree: Path, base: str, message: str, *, root: Path) -> Snapshot:
    """Commit everything the brain changed, then make the worktree exactly that commit (ignored files
    too are removed, so a run executes precisely what the diff shows). `root` is the repository the
    worktree belongs to: git is pointed at its records for the worktree, never at the worktree's `.git`."""

    def wgit(*args: str) -> str:
        return worktree_git(root, worktree, *args)

    nested = nested_repositories(worktree)
    wgit("add", "-A", "--", ".", *(f":(exclude,literal){p}" for p in nested))
    # -z: names verbatim (no quoting of spaces or non-ASCII characters).
    changed = [p for p in wgit("diff", "--cached", "--name-only", "-z", "--no-renames", "--no-ext-diff", base)
               .split("\0") if p]
    commit = None
    diff = ""
    if changed:
        with _REPO_LOCK:
            wgit("commit", "-q", "--no-verify", "-m", message)
        commit = wgit("rev-parse", "HEAD").strip()
        diff = wgit("diff", "--no-renames", "--no-ext-diff", "--no-textconv", base, commit)
    wgit("clean", "-ffdxq")
    return Snapshot(commit=commit, diff=diff, changed=changed, nested_repos=nested)


def nested_repositories(worktree: Path) -> list[str]:
    """Directories below the worktree's top that hold a `.git` (a directory, or a file naming one)."""
    found = []
    for directory, dirs, files in os.walk(worktree):  # symlinked directories are listed, never entered
        if directory != str(worktree) and (".git" in dirs or ".git" in files):
            found.append(Path(directory).relative_to(worktree).as_posix())
            dirs.clear()  # what lies below belongs to that repository
            continue
        dirs[:] = [d for d in dirs if d != ".git"]
    return sorted(found)


def file_at(root: Path, commit: str, repo_path: str) -> str | None:
    """A file's text at a commit, or None when it did not exist there (or is not text)."""
    proc = subprocess.run(["git", *_HARDENED, "show", "--no-textconv", f"{commit}:{repo_path}"], cwd=root,
                          capture_output=True, env=_env())
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


def pin(root: Path, lab: str, experiment_id: int, commit: str) -> None:
    """Keep every experiment's commit reachable (so `git gc` never prunes one a run still needs)."""
    with _REPO_LOCK:
        git(root, "update-ref", f"refs/labmind/{lab}/exp/{experiment_id}", commit)


def keep(root: Path, lab: str, experiment_id: int, commit: str, *, best: bool) -> None:
    """Keep an experiment's commit reachable; the lab's best is the branch `labmind/<lab>`."""
    with _REPO_LOCK:
        git(root, "update-ref", f"refs/labmind/{lab}/kept/{experiment_id}", commit)
        if best:
            git(root, "update-ref", f"refs/heads/labmind/{lab}", commit)


def binary_diff(root: Path, base: str, commit: str) -> bytes:
    """The change from `base` to `commit` as a patch `git apply` can replay exactly (binary files, modes,
    symlinks), whatever the user's diff settings (prefixes, colours, renames)."""
    proc = subprocess.run(["git", *_HARDENED, "diff", "--binary", "--full-index", "--no-renames", "--no-color",
                           "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", base, commit],
                          cwd=root, capture_output=True, env=_env())
    if proc.returncode != 0:
        raise GitError(f"git diff {base} {commit} failed in {root}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def tree_of(root: Path, commit: str) -> str:
    return git(root, "rev-parse", "--verify", f"{commit}^{{tree}}").strip()


def has_commit(root: Path, sha: str) -> bool:
    proc = subprocess.run(["git", *_HARDENED, "cat-file", "-e", f"{sha}^{{commit}}"], cwd=root, capture_output=True,
                          env=_env())
    return proc.returncode == 0


def commit_patch(root: Path, base: str, patch: bytes, tree: str) -> str:
    """A commit of `base` with `patch` applied, made in the repository's object store only (a private index,
    no worktree involved), after checking that it gives exactly `tree`. Returns the new commit."""
    with tempfile.TemporaryDirectory(prefix="labmind-apply-") as tmp:
        index_env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        patch_file = os.path.join(tmp, "change.patch")
        with open(patch_file, "wb") as f:
            f.write(patch)
        _run(root, ("read-tree", base), check=True, env=index_env)
        if patch:
            _run(root, ("apply", "--cached", "--binary", "--whitespace=nowarn", patch_file), check=True, env=index_env)
        made = _run(root, ("write-tree",), check=True, env=index_env).strip()
        if made != tree:
            raise GitError(f"the patch on {base[:12]} gives tree {made[:12]}, not the expected {tree[:12]}: "
                           "the change did not arrive intact")
        return _run(root, ("commit-tree", made, "-p", base, "-m", "labmind run"), check=True).strip()
