"""A static flag that is not about the measurement does not hold a gain a trusted evaluator measured."""

from __future__ import annotations

from pathlib import Path

from labmind.findings import Finding
from labmind.guard.holding import allow_hint, holding, soft_rules
from labmind.guard.rules import default_rules
from labmind.task import Task

from .toy import git, labmind, log, show


def _task(**metric: str) -> Task:
    return Task.model_validate({"task": {"name": "t", "editable": ["train.py"]},
                                "run": {"command": "python train.py"},
                                "metric": {"name": "loss", "goal": "minimize", **metric}})


FLAGS = [Finding("native_call", path="train.py", line=1, evidence="import ctypes"),
         Finding("timer_patch", path="train.py", line=3, evidence="time.time = f"),
         Finding("self_reported_mismatch", evidence="printed 0.1, evaluated 0.5")]


def test_without_a_trusted_evaluator_every_flag_holds() -> None:
    assert holding(_task(), FLAGS) == FLAGS


def test_under_a_trusted_evaluator_only_measurement_rules_hold() -> None:
    task = _task(evaluate="python eval.py")
    assert holding(task, FLAGS) == FLAGS[1:]
    assert {"native_call", "dynamic_code", "metric_print", "seed_only", "precision_toggle"} <= soft_rules(task)
    assert not {"timer_patch", "harness_patch", "protected_read", "builtin_patch"} & soft_rules(task)
    strict = Task.model_validate({**task.model_dump(), "guard": {"hold": ["native_call"]}})
    assert holding(strict, FLAGS) == FLAGS  # the task makes the rule hold anyway


def test_every_rule_says_whether_it_is_about_the_measurement() -> None:
    assert all(isinstance(r.measurement, bool) for r in default_rules())


def test_the_hint_names_the_rule_and_the_setting() -> None:
    hint = allow_hint(FLAGS[:1])
    assert '`[guard] allow = ["native_call"]`' in hint and "[metric] evaluate" in hint
    assert allow_hint(FLAGS[2:]) == ""  # not a static rule: nothing to allow


EVALUATOR = "import json, sys\nprint('loss:', json.load(open(sys.argv[1]))['loss'])\n"
BRAIN = ("from pathlib import Path\n"
         "Path('train.py').write_text(\"import ctypes, json, os\\nloss = 0.5 + int(os.environ['SEED']) * 1e-4\\n"
         "json.dump({'loss': loss}, open('out.json', 'w'))\\n\")\n")


def _lab(tmp_path: Path, evaluate: bool) -> Path:
    task = tmp_path / ("ev" if evaluate else "plain")
    task.mkdir()
    (task / "train.py").write_text("import json, os\nLR = 0.5\nloss = 1.0 + int(os.environ['SEED']) * 1e-4\n"
                                   "json.dump({'loss': loss}, open('out.json', 'w'))\nprint('loss:', loss)\n")
    (task / "evaluate.py").write_text(EVALUATOR)
    (task / "brains").mkdir()
    (task / "brains" / "ctypes_brain.py").write_text(
        BRAIN if evaluate else BRAIN.replace("open('out.json', 'w'))", "open('out.json', 'w'))\\nprint('loss:', loss)"))
    metric = '\nevaluate = "python evaluate.py out.json"' if evaluate else ""
    (task / "labmind.toml").write_text(
        '[task]\nname = "ev"\neditable = ["train.py"]\nprotected = ["evaluate.py"]\n'
        '[run]\ncommand = "python train.py"\nartifacts = ["out.json"]\n'
        f'[metric]\nname = "loss"\ngoal = "minimize"{metric}\n')
    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "ev")
    labmind("run", str(task), "--brain", "command:python brains/ctypes_brain.py", "--max-experiments", "1",
            "--plain")
    return task


def test_a_ctypes_speedup_measured_by_a_trusted_evaluator_is_claimed(tmp_path: Path) -> None:
    task = _lab(tmp_path, evaluate=True)
    exp = next(r for r in log(task) if r["kind"] == "candidate")
    assert exp["verdict"] == "improved", exp  # before: flagged, never promoted
    assert any(f["rule"] == "native_call" for f in show(task, exp["id"])["flags"])  # still on record


def test_without_an_evaluator_the_flag_holds_and_says_how_to_allow_it(tmp_path: Path) -> None:
    task = _lab(tmp_path, evaluate=False)
    exp = next(r for r in log(task) if r["kind"] == "candidate")
    assert exp["verdict"] == "flagged"
    assert '`[guard] allow = ["native_call"]`' in show(task, exp["id"])["reason"]
