"""`[run] compile_cache`: the baseline's runs write the lab's compiler cache; every other run works on a private
copy of it, so it reuses what the baseline compiled and leaves nothing for later runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from labmind.execute.base import CompileCache
from labmind.execute.prepared import cache_folder

from .toy import git, labmind, make_toy

TRAIN = """import math, os, pathlib
LR = 0.001
WIDTH = 8
cache = pathlib.Path(os.environ["FAKE_CACHE"])
print("seen:", ",".join(sorted(p.name for p in cache.iterdir())))
(cache / f"lr{LR}-w{WIDTH}-{os.environ['LABMIND_RUN_TOKEN'][-8:]}").write_text("compiled")
# The lab's own cache, by its path (the run's worktree is .labmind/worktrees/run-N): only the baseline may write.
try:
    (pathlib.Path.cwd().parent.parent / "compile-cache" / "FAKE_CACHE" / f"direct-lr{LR}-w{WIDTH}").write_text("x")
    print("direct: written")
except OSError:
    print("direct: refused")
loss = (math.log10(LR) + 2) ** 2 + 0.5 / WIDTH
print(f"loss: {loss:.5f}")
"""


def test_the_baseline_writes_the_cache_and_candidates_read_a_private_copy(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "train.py").write_text(TRAIN)
    toml = task / "labmind.toml"
    toml.write_text(toml.read_text().replace('command = "python train.py"',
                                             'command = "python train.py"\ncompile_cache = ["FAKE_CACHE"]'))
    git(task, "commit", "-qam", "a task with a compiler cache")
    labmind("run", str(task), "--max-experiments", "2", "--seed", "1", "--plain")
    lab_cache = task / ".labmind" / "compile-cache" / "FAKE_CACHE"
    written = sorted(p.name for p in lab_cache.iterdir())
    # the baseline's runs only (each wrote its entry and, as the writer, could write there directly)
    assert written and all(name.startswith(("lr0.001-w8-", "direct-lr0.001-w8")) for name in written)
    written = [name for name in written if not name.startswith("direct-")]
    rows = json.loads(labmind("log", str(task), "--json").stdout)
    candidates = [r for r in rows if r["kind"] == "candidate"]
    assert candidates
    for row in candidates:
        shown = json.loads(labmind("show", str(row["id"]), str(task), "--json").stdout)
        for run in shown["runs"]:
            log = Path(run["log"]).read_text() if run.get("log") else ""
            seen = next(line for line in log.splitlines() if line.startswith("seen:"))
            # it saw what the baseline compiled, and nothing a candidate run wrote before it
            assert set(written) <= set(seen.removeprefix("seen: ").split(","))
            assert all(name.startswith(("lr0.001-w8-", "direct-lr0.001-w8"))
                       for name in seen.removeprefix("seen: ").split(","))
            if run["sandbox"] == "bwrap":  # the lab's cache is hidden from it, read-only
                assert "direct: refused" in log


def test_a_copy_is_private_and_a_writer_uses_the_lab_folder(tmp_path: Path, monkeypatch) -> None:
    lab = tmp_path / "lab-cache"
    (lab / "TRITON_CACHE_DIR" / "tmp.pid_42").mkdir(parents=True)  # an entry a compiler is writing
    (lab / "TRITON_CACHE_DIR" / "kernel.bin").write_text("k")
    copy, problem = cache_folder(CompileCache(("TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"), lab, False),
                                 tmp_path / "s")
    assert problem is None and (copy / "TRITON_CACHE_DIR" / "kernel.bin").read_text() == "k"
    assert not (copy / "TRITON_CACHE_DIR" / "tmp.pid_42").exists()  # in flight: not copied
    assert (copy / "TORCHINDUCTOR_CACHE_DIR").is_dir()  # every named cache exists, empty if new
    (copy / "TRITON_CACHE_DIR" / "left-behind").write_text("state")
    assert not (lab / "TRITON_CACHE_DIR" / "left-behind").exists()
    assert cache_folder(CompileCache(("TRITON_CACHE_DIR",), lab, True), tmp_path / "t") == (lab, None)
    fresh, _ = cache_folder(CompileCache(("X",), tmp_path / "none-yet", False), tmp_path / "u")
    assert (fresh / "X").is_dir() and not (tmp_path / "none-yet").exists()

    def vanished(*args, **kwargs):  # an entry removed under the copy by a baseline run writing
        raise shutil.Error([("a", "b", "No such file or directory")])

    monkeypatch.setattr(shutil, "copytree", vanished)
    empty, problem = cache_folder(CompileCache(("TRITON_CACHE_DIR",), lab, False), tmp_path / "v")
    assert problem is not None and "No such file" in problem
    assert list((empty / "TRITON_CACHE_DIR").iterdir()) == []  # empty caches rather than half a copy
