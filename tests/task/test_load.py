"""labmind.toml loading: values, CLI flag overrides, and error messages that say where and what."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from labmind.task.load import TASK_FILE, TaskError, load_task
from labmind.task.model import KnobSpec, Task, parse_duration

VALID = """
[task]
name = "tiny"
editable = ["train.py"]
protected = ["eval.py", "data/*"]

[run]
command = "python train.py"
timeout = "10m"
gpus = 1

[metric]
name = "val_loss"
goal = "minimize"
constraints = ["mem_gb <= 40", "latency<2.5e-1"]

[noise]
confirm_seeds = 4
alpha = 0.01

[knobs.lr]
low = 1e-5
high = 1e-1
log = true

[knobs.opt]
choices = ["adam", "sgd"]
"""

FLAGS = {"edit": ["model.py"], "command": "python model.py", "metric": "acc", "goal": "maximize"}


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / TASK_FILE).write_text(text)
    return tmp_path


def error_of(tmp_path: Path, text: str, flags: dict | None = None) -> str:
    write(tmp_path, text)
    with pytest.raises(TaskError) as info:
        load_task(tmp_path, flags)
    return str(info.value)


def replace(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


# -- valid files and flags ----------------------------------------------------------------------


def test_valid_file_loads_all_sections(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, VALID))
    assert task.name == "tiny"
    assert task.task.editable == ["train.py"]
    assert task.task.protected == ["eval.py", "data/*"]
    assert task.run.command == "python train.py"
    assert task.run.timeout == 600.0
    assert task.run.gpus == 1
    assert task.metric.goal == "minimize"
    assert task.metric.parsed_constraints() == [("mem_gb", "<=", 40.0), ("latency", "<", 0.25)]
    assert task.noise.confirm_seeds == 4
    assert task.noise.alpha == 0.01
    assert task.noise.min_effect == "auto"
    assert task.noise.baseline_runs == 3
    assert task.knobs["lr"].log is True
    assert task.knobs["lr"].low == pytest.approx(1e-5)
    assert task.knobs["opt"].choices == ["adam", "sgd"]


def test_defaults_when_sections_are_minimal(tmp_path: Path) -> None:
    text = '[task]\neditable=["a.py"]\n[run]\ncommand="x"\n[metric]\nname="m"\ngoal="maximize"\n'
    task = load_task(write(tmp_path, text))
    assert task.run.timeout == 600.0
    assert task.run.gpus == 0
    assert task.knobs == {}
    assert task.noise.seed_env == "SEED"


def test_task_name_defaults_to_sanitized_directory_name(tmp_path: Path) -> None:
    task_dir = tmp_path / "my task!"
    task_dir.mkdir()
    text = '[task]\neditable=["a.py"]\n[run]\ncommand="x"\n[metric]\nname="m"\ngoal="maximize"\n'
    task = load_task(write(task_dir, text))
    assert task.name == "my-task"


def test_flags_override_file_values(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    task = load_task(tmp_path, {"goal": "maximize", "metric": "acc", "timeout": "2h", "gpus_per_run": 0,
                                "edit": ["other.py"], "setup": None, "protect": []})
    assert task.metric.goal == "maximize"
    assert task.metric.name == "acc"
    assert task.run.timeout == 7200.0
    assert task.run.gpus == 0  # 0 is a real value, not "unset"
    assert task.task.editable == ["other.py"]
    # None and [] mean "not given": the file's values stay
    assert task.task.protected == ["eval.py", "data/*"]
    assert task.run.command == "python train.py"


def test_flags_alone_build_a_task_without_a_file(tmp_path: Path) -> None:
    task = load_task(tmp_path, FLAGS)
    assert not (tmp_path / TASK_FILE).exists()
    assert task.task.editable == ["model.py"]
    assert task.run.command == "python model.py"
    assert task.metric.name == "acc"
    assert task.sign == 1.0
    assert task.name == tmp_path.name


def test_no_file_and_no_flags_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TaskError) as info:
        load_task(tmp_path, {"edit": [], "command": None})
    msg = str(info.value)
    assert TASK_FILE in msg
    assert str(tmp_path) in msg
    assert "--edit" in msg and "--metric" in msg


def test_missing_field_with_flags_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(TaskError) as info:
        load_task(tmp_path, {"edit": ["a.py"], "command": "x", "metric": "m"})
    msg = str(info.value)
    assert f"task flags for {tmp_path}" in msg
    assert "[metric] goal: is required but missing" in msg
    assert "--goal" in msg


# -- error messages -----------------------------------------------------------------------------


def test_missing_metric_section(tmp_path: Path) -> None:
    text = VALID.split("[metric]")[0] + "[noise]\nalpha = 0.1\n"
    msg = error_of(tmp_path, text)
    assert str(tmp_path / TASK_FILE) in msg
    assert "[metric]: section is required but missing" in msg
    assert "name" in msg and "goal" in msg


def test_wrong_goal(tmp_path: Path) -> None:
    msg = error_of(tmp_path, replace('goal = "minimize"', 'goal = "smallest"'))
    assert str(tmp_path / TASK_FILE) in msg
    assert "[metric] goal" in msg
    assert "'minimize'" in msg and "'maximize'" in msg
    assert "'smallest'" in msg


def test_bad_duration(tmp_path: Path) -> None:
    msg = error_of(tmp_path, replace('timeout = "10m"', 'timeout = "5q"'))
    assert str(tmp_path / TASK_FILE) in msg
    assert "[run] timeout" in msg
    assert "expected a duration" in msg
    assert "'5q'" in msg


def test_unknown_field_typo(tmp_path: Path) -> None:
    msg = error_of(tmp_path, replace("gpus = 1", "gpu = 1"))
    assert str(tmp_path / TASK_FILE) in msg
    assert "[run] gpu: is not a known field" in msg
    assert "spelling" in msg


def test_unknown_section(tmp_path: Path) -> None:
    msg = error_of(tmp_path, VALID + "\n[metrics]\nname = 'x'\n")
    assert "metrics: is not a known field" in msg


def test_missing_required_field_in_file_names_flag(tmp_path: Path) -> None:
    msg = error_of(tmp_path, replace('command = "python train.py"', 'comand = "python train.py"'))
    assert "[run] comand: is not a known field" in msg
    assert "[run] command: is required but missing" in msg
    assert "--command" in msg


def test_invalid_toml_mentions_file(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "[task\nname = 'x'\n")
    assert str(tmp_path / TASK_FILE) in msg
    assert "not valid TOML" in msg


def test_bad_constraint_syntax(tmp_path: Path) -> None:
    msg = error_of(tmp_path, replace('"mem_gb <= 40"', '"mem_gb is small"'))
    assert str(tmp_path / TASK_FILE) in msg
    assert "[metric] constraints" in msg
    assert "name <op> number" in msg
    assert "'mem_gb is small'" in msg


def test_constraint_with_malformed_number_is_rejected_at_load(tmp_path: Path) -> None:
    write(tmp_path, replace('"mem_gb <= 40"', '"mem_gb <= 1.2.3"'))
    with pytest.raises(TaskError, match=r"\[metric\] constraints"):
        task = load_task(tmp_path)
        task.metric.parsed_constraints()  # today: a bare ValueError here, long after loading


@pytest.mark.parametrize(
    ("knob", "expected"),
    [
        ("[knobs.bad]\nlow = 1.0\nhigh = 1.0\n", "low (1.0) must be below high (1.0)"),
        ("[knobs.bad]\nlow = 2.0\nhigh = 1.0\n", "low (2.0) must be below high (1.0)"),
        ("[knobs.bad]\nlow = 0.0\nhigh = 1.0\nlog = true\n", "log = true needs low > 0"),
        ("[knobs.bad]\nlow = -1.0\nhigh = 1.0\nlog = true\n", "log = true needs low > 0"),
        ("[knobs.bad]\nchoices = []\n", "choices must not be empty"),
        ("[knobs.bad]\nlow = 1.0\n", "expected either choices"),
        ("[knobs.bad]\nlow = 1.0\nhigh = 2.0\nstep = 1\n", "[knobs] bad.step: is not a known field"),
    ],
)
def test_knob_spec_validation(tmp_path: Path, knob: str, expected: str) -> None:
    msg = error_of(tmp_path, VALID + "\n" + knob)
    assert str(tmp_path / TASK_FILE) in msg
    assert "[knobs] bad" in msg
    assert expected in msg


def test_knob_spec_model_directly() -> None:
    assert KnobSpec(low=1, high=2).int is False
    assert KnobSpec(choices=[1, 2]).choices == [1, 2]
    with pytest.raises(ValidationError):
        KnobSpec(low=0, high=1, log=True)


MINIMAL = {
    "task": 'name = "t"\neditable = ["a.py"]',
    "run": 'command = "x"',
    "metric": 'name = "m"\ngoal = "minimize"',
    "noise": "",
}


def minimal(section: str, extra: str) -> str:
    return "\n".join(f"[{name}]\n{body}\n" + (extra + "\n" if name == section else "")
                     for name, body in MINIMAL.items())


@pytest.mark.parametrize(
    ("section", "line", "where"),
    [
        ("noise", "confirm_seeds = 1", "[noise] confirm_seeds"),
        ("noise", "baseline_runs = 1", "[noise] baseline_runs"),
        ("noise", "alpha = 1.5", "[noise] alpha"),
        ("noise", "min_effect = -0.5", "[noise] min_effect"),
        ("run", "gpus = -1", "[run] gpus"),
        ("task", "protected = 'eval.py'", "[task] protected"),
    ],
)
def test_range_errors_name_section_and_field(tmp_path: Path, section: str, line: str, where: str) -> None:
    assert load_task(write(tmp_path, minimal(section, ""))).name == "t"
    msg = error_of(tmp_path, minimal(section, line))
    assert where in msg
    assert str(tmp_path / TASK_FILE) in msg


def test_min_effect_number_accepted(tmp_path: Path) -> None:
    assert load_task(write(tmp_path, minimal("noise", "min_effect = 0.25"))).noise.min_effect == 0.25


def test_bad_task_name(tmp_path: Path) -> None:
    msg = error_of(tmp_path, replace('name = "tiny"', 'name = "has space"'))
    assert "[task] name" in msg
    assert "'has space'" in msg


def test_every_error_listed(tmp_path: Path) -> None:
    text = replace('goal = "minimize"', 'goal = "up"').replace('timeout = "10m"', 'timeout = "5q"')
    msg = error_of(tmp_path, text)
    assert msg.splitlines()[0] == f"{tmp_path / TASK_FILE} is not a valid task:"
    assert "[metric] goal" in msg and "[run] timeout" in msg


# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("2h", 7200.0),
     ("1h30m", 5400.0), ("1h30m15s", 5415.0), (" 2 m ", 120.0), ("0.5h", 1800.0)],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [0, -5, -0.1, "0", "0s", "0m", True, False, "", "5q", "m", "-5s", "h2"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_duration(value)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_parse_duration_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# -- Task.better / sign -------------------------------------------------------------------------


def _task(goal: str) -> Task:
    return Task.model_validate({"task": {"name": "t", "editable": ["a.py"]}, "run": {"command": "x"},
                                "metric": {"name": "m", "goal": goal}})


def test_minimize_sign_and_better() -> None:
    t = _task("minimize")
    assert t.sign == -1.0
    assert t.better(1.0, 2.0)
    assert not t.better(2.0, 1.0)
    assert not t.better(1.0, 1.0)


def test_maximize_sign_and_better() -> None:
    t = _task("maximize")
    assert t.sign == 1.0
    assert t.better(2.0, 1.0)
    assert not t.better(1.0, 2.0)
    assert not t.better(1.0, 1.0)


def test_task_is_frozen() -> None:
    t = _task("minimize")
    with pytest.raises(ValidationError):
        t.task.name = "other"  # type: ignore[misc]
