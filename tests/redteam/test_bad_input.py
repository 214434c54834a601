"""Bad input (issue 10, class 7): each case is refused with a message naming the field and the allowed range,
before anything is written. The table is what users see; docs/integrity.md lists it too.

Task-file cases run `labmind run` in-process on a fresh committed task whose labmind.toml has one field
changed; command-line cases run the verb as given. After each, the task directory must hold no `.labmind/`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labmind.cli.main import app
from labmind.execute.metric import parse_metrics

runner = CliRunner()

BASE: dict[str, dict[str, Any]] = {
    "task": {"name": "bad", "editable": ["train.py"]},
    "run": {"command": "python train.py"},
    "metric": {"name": "score", "goal": "maximize"},
}


@dataclass(frozen=True)
class Case:
    name: str
    section: str = ""  # the task-file change: [section] field = value
    field: str = ""
    value: Any = None
    args: tuple[str, ...] = ("run", "{task}", "--max-experiments", "1", "--plain")
    code: int = 1
    says: tuple[str, ...] = ()  # every one must appear in what the user sees


CASES = [
    Case("absolute editable glob", "task", "editable", ["/etc/passwd"],
         says=("[task] editable", "'/etc/passwd' is an absolute path; globs are relative to the task directory")),
    Case("absolute protected glob", "task", "protected", ["/data/*"], says=("[task] protected", "absolute path")),
    Case("absolute hide glob", "run", "hide", ["/srv/eval/*"], says=("[run] hide", "absolute path")),
    Case("hide glob climbing out", "run", "hide", ["../secrets/*"],
         says=("[run] hide", "climbs out of the task directory with '..'")),
    Case("absolute artifacts glob", "run", "artifacts", ["/tmp/ckpt.pt"], says=("[run] artifacts", "absolute path")),
    Case("empty glob from --edit ''", args=("run", "{task}", "--edit", "", "--max-experiments", "1", "--plain"),
         says=("[task] editable", "an empty glob matches nothing")),
    Case("the task directory as a glob", "task", "editable", ["."],
         says=("[task] editable", "names the task directory itself")),
    Case("glob into .git", "task", "protected", [".git/config"], says=("[task] protected", ".git")),
    Case("seed_env = PATH", "noise", "seed_env", "PATH",
         says=("[noise] seed_env", "'PATH' is a variable runs need", 'e.g. "SEED"')),
    Case("seed_env empty", "noise", "seed_env", "", says=("[noise] seed_env", "not an environment variable name")),
    Case("seed_env LD_PRELOAD", "noise", "seed_env", "LD_PRELOAD", says=("[noise] seed_env", "runs need")),
    Case("baseline_runs = 200000", "noise", "baseline_runs", 200000,
         says=("[noise] baseline_runs", "less than or equal to 100", "200000")),
    Case("confirm_seeds = 10^12", "noise", "confirm_seeds", 10**12,
         says=("[noise] confirm_seeds", "less than or equal to 100")),
    Case("blank run command", "run", "command", "   ", says=("[run] command", "the run command is empty")),
    Case("timeout beyond 30 days", "run", "timeout", "900h", says=("[run] timeout", "at most 30 days")),
    Case("gpus = 100000", "run", "gpus", 100000, says=("[run] gpus", "less than or equal to 1024")),
    Case("env entry without a name", "run", "env", ["=1"], says=("[run] env", "not an environment variable name")),
    Case("memory with an unknown unit", "run", "memory", "8Q", says=("[run] memory", 'expected a size such as "512M"')),
    Case("memory too small", "run", "memory", "1K", says=("[run] memory", "between 64 MiB and")),
    Case("processes = 3", "run", "processes", 3, says=("[run] processes", "16 to 4194304")),
    Case("file_size = -1", "run", "file_size", -1, says=("[run] file_size", "positive size")),
    Case("log_size unlimited", "run", "log_size", "unlimited", says=("[run] log_size", "expected a size")),
    Case("bound = nan", "metric", "bound", float("nan"), says=("[metric] bound", "expected a finite number")),
    Case("secondary name with spaces", "metric", "secondary", ["peak mem"], says=("[metric] secondary",)),
    Case("gain_ratio = inf", "guard", "gain_ratio", float("inf"), says=("[guard] gain_ratio", "finite")),
    Case("knob range with nan", "knobs", "LR", {"low": float("nan"), "high": 1.0}, says=("[knobs] LR", "finite")),
    Case("task name of 200 characters", "task", "name", "n" * 200, says=("[task] name", "at most 100 characters")),
    Case("labmind.toml is a directory", "toml-dir", says=("labmind.toml is a directory, not a task file",)),
    Case("ui --port 99999", args=("ui", "{task}", "--port", "99999"), code=2,
         says=("--port", "less than or equal to 65535")),
    Case("log --limit -1", args=("log", "{task}", "--limit", "-1"), code=2,
         says=("--limit", "greater than or equal to 1")),
    Case("run --slots 0", args=("run", "{task}", "--slots", "0"), code=2,
         says=("--slots", "greater than or equal to 1")),
    Case("run --seed -1", args=("run", "{task}", "--seed", "-1"), code=2,
         says=("--seed", "greater than or equal to 0")),
    Case("run --gpus-per-run 5000", args=("run", "{task}", "--gpus-per-run", "5000"), code=2,
         says=("--gpus-per-run", "less than or equal to 1024")),
    Case("run --gpus a,b", args=("run", "{task}", "--gpus", "a,b"), says=("--gpus expects a comma-separated list",)),
    Case("run --budget soon", args=("run", "{task}", "--budget", "soon"), says=("--budget:", "expected a duration")),
]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return "nan" if value != value else "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


def make_task(root: Path, case: Case) -> Path:
    root.mkdir()
    (root / "train.py").write_text("LR = 0.1\nprint('score: 1')\n")
    data = {k: dict(v) for k, v in BASE.items()}
    if case.section and case.section != "toml-dir":
        data.setdefault(case.section, {})[case.field] = case.value
    if case.section == "toml-dir":
        (root / "labmind.toml").mkdir()
        (root / "labmind.toml" / "keep").write_text("")
    else:
        (root / "labmind.toml").write_text("".join(
            f"[{section}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in fields.items()) for section, fields in
            data.items()))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_before_anything_is_written(case: Case, tmp_path: Path) -> None:
    task = make_task(tmp_path / "task", case)
    result = runner.invoke(app, [a.format(task=task) for a in case.args])
    # Rich wraps long lines and draws boxes around usage errors: compare words.
    seen = " ".join((result.stdout + result.stderr).translate(str.maketrans("│╭╮╰╯─", "      ")).split())
    assert result.exit_code == case.code, seen
    for text in case.says:
        assert " ".join(text.split()) in seen, f"{text!r} not in: {seen}"
    assert "Traceback" not in seen
    assert not (task / ".labmind").exists()


def test_non_ascii_digits_are_not_a_metric() -> None:
    parsed = parse_metrics(["score: ١٢", "score=１２", '{"score": "1_000"}', '{"score": "٣"}'], ["score"])
    assert parsed.get("score") is None and parsed.count("score") == 0
    assert parse_metrics(["score: 12", '{"score": "1.5e3"}'], ["score"]).get("score") == 1500.0


def test_a_json_integer_beyond_floats_is_infinite_not_an_error() -> None:
    parsed = parse_metrics(['{"score": 1' + "0" * 400 + "}"], ["score"])
    assert parsed.get("score") == float("inf")  # then a bad_metric, like any infinite value
