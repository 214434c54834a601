"""Pydantic models of labmind.toml (DESIGN.md §3). Unknown fields are errors, so typos surface early."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s?)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from 90, "90", "90s", "10m", "2h" or "1h30m"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, \"90s\", \"10m\" or \"2h\"")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match or not any(match.groups()):
            raise ValueError(f"expected a duration such as 90, \"90s\", \"10m\" or \"2h\", got {value!r}")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        if (match.group(1) or match.group(2)) and match.group(3) and not str(value).rstrip().endswith("s"):
            raise ValueError(f"ambiguous duration {value!r}: give the last number a unit, e.g. \"1h30m\"")
        seconds = h * 3600 + m * 60 + s
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive, finite duration, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
MAX_TIMEOUT_S = 30 * 24 * 3600.0

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
UNLIMITED = "unlimited"


def parse_size(value: Any) -> int:
    """Bytes from 1048576, "512K", "256M", "8G", "1.5GiB" or "2T" (binary units: 1G = 1024³ bytes)."""
    if isinstance(value, bool):
        raise ValueError('expected a size such as "512M" or "8G"')
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value).strip())
        if not match:
            raise ValueError(f'expected a size such as "512M", "8G" or a number of bytes, got {value!r}')
        size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise ValueError(f"expected a positive size, got {value!r}")
    return size


def show_size(size: int) -> str:
    """A size as people write it: 4 GiB, 512 MiB, 1.5 GiB."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def _bounded_size(low: int, high: int, *, unlimited: bool) -> Any:
    def parse(value: Any) -> int | None:
        if unlimited and value in (UNLIMITED, None):
            return None
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"expected a size between {show_size(low)} and {show_size(high)}, got {value!r}")
        return size

    return parse


def _memory(value: Any) -> int | str | None:
    if value == "auto":
        return "auto"
    return _bounded_size(64 << 20, 1 << 50, unlimited=True)(value)


def _processes(value: Any) -> int | None:
    if value in (UNLIMITED, None):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f'expected a number of processes (16 to 4194304) or "unlimited", got {value!r}')
    if not 16 <= value <= 4_194_304:
        raise ValueError(f"expected 16 to 4194304 processes (threads count too), got {value}")
    return value


#: `[run] memory`: "auto" (the machine's memory shared between the slots), a size, or None (unlimited).
MemoryLimit = Annotated[int | Literal["auto"] | None, BeforeValidator(_memory)]
ProcessLimit = Annotated[int | None, BeforeValidator(_processes)]
FileSizeLimit = Annotated[int | None, BeforeValidator(_bounded_size(1 << 20, 1 << 50, unlimited=True))]
LogSizeLimit = Annotated[int, BeforeValidator(_bounded_size(64 << 10, 64 << 30, unlimited=False))]
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(<=|>=|<|>|==|!=)\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_globs(value: list[str]) -> list[str]:
    """Globs relative to the task directory that stay inside it. An absolute or empty glob, or one that
    climbs out with `..`, would match files labmind does not manage (or nothing, or everything)."""
    for item in value:
        if not item.strip():
            raise ValueError('an empty glob matches nothing; give a path relative to the task directory, '
                             'e.g. "train.py"')
        if "\0" in item:
            raise ValueError(f"{item!r} contains a NUL character")
        if item.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", item):
            raise ValueError(f"{item!r} is an absolute path; globs are relative to the task directory, "
                             'e.g. "data/*.bin"')
        parts = item.replace("\\", "/").split("/")
        if ".." in parts:
            raise ValueError(f"{item!r} climbs out of the task directory with '..'; globs stay inside it")
        if item.strip() in (".", "./", "*/..") or all(p in ("", ".") for p in parts):
            raise ValueError(f"{item!r} names the task directory itself; name files or folders inside it")
        if any("**" in part and part != "**" for part in parts):
            raise ValueError(f"{item!r}: '**' must be a whole path component, e.g. \"data/**/*.bin\"")
        if {".git", ".labmind"} & set(parts):
            raise ValueError(f"{item!r} names labmind's or git's own files (.labmind, .git)")
    return value


Globs = Annotated[list[str], AfterValidator(check_globs)]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Variables runs need as they are (or labmind sets): a task may not use one to carry its seed.
RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "SHLVL", "IFS", "ENV",
                          "TERM", "TZ", "LANG", "LC_ALL", "TMPDIR", "PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES",
                          "CUDA_DEVICE_ORDER", "LABMIND_SEED", "LABMIND_RUN_TOKEN", "LABMIND_GPUS"})
_RESERVED_PREFIXES = ("LD_", "PYTHON", "BASH_", "LABMIND_", "LC_")


