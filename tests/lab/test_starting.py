"""Starting and resuming a lab: stored slots, a failing baseline stopped early with its cause, starting
afresh with a backup, globs and evaluators checked before any experiment."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .toy import LABMIND, git, labmind, log, make_toy, status


def _set(task: Path, old: str, new: str, file: str = "labmind.toml") -> None:
    path = task / file
    path.write_text(path.read_text().replace(old, new))


def test_resume_keeps_the_slots_given_to_run(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    first = labmind("run", str(task), "--slots", "2", "--max-experiments", "1", "--plain")
    assert "with 2 slot(s)" in first.stdout
    again = labmind("resume", str(task), "--max-experiments", "2", "--plain")
    assert "with 2 slot(s)" in again.stdout, again.stdout  # before: 1 slot, silently
    third = labmind("resume", str(task), "--max-experiments", "3", "--slots", "1", "--plain")
    assert "with 1 slot(s)" in third.stdout  # a new value replaces the stored one


def test_check_does_not_store_its_slots(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    labmind("check", str(task), "--slots", "2", "--plain")
    assert "with 1 slot(s)" in labmind("run", str(task), "--max-experiments", "1", "--plain").stdout


def _runs_of_baseline(task: Path) -> list[dict]:
    return json.loads(labmind("show", "1", str(task), "--json").stdout)["runs"]


def test_a_failing_baseline_stops_at_its_first_run_with_the_log_tail(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "train.py").write_text("LR = 0.1\nprint('loading shard 7')\nraise SystemExit('data missing: shard 7')\n")
    git(task, "commit", "-qam", "broken")
    proc = labmind("run", str(task), "--plain", check=False)
    assert proc.returncode == 1
    assert "the baseline itself failed" in proc.stderr
    assert "| loading shard 7" in proc.stderr and "data missing: shard 7" in proc.stderr  # the log's end
    assert "labmind run --fresh" in proc.stderr and "which first moves the failed lab to" in proc.stderr
    # the summary's next steps point at the error, not at resuming a lab whose baseline failed
    assert "then the error below" in proc.stdout and "`labmind resume`" not in proc.stdout
    finished = [r for r in _runs_of_baseline(task) if r["status"] == "done"]
    assert len(finished) == 1  # before: all three baseline runs ran


def test_a_crash_under_a_launcher_names_the_workers_error(tmp_path: Path) -> None:
    # torchrun ends a failed worker's log with its own ChildFailedError and a summary box: the verdict names
    # the worker's exception, not the box's last line.
    task = make_toy(tmp_path / "task")
    (task / "train.py").write_text(
        "LR = 0.1\nimport sys\nerr = sys.stderr\n"
        "print('[rank0]: Traceback (most recent call last):', file=err)\n"
        "print('[rank0]: FileNotFoundError: No files found for pattern: shards/*.bin', file=err)\n"
        "print('torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ', file=err)\n"
        "print('=' * 60, file=err)\nprint('train.py FAILED', file=err)\nprint('=' * 60, file=err)\nsys.exit(1)\n")
    git(task, "commit", "-qam", "a worker that cannot find its data")
    proc = labmind("run", str(task), "--plain", check=False)
    assert proc.returncode == 1
    said = " ".join(proc.stderr.split())
    assert "(exit code 1); error: FileNotFoundError: No files found for pattern: shards/*.bin" in said
    assert "last output: ====" not in said


def test_a_hanging_baseline_costs_one_timeout(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task", timeout="2s")
    (task / "train.py").write_text("LR = 0.1\nimport time\nprint('warming up', flush=True)\ntime.sleep(600)\n")
    git(task, "commit", "-qam", "hangs")
    started = time.monotonic()
    proc = labmind("run", str(task), "--plain", check=False)
    assert proc.returncode == 1 and "timeout" in proc.stderr
    assert "warming up" in proc.stderr
    assert len([r for r in _runs_of_baseline(task) if r["status"] == "done"]) == 1
    assert time.monotonic() - started < 30  # three timeouts plus grace each would be more than one


def test_reset_and_fresh_start_a_new_lab_keeping_a_backup(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    good = (task / "train.py").read_text()
    (task / "train.py").write_text("LR = 0.1\nraise SystemExit('broken')\n")
    git(task, "commit", "-qam", "broken")
    assert labmind("run", str(task), "--plain", check=False).returncode == 1
    (task / "train.py").write_text(good)
    git(task, "commit", "-qam", "fixed")
    refused = labmind("run", str(task), "--plain", check=False)
    assert refused.returncode == 1 and "--fresh" in refused.stderr

    reset = labmind("reset", str(task))
    backups = list((task / ".labmind" / "backups").iterdir())
    assert len(backups) == 1 and (backups[0] / "lab.db").is_file() and str(backups[0]) in reset.stdout
    assert not (task / ".labmind" / "lab.db").exists()
    labmind("run", str(task), "--max-experiments", "1", "--plain")
    assert status(task)["experiments"] == 1 and status(task)["baseline"]["n_runs"] == 3
    assert git(task, "status", "--porcelain") == ""  # the backup is as invisible to git as the lab

    fresh = labmind("run", str(task), "--fresh", "--max-experiments", "1", "--plain")
    assert "moved the previous lab" in fresh.stderr
    assert len(list((task / ".labmind" / "backups").iterdir())) == 2
    assert status(task)["experiments"] == 1  # a new lab, not the old one resumed with a higher limit
    refs = git(task, "for-each-ref", "--format=%(refname)", "refs/labmind-backups/")
    assert "/toy/exp/" in refs  # the first fresh lab's experiment commits stay reachable
    assert labmind("reset", str(tmp_path / "task")).returncode == 0


def test_an_editable_glob_that_matches_nothing_is_named_at_load(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    _set(task, 'editable = ["train.py"]', 'editable = ["train.py", "models/*.py"]')
    git(task, "commit", "-qam", "typo")
    proc = labmind("check", str(task), "--plain", check=False)
    assert proc.returncode == 1 and "[task] editable: 'models/*.py' matches no committed file" in proc.stderr
    assert not (task / ".labmind" / "lab.db").exists()  # nothing was written


def test_a_holdout_evaluator_printing_another_name_stops_at_the_baseline(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "holdout.py").write_text("print('holdout_loss: 0.25')\n")
    _set(task, 'goal = "minimize"', 'goal = "minimize"\nholdout = "python holdout.py"')
    git(task, "add", "-A")
    git(task, "commit", "-qm", "holdout")
    proc = labmind("run", str(task), "--max-experiments", "2", "--plain", check=False)
    assert proc.returncode == 1
    assert "held-out evaluator `python holdout.py` printed no `loss` value, but printed `holdout_loss`" in proc.stderr
    assert "holdout_loss: 0.25" in proc.stderr  # what it printed
    rows = json.loads(labmind("log", str(task), "--json").stdout)
    assert all(r["verdict"] is None for r in rows if r["kind"] == "candidate")  # none judged without a holdout


def test_a_baseline_that_misses_the_gate_in_every_run_stops_at_the_baseline(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    (task / "train.py").write_text("LR = 0.1\nimport os\nseed = int(os.environ.get('SEED', '0'))\n"
                                   "print(f'loss: {1.0 + seed / 100}')\nprint(f'val_loss: {3.30 + seed / 1000}')\n")
    _set(task, 'goal = "minimize"', 'goal = "minimize"\nsecondary = ["val_loss"]\ngate = "val_loss < 3.28"')
    git(task, "commit", "-qam", "a target out of the baseline's reach")
    proc = labmind("check", str(task), "--plain", check=False)
    assert proc.returncode == 1
    assert 'misses the task\'s target `[metric] gate = "val_loss < 3.28"` in every run' in proc.stderr
    assert "val_loss 3.3, 3.301, 3.302" in proc.stderr  # what each baseline run reported
    assert "labmind run --fresh" in proc.stderr
    # One run meeting it is enough to go on: the gate is judged on candidates, with its t-test.
    (task / "train.py").write_text("LR = 0.1\nimport os\nseed = int(os.environ.get('SEED', '0'))\n"
                                   "print(f'loss: {1.0 + seed / 100}')\nprint(f'val_loss: {3.279 + seed / 1000}')\n")
    git(task, "commit", "-qam", "the baseline reaches it once")
    assert labmind("run", str(task), "--fresh", "--max-experiments", "1", "--plain").returncode == 0


def test_a_baseline_reporting_no_gate_value_is_named(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    _set(task, 'goal = "minimize"', 'goal = "minimize"\nsecondary = ["val_loss"]\ngate = "val_loss < 3.28"')
    git(task, "commit", "-qam", "gate on a value train.py never prints")
    proc = labmind("check", str(task), "--plain", check=False)
    assert proc.returncode == 1
    said = " ".join(proc.stderr.split())
    assert "the baseline's runs report no finite `val_loss`" in said and "`val_loss: 1.0` in every run" in said
    assert log(task)[0]["verdict"] == "no_metric"


def test_a_module_only_the_host_can_import_is_explained(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    extra = tmp_path / "site"
    extra.mkdir()
    (extra / "fancy_tokenizer_xyz.py").write_text("VALUE = 1\n")
    (task / "train.py").write_text("LR = 0.1\nimport fancy_tokenizer_xyz\nprint('loss: 1.0')\n")
    git(task, "commit", "-qam", "needs a module")
    env = {**os.environ, "COLUMNS": "200"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(extra)) if p)
    proc = subprocess.run([*LABMIND, "run", str(task), "--plain"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 1
    assert "ModuleNotFoundError" in proc.stderr
    assert f"module `fancy_tokenizer_xyz` is importable here (from {extra / 'fancy_tokenizer_xyz.py'}, through " \
           "PYTHONPATH" in proc.stderr
    assert f'[run] env = ["PYTHONPATH={extra}"]' in proc.stderr
