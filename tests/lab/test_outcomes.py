"""Every way an experiment can go wrong becomes its documented verdict, and the lab keeps going."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .toy import labmind, log, make_toy, show, status

HAS_BWRAP = shutil.which("bwrap") is not None


def run_mode(
    tmp_path: Path, mode: str, *, arg: str = "", timeout: str = "30s", extra: tuple[str, ...] = ()
) -> list[dict]:
    task = make_toy(tmp_path / "task", timeout=timeout)
    brain = f"command:python brains/write.py {mode} {arg}".strip()
    labmind("run", str(task), "--brain", brain, "--max-experiments", "2", "--slots", "2", "--plain", *extra)
    rows = log(task)
    assert rows[0]["kind"] == "baseline" and rows[0]["n_runs"] == 3
    candidates = [r for r in rows if r["kind"] == "candidate"]
    assert len(candidates) == 2, "the lab must keep going after a failed experiment"
    return candidates


@pytest.mark.parametrize(
    ("mode", "verdict", "words"),
    [
        ("nometric", "no_metric", "no `loss` line"),
        ("nan", "bad_metric", "loss was not a finite number"),
        ("crash", "crashed", "exit code 3"),
        ("outside", "rejected", "notes.md, which is not editable"),
        ("noop", "no_change", "changed no file"),
    ],
)
def test_failure_modes_get_their_verdict(tmp_path: Path, mode: str, verdict: str, words: str) -> None:
    for exp in run_mode(tmp_path, mode):
        assert exp["verdict"] == verdict
        assert words in exp["reason"]
        assert exp["near_miss"] is False


def test_protected_file_edits_are_rejected_even_without_a_sandbox(tmp_path: Path) -> None:
    # Without a sandbox the brain can write the protected file: the scope check rejects the diff.
    for exp in run_mode(tmp_path / "brain", "protected", extra=("--sandbox", "none")):
        assert exp["verdict"] == "rejected" and exp["reason"] == "changed protected file guard.txt"
    # A run that rewrites it while running is caught by the digest taken after the run.
    for exp in run_mode(tmp_path / "run", "runtime_protected", extra=("--sandbox", "none")):
        assert exp["verdict"] == "rejected"
        assert exp["reason"] == "protected file guard.txt was modified during the run"


@pytest.mark.sandbox
@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_protected_files_are_read_only_inside_the_sandbox(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind(
        "run",
        str(task),
        "--brain",
        "command:python brains/write.py protected",
        "--max-experiments",
        "1",
        "--sandbox",
        "bwrap",
        "--plain",
    )
    failed = next(r for r in log(task) if r["kind"] == "candidate")
    assert failed["status"] == "failed" and "Read-only file system" in failed["error"]
    for exp in run_mode(tmp_path / "run", "runtime_protected", extra=("--sandbox", "bwrap")):
        assert exp["verdict"] == "crashed" and "Read-only file system" in exp["reason"]


def test_hanging_run_is_timed_out_and_killed(tmp_path: Path) -> None:
    candidates = run_mode(tmp_path, "hang", timeout="3s")
    for exp in candidates:
        assert exp["verdict"] == "timed_out"
        assert "3s timeout" in exp["reason"]
    detail = show(tmp_path / "task", candidates[0]["id"])
    run = detail["runs"][0]
    assert run["outcome"] == "timed_out" and run["seconds"] < 15


def test_crash_reason_carries_the_log_tail(tmp_path: Path) -> None:
    exp = run_mode(tmp_path, "crash")[0]
    assert "about to fail" in exp["reason"]


def test_bad_task_file_names_the_field_and_creates_nothing(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    text = (task / "labmind.toml").read_text().replace('goal = "minimize"', 'goal = "lowest"')
    (task / "labmind.toml").write_text(text)
    proc = labmind("run", str(task), "--plain", check=False)
    assert proc.returncode == 1
    assert "labmind.toml" in proc.stderr and "[metric] goal" in proc.stderr and "'minimize'" in proc.stderr
    assert not (task / ".labmind").exists()


def test_dirty_repo_is_refused(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "train.py").write_text("print('loss: 1')\n")
    proc = labmind("run", str(task), "--plain", check=False)
    assert proc.returncode == 1 and "uncommitted changes (train.py)" in proc.stderr


def test_not_a_repository_suggests_init(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.py").write_text("X = 1\nprint('loss: 1')\n")
    proc = labmind(
        "run",
        str(plain),
        "--edit",
        "train.py",
        "--command",
        "python train.py",
        "--metric",
        "loss",
        "--goal",
        "minimize",
        "--plain",
        check=False,
    )
    assert proc.returncode == 1 and "labmind init" in proc.stderr
    labmind("init", str(plain))
    labmind(
        "run",
        str(plain),
        "--edit",
        "train.py",
        "--command",
        "python train.py",
        "--metric",
        "loss",
        "--goal",
        "minimize",
        "--max-experiments",
        "0",
        "--plain",
    )
    assert status(plain)["baseline"]["metric"] == 1.0


def test_metric_printed_twice_is_flagged_not_promoted(tmp_path: Path) -> None:
    for exp in run_mode(tmp_path, "repeat"):
        # Runs print a deterministic 0.001, far better than the baseline: without the flag this would
        # be an improvement.
        assert exp["verdict"] == "flagged"
        assert "metric_repeated" in [f["rule"] for f in exp["flags"]]
        assert "metric_repeated" not in exp["reason"]  # reasons reach brains; evidence stays for people
    assert status(tmp_path / "task")["best"]["confirmed"] is False


@pytest.mark.sandbox
@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_escape_attempts_fail_inside_the_sandbox(tmp_path: Path) -> None:
    import uuid

    # Outside the run's worktree (the home directory is read-only inside the sandbox). Paths under /tmp
    # would land in the sandbox's private /tmp and vanish with it.
    target = Path.home() / f"labmind-escape-{uuid.uuid4().hex}"
    for exp in run_mode(tmp_path, "escape_write", arg=str(target), extra=("--sandbox", "bwrap")):
        assert exp["verdict"] == "crashed"
        assert "Read-only file system" in exp["reason"]
    assert not target.exists()
    tmp2 = tmp_path / "net"
    tmp2.mkdir()
    for exp in run_mode(tmp2, "escape_net", extra=("--sandbox", "bwrap")):
        assert exp["verdict"] == "crashed"
        assert "unreachable" in exp["reason"].lower() or "network" in exp["reason"].lower()


@pytest.mark.sandbox
@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_runs_cannot_read_the_home_directory_or_the_lab_store(tmp_path: Path) -> None:
    import uuid

    secret = Path.home() / f".labmind-test-secret-{uuid.uuid4().hex}"
    secret.write_text("SEKRIT")
    try:
        for exp in run_mode(tmp_path / "home", "read", arg=str(secret), extra=("--sandbox", "bwrap")):
            assert exp["verdict"] == "crashed" and "No such file" in exp["reason"]
    finally:
        secret.unlink()
    store = tmp_path / "store" / "task" / ".labmind" / "lab.db"
    for exp in run_mode(tmp_path / "store", "read", arg=str(store), extra=("--sandbox", "bwrap")):
        assert exp["verdict"] == "crashed" and "No such file" in exp["reason"]


def test_improvement_is_confirmed_and_kept_on_a_branch(tmp_path: Path) -> None:
    candidates = run_mode(tmp_path, "good")
    first = candidates[0]
    # Kept at screening (one run on the lab's first baseline seed, against the baseline on that seed), then
    # verified on fresh seeds when the lab stopped proposing.
    screen, verify = first["judgement"], first["judgement"]["verify"]
    assert first["verdict"] == "improved"
    assert screen["stage"] == "screen" and screen["reference"] == 1 and screen["effect"] > 0
    assert verify["state"] == "claim" and verify["anchor"] == 1 and verify["closing"]
    assert first["p_value"] <= verify["level"] < 0.05
    task = tmp_path / "task"
    runs = show(task, first["id"])["runs"]
    fresh = [r for r in runs if r["purpose"] == "confirm"]
    baseline_seeds = [r["seed"] for r in show(task, 1)["runs"] if r["purpose"] == "baseline"]
    assert [r["seed"] for r in runs if r["purpose"] == "screen"] == [baseline_seeds[0]] == [screen["seed"]]
    # Fresh to the candidate: seeds it has not run on (the baseline's own seeds first, where the pairs are free).
    assert first["n_runs"] == len(fresh) == len({r["seed"] for r in fresh}) >= 2
    assert screen["seed"] not in {r["seed"] for r in fresh}
    assert first["metric"] == pytest.approx(sum(r["metric"] for r in fresh) / len(fresh))
    st = status(task)
    assert st["best"]["confirmed"] and st["best"]["metric"] == pytest.approx(0.001, abs=5e-4)
    assert "kept" not in st["verdicts"]  # every provisional keep was decided before the lab stopped
    from .toy import git

    assert git(task, "rev-parse", "labmind/toy").strip() == st["best"]["commit"]
    # The second experiment re-proposes the same code on top of the new incumbent: no change.
    assert candidates[1]["verdict"] in ("no_change", "not_improved", "improved", "inconclusive")


def test_tree_policy_spreads_work_over_lines(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("run", str(task), "--policy", "tree", "--lines", "3", "--slots", "2", "--max-experiments", "6", "--plain")
    st = status(task)
    assert [line["id"] for line in st["lines"]] == [1, 2, 3]
    candidates = [r for r in log(task) if r["kind"] == "candidate"]
    assert len(candidates) == 6 and all(r["verdict"] for r in candidates)
    assert {r["line"] for r in candidates} == {1, 2, 3}  # the UCB bonus visits every line
    for line in st["lines"]:
        incumbent = next(r for r in log(task) if r["id"] == line["incumbent"])
        assert incumbent["kind"] == "baseline" or incumbent["verdict"] == "improved"


EVALUATOR = """import json, sys
print("loss:", json.load(open(sys.argv[1]))["loss"])
"""


def test_trusted_evaluator_sees_only_declared_artifacts(tmp_path: Path) -> None:
    # A run that drops json.py next to the evaluator (which does `import json`) must not fake the metric:
    # the evaluator runs in a pristine checkout holding only the declared artifact.
    task = tmp_path / "task"
    task.mkdir()
    (task / "train.py").write_text(
        "import json\nLR = 0.5\njson.dump({'loss': 1.0 + LR / 100}, open('out.json', 'w'))\n"
    )
    (task / "evaluate.py").write_text(EVALUATOR)
    (task / "brains").mkdir()
    (task / "brains" / "shadow.py").write_text(
        "from pathlib import Path\n"
        "Path('train.py').write_text(\"import json\\njson.dump({'loss': 1.005}, open('out.json', 'w'))\\n"
        "open('json.py', 'w').write('print(\\\\'loss: 0.0001\\\\')\\\\nraise SystemExit(0)\\\\n')\\n\")\n"
    )
    (task / "labmind.toml").write_text(
        '[task]\nname = "ev"\neditable = ["train.py"]\nprotected = ["evaluate.py"]\n'
        '[run]\ncommand = "python train.py"\nartifacts = ["out.json"]\n'
        '[metric]\nname = "loss"\ngoal = "minimize"\nevaluate = "python evaluate.py out.json"\n'
    )
    from .toy import git

    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "ev")
    labmind(
        "run",
        str(task),
        "--brain",
        "command:python brains/shadow.py",
        "--max-experiments",
        "1",
        "--slots",
        "1",
        "--plain",
    )
    exp = next(r for r in log(task) if r["kind"] == "candidate")
    assert exp["verdict"] == "not_improved" and exp["metric"] == pytest.approx(1.005)
    run = show(task, exp["id"])["runs"][0]
    assert run["self_reported"] is None  # the candidate printed nothing itself; json.py never ran


@pytest.mark.sandbox
@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_a_task_inside_the_home_directory_runs_sandboxed(tmp_path: Path) -> None:
    import uuid

    # The usual layout (~/project): the home directory is hidden, the lab's worktrees are bound back.
    root = Path.home() / f".labmind-test-{uuid.uuid4().hex}"
    try:
        candidates = run_mode(root, "good", extra=("--sandbox", "bwrap"))
        assert candidates[0]["verdict"] == "improved"
        runs = show(root / "task", candidates[0]["id"])["runs"]
        assert {r["sandbox"] for r in runs} == {"bwrap"}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.sandbox
@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_hidden_evaluation_data_is_invisible_to_the_run_but_not_to_the_evaluator(tmp_path: Path) -> None:
    from .toy import git

    task = tmp_path / "task"
    task.mkdir()
    (task / "secret.txt").write_text("x" * 42)
    (task / "train.py").write_text(
        "import pathlib\nLR = 1\nprint('run sees', len(pathlib.Path('secret.txt').read_text()))\n"
    )
    (task / "evaluate.py").write_text("import pathlib\nprint('loss:', len(pathlib.Path('secret.txt').read_text()))\n")
    (task / "labmind.toml").write_text(
        '[task]\nname = "hide"\neditable = ["train.py"]\nprotected = ["evaluate.py", "secret.txt"]\n'
        '[run]\ncommand = "python train.py"\nhide = ["secret.txt"]\n'
        '[metric]\nname = "loss"\ngoal = "minimize"\nevaluate = "python evaluate.py"\n'
    )
    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "hide")
    labmind("check", str(task), "--sandbox", "bwrap", "--plain")
    assert status(task)["baseline"]["metric"] == 42.0  # the evaluator reads the real file
    log_path = show(task, 1)["runs"][0]["log"]
    assert "run sees 0" in Path(log_path).read_text()  # the run got an empty stand-in
