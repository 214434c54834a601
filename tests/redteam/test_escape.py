"""The sandbox and bad-input red team (issue 10): every class, played as root and as an ordinary user.

`escape/driver.py` attacks labmind for real — a lab under `--sandbox bwrap` whose runs and command brain try
every escape in `escape/attacks.py`, a lab without a sandbox whose brain rewrites the worktree's git
metadata, runs that break each resource limit through the executor, a bad task file — and writes what
happened. It runs once as the user running pytest (root in CI) and once as uid 65534 (nobody), side by
side; each case below is then its own test, per identity.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from labmind.execute.sandbox import resolve_sandbox

DRIVER = Path(__file__).with_name("escape") / "driver.py"
NOBODY = 65534
SYSTEM_BINS = ("/usr/bin", "/usr/local/bin")
CHECKOUT = Path(__file__).resolve().parents[2]
#: Where the checkout is bind-mounted for uid 65534 when it cannot reach it where it is.
VISIBLE_CHECKOUT = Path(f"/var/tmp/labmind-redteam-checkout-{os.getpid()}")
#: Cases every identity must report contained, by class. Attack names come from escape/attacks.py.
EXPECTED = {
    1: ["run rewrites the worktree's .git link", "brain replaces the worktree's .git link",
        "(without a sandbox) the brain did rewrite the .git link", "no git hook, fsmonitor or filter ran on the host",
        "the rewritten worktree was judged, not trusted"],
    2: ["lab runs under --sandbox bwrap", "the attacks ran inside the sandbox", "caps_dropped", "umount_mask",
        "remount_root_rw", "nested_userns_unmount", "read_store", "write_host_file",
        "host file outside the worktree untouched"],
    3: ["socket {base}/visible/host.sock", "socket labmind-redteam-{pid}"],
    4: ["run reads hidden data (worktree copy)", "run reads hidden data (user's checkout)",
        "run reads hidden data (git history)", "run reads hidden data (git objects)",
        "brain reads hidden data (worktree copy)", "brain reads hidden data (user's checkout)",
        "brain reads hidden data (git history)", "brain reads hidden data (git objects)",
        "hidden data absent from the store (idea titles, reasons)",
        "hidden data absent from run logs and brain transcripts"],
    5: ["-1e308 is a bad_metric with its reason", "the lab resumes after the poison value",
        "`labmind status` works on the lab", "`labmind report` works on the lab", "`labmind show` works on the lab",
        "`labmind log` works on the lab", "`labmind export` works on the lab"],
    6: ["a memory hog is killed (crashed, memory limit named)", "a fork bomb is stopped (crashed, process limit named)",
        "a file over file_size stops the run", "an endless log is cut at log_size",
        "a 16 GiB sparse file and a symlink to / in a protected folder are rejected at once",
        "hashing stops at its size cap with a named reason", "an 8 GiB sparse artifact is copied sparse"],
    7: ["an absolute [run] hide glob is refused before anything is written"],
}
CASES = [(k, c) for k, cases in EXPECTED.items() for c in cases]


def _bwrap_or_skip() -> None:
    sandbox, warning = resolve_sandbox("auto")
    if sandbox.name != "bwrap":
        if os.environ.get("LABMIND_REQUIRE_BWRAP") == "1":
            pytest.fail(f"LABMIND_REQUIRE_BWRAP=1 but bubblewrap does not work here: {warning}")
        pytest.skip(f"bubblewrap does not work here: {warning}")


def _as_nobody() -> tuple[list[str], dict[str, str]] | str:
    """The command prefix that runs Python with labmind as uid 65534 (and the environment it needs), or why
    that is impossible here. The checkout's own interpreter may lie where that user cannot go (pyenv under
    /root): then a system Python of the same version with the checkout's packages on PYTHONPATH. A checkout
    under a directory that user cannot enter (a clone in /root) is bind-mounted, in a mount namespace of
    the driver's own, at a path it can."""
    if os.geteuid() != 0:
        return "the suite does not run as root, so it cannot switch to another user (it plays as itself)"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return "setpriv (util-linux) is not installed"
    become = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    checkout = CHECKOUT
    problems: list[str] = []
    attempts: list[tuple[list[str], Path]] = [([], checkout)]
    unshare = shutil.which("unshare")
    if unshare is not None:
        # `mount --bind CHECKOUT VISIBLE` in a private mount namespace, then the same as above.
        attempts.append(([unshare, "--mount", "--propagation", "private", "sh", "-c",
                          'mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(checkout),
                          str(VISIBLE_CHECKOUT)], VISIBLE_CHECKOUT))
    for outer, seen_at in attempts:
        found = _interpreter(outer + become, seen_at, problems)
        if found is not None:
            return found
    return f"uid {NOBODY} cannot run Python with this checkout's packages ({'; '.join(problems)})"


