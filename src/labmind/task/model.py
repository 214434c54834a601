"""Pydantic models of labmind.toml (docs/task-file.md). Unknown fields are errors, so typos surface early."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from labmind.task.fields import (
    FileSizeLimit,
    FiniteFloat,
    Globs,
    LogSizeLimit,
    MemoryLimit,
    ProcessLimit,
    check_env_name,
    check_globs,
)

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

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(<=|>=|<|>|==|!=)\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSection(_Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    brief: str | None = None
    editable: Globs = Field(min_length=1)
    protected: Globs = []
    setup: str | None = None
    #: The task family insights are shared under (e.g. "training/llm", "kernel/reduction"); default: the name.
    family: str | None = Field(default=None, max_length=100,
                               pattern=r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)*$")
    #: Free words that help retrieve this task's insights elsewhere (e.g. ["attention", "optimizer"]).
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = []

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
    #: Environment variables naming compiler caches (e.g. TRITON_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR). labmind
    #: points them at the lab's cache, which only the baseline's runs write (the task's own committed code);
    #: every other run gets a private copy of it, so it reuses what it did not change and (sandboxed) cannot
    #: leave state for later runs. Off by default: each run compiles from nothing.
    compile_cache: list[str] = []
    #: Runs that measure time: each runs alone (no other run of the lab starts while it runs, and it waits for
    #: the others to end), so slots sharing a machine cannot disturb each other's timings.
    exclusive: bool = False

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

    @field_validator("compile_cache")
    @classmethod
    def _compile_cache(cls, value: list[str]) -> list[str]:
        for name in value:
            if "=" in name:
                raise ValueError(f"give the variable's name only (labmind sets its value), got {name!r}")
            check_env_name(name, seed=True)  # not one labmind sets for runs (HOME, PATH, the run token...)
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
    #: A claim's gate on a secondary value (the speedrun's "val_loss < 3.28"): a screening run that misses it is
    #: not kept, and a claim needs the candidate's fresh-seed runs to pass a one-sided t-test of their mean
    #: against the bound at `gate_level`.
    gate: str | None = None
    gate_level: float = Field(default=0.01, gt=0, lt=0.5)

    @field_validator("gate")
    @classmethod
    def _gate(cls, value: str | None) -> str | None:
        m = _CONSTRAINT.match(value) if value is not None else None
        if value is not None and (m is None or m.group(2) not in ("<", ">")):
            raise ValueError(f"expected 'name < number' or 'name > number', got {value!r}")
        return value

    @model_validator(mode="after")
    def _gate_is_secondary(self) -> MetricSection:
        gate = self.parsed_gate()
        if gate is not None and gate[0] not in self.secondary:
            raise ValueError(f"gate names {gate[0]!r}, which must also be listed in secondary")
        return self

    def parsed_gate(self) -> tuple[str, str, float] | None:
        if self.gate is None:
            return None
        m = _CONSTRAINT.match(self.gate)
        assert m
        return m.group(1), m.group(2), float(m.group(3))

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
        from labmind.scale import MinEffect

        MinEffect.parse(value)  # raises with the allowed forms
        return value

    def parsed_min_effect(self) -> Any:
        from labmind.scale import MinEffect

        return MinEffect.parse(self.min_effect)


class GuardSection(_Section):
    #: Static rules this task allows (e.g. "precision_toggle" where changing precision is the point).
    allow: list[str] = []
    #: Static rules whose flag holds a gain for review even when a trusted evaluator measured it (rules that
    #: are not about the measurement do not, by default; e.g. native_call where candidate code runs inside
    #: the evaluator's own process).
    hold: list[str] = []
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