def check_env_name(name: str, *, seed: bool = False) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name (letters, digits and _, not starting "
                         'with a digit), e.g. "SEED"')
    if seed and (name in RESERVED_ENV or name.startswith(_RESERVED_PREFIXES)):
        raise ValueError(f"{name!r} is a variable runs need (or labmind sets); pick a name of your own, "
                         'e.g. "SEED"')
    return name


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class TaskSection(_Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    brief: str | None = None
    editable: Globs = Field(min_length=1)
    protected: Globs = []
    setup: str | None = None

    @field_validator("brief")
    @classmethod
    def _brief(cls, value: str | None) -> str | None:
        if value is not None:
            check_globs([value])
        return value


class RunSection(_Section):
    command: str
    timeout: Duration = 600.0
    gpus: int = Field(default=0, ge=0, le=1024)
    artifacts: Globs = []
    #: Environment variables passed into runs: a name copies it from labmind's environment, NAME=value sets it.
    env: list[str] = []
    #: Globs of files (e.g. evaluation or held-out data) the run command cannot see; the trusted evaluators
    #: can. Needs the bubblewrap sandbox.
    hide: Globs = []
    smoke: str | None = None
    #: Per-run resource limits (see docs/integrity.md, "Resource limits"). A run that exceeds one is killed
    #: and ends `crashed`, with the limit named in its log and its verdict's reason.
    memory: MemoryLimit = "auto"
    processes: ProcessLimit = 4096
    file_size: FileSizeLimit = 64 << 30
    log_size: LogSizeLimit = 256 << 20

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not value.strip():
            raise ValueError('the run command is empty; give the shell command of one run, e.g. "python train.py"')
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value > MAX_TIMEOUT_S:
            raise ValueError(f"a run may take at most 30 days ({MAX_TIMEOUT_S:.0f} s), got {value:.0f} s")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: list[str]) -> list[str]:
        for item in value:
            check_env_name(item.partition("=")[0])
        return value


class MetricSection(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][\w.\-/]*$")
    goal: Literal["minimize", "maximize"]
    evaluate: str | None = None
    secondary: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.\-/]*$")]] = []
    constraints: list[str] = []
    #: Held-out evaluator, run only for candidate bests (results never shown to brains).
    holdout: str | None = None
    #: A value no honest run can beat (a speed-of-light time, a loss floor); beating it is flagged.
    bound: FiniteFloat | None = None
    #: A metric the run prints for its own wall-clock seconds; far below labmind's measurement is flagged.
    self_time: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.\-/]*$")
    #: The scale effects are judged on: "log" (ratios) or "linear"; "auto" picks log for positive metrics.
    scale: Literal["auto", "linear", "log"] = "auto"

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _CONSTRAINT.match(item):
                raise ValueError(f"expected 'name <op> number' (op one of <= >= < > == !=), got {item!r}")
        return value

    def parsed_constraints(self) -> list[tuple[str, str, float]]:
        out = []
        for item in self.constraints:
            m = _CONSTRAINT.match(item)
            assert m
            out.append((m.group(1), m.group(2), float(m.group(3))))
        return out


class NoiseSection(_Section):
    #: At most 100: every run is a row and a seed, and the judge compares them all.
    confirm_seeds: int = Field(default=3, ge=2, le=100)
    #: "auto" (any gain the judge can verify), an absolute amount, or a percentage such as "1%".
    min_effect: str | float = "auto"
    seed_env: Annotated[str, AfterValidator(lambda v: check_env_name(v, seed=True))] = "SEED"
    baseline_runs: int = Field(default=3, ge=2, le=100)
    alpha: float = Field(default=0.05, gt=0, lt=1)

    @field_validator("min_effect")
    @classmethod
    def _min_effect(cls, value: Any) -> Any:
        from labmind.judge.scale import MinEffect

        MinEffect.parse(value)  # raises with the allowed forms
        return value

    def parsed_min_effect(self) -> Any:
        from labmind.judge.scale import MinEffect

        return MinEffect.parse(self.min_effect)


class GuardSection(_Section):
    #: Static rules this task allows (e.g. "precision_toggle" where changing precision is the point).
    allow: list[str] = []
    #: A gain more than this many times the lab's largest confirmed step so far is flagged.
    gain_ratio: FiniteFloat = Field(default=10.0, gt=1)
    #: Flag a candidate whose held-out gain is below this fraction of its dev gain.
    holdout_fraction: float = Field(default=0.5, ge=0, le=1)


class KnobSpec(_Section):
    """A search range for one setting of the knobs brain; either low/high or choices."""

    low: FiniteFloat | None = None
    high: FiniteFloat | None = None
    log: bool = False
    int: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> KnobSpec:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("expected either choices = [...] or both low and high")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log = true needs low > 0")
        return self


class Task(_Section):
    task: TaskSection
    run: RunSection
    metric: MetricSection
    noise: NoiseSection = NoiseSection()
    guard: GuardSection = GuardSection()
    knobs: dict[str, KnobSpec] = {}

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def sign(self) -> float:
        """+1 when larger is better; multiply a metric by it to get 'higher is better'."""
        return 1.0 if self.metric.goal == "maximize" else -1.0

    def better(self, a: float, b: float) -> bool:
        """True when metric value a is strictly better than b."""
        return self.sign * (a - b) > 0