def _interpreter(prefix: list[str], seen_at: Path, problems: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """The first Python that, run through `prefix` as uid 65534, imports labmind from the checkout as it is
    seen at `seen_at` (and can start another Python, as labmind does for every command)."""
    def mapped(path: str) -> str:
        return str(seen_at / Path(path).relative_to(CHECKOUT)) if Path(path).is_relative_to(CHECKOUT) else path

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(CHECKOUT / "src")]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONPATH": os.pathsep.join(dict.fromkeys(mapped(p) for p in paths))}
    check = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import labmind, pydantic'], check=True)"
    candidates = [mapped(sys.executable), os.path.realpath(sys.executable), *(f"{d}/{version}" for d in SYSTEM_BINS)]
    for python in dict.fromkeys(candidates):
        if not os.path.exists(python) and not python.startswith(str(seen_at)):
            continue
        probe = subprocess.run([*prefix, python, "-c", check], capture_output=True, text=True, env=env,
                               timeout=120, check=False)
        if probe.returncode == 0:
            return [*prefix, python], env
        problems.append(f"{python}: {(probe.stderr.strip().splitlines() or [str(probe.returncode)])[-1]}")
    return None


def _play(prefix: list[str], env: dict[str, str], uid: int) -> dict:
    # Outside /tmp: runs see a private /tmp, and the bait and the host file must be visible to them.
    base = Path(tempfile.mkdtemp(prefix="labmind-redteam-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    home = base / "home"
    work = base / "work"
    for path in (home, work):
        path.mkdir()
        if os.geteuid() == 0:
            os.chown(path, uid, uid)
    if prefix:  # the other user gets a home of its own
        env = {**env, "HOME": str(home), **{k: v for k, v in os.environ.items() if k.startswith("LABMIND_")},
               "LABMIND_LIBRARY": str(home / "library.db")}  # the suite's own is in pytest's root-only folder
    driver = str(DRIVER) if not prefix or str(VISIBLE_CHECKOUT) not in prefix else \
        str(VISIBLE_CHECKOUT / DRIVER.relative_to(CHECKOUT))
    command = [*prefix, driver, str(work)] if prefix else [sys.executable, driver, str(work)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    try:
        results = json.loads((work / "results.json").read_text())
    except (OSError, ValueError):
        results = {"uid": uid, "cases": [], "error": proc.stdout[-3000:] + proc.stderr[-3000:]}
    results["base"] = str(work)
    shutil.rmtree(base, ignore_errors=True)
    return results


@pytest.fixture(scope="module")
def played() -> dict[str, dict]:
    _bwrap_or_skip()
    nobody = _as_nobody()
    with ThreadPoolExecutor(2) as pool:
        root = pool.submit(_play, [], dict(os.environ), os.geteuid())
        other = pool.submit(_play, *nobody, NOBODY) if isinstance(nobody, tuple) else None
        out = {"root" if os.geteuid() == 0 else "user": root.result()}
        if other is not None:
            out["nobody"] = other.result()
        else:
            out["nobody"] = {"skip": nobody}
    if VISIBLE_CHECKOUT.is_dir():
        VISIBLE_CHECKOUT.rmdir()  # the mount point (the mount itself ended with its namespace)
    return out


def _case(results: dict, klass: int, case: str) -> dict:
    if "skip" in results:
        pytest.skip(f"no ordinary-user run: {results['skip']}")
    name = case.format(base=results["base"], pid="")
    found = [c for c in results["cases"] if c["case"] == name or (case.endswith("{pid}") and
             c["case"].startswith(name))]
    assert found, f"case {name!r} was not played; driver output:\n{results.get('error', '')}"
    return found[0]


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.parametrize("identity", ["root", "nobody"])
@pytest.mark.parametrize(("klass", "case"), CASES, ids=[f"class{k}-{c[:60]}" for k, c in CASES])
def test_contained(played: dict[str, dict], identity: str, klass: int, case: str) -> None:
    results = played.get(identity) or played.get("user")
    assert results is not None
    found = _case(results, klass, case)
    assert found["klass"] == klass
    assert found["contained"], f"{identity}: {case}: {found['detail']}"


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.parametrize("identity", ["root", "nobody"])
def test_every_reported_attack_is_contained(played: dict[str, dict], identity: str) -> None:
    """Attacks beyond the list above (a socket in /run as root, one in ~/.cache) are held to the same rule."""
    results = played.get(identity) or played.get("user")
    assert results is not None
    if "skip" in results:
        pytest.skip(f"no ordinary-user run: {results['skip']}")
    escaped = [f"{c['case']}: {c['detail']}" for c in results["cases"] if not c["contained"]]
    assert results["cases"] and not escaped, "\n".join(escaped) or results.get("error")
