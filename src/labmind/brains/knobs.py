"""The `knobs` brain: Bayesian search (optuna TPE) over numeric settings in the task's editable files.

No LLM. A *knob* is a top-level assignment `UPPER_CASE = <literal>` (or `X: float = 1e-3`) in an editable
Python file. Each proposal asks TPE for a full configuration and writes the values that differ from the
parent's into the worktree as a real source edit: only the literal's characters change, so the diff labmind
computes is exactly the knob change.

Search space. When the task has a `[knobs]` table, only those knobs are searched with the declared ranges
(explicit beats inferred). Otherwise every knob found is searched with a default range around its value in
the baseline: positive float v -> log-uniform [v/10, 10v]; int v > 0 -> [max(1, v//4), 4v] (log when v >= 8);
bool -> {True, False}. Zero, negative and string values are searched only when declared. A declared range on
an int literal with integral bounds is searched as integers even without `int = true` (a batch size of 37.4
is never what anyone meant).

One study per lab, not per line: the knobs define one objective whatever line a proposal comes from, so
pooling every observation gives TPE the most data. Parallel proposals are handled by TPE's constant liar.

Ideas this brain proposes carry `params = {"_brain": "knobs", NAME: value, ...}` with the *complete*
configuration (all searched knobs, changed or not): that is what lets a fresh brain rebuild the study from
the store on resume (`learn` on past experiments -> `study.add_trial`). The title names only the changes.

Outcomes told to TPE: a finite mean metric -> COMPLETE with that value. Everything else (run failures,
no_change, rejected, flagged — a flagged gain cannot be trusted) -> FAIL, which TPE ignores when modelling but
which closes the trial. The baseline (parent_id None) is added as a completed trial with its knob values.
Experiments of other brains are ignored.
"""

from __future__ import annotations

import ast
import logging
import math
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import TPESampler
from optuna.trial import Trial, TrialState

from labmind import pyast
from labmind.brains.base import BrainContext, BrainError
from labmind.library.model import KnobChange
from labmind.model import Idea, PastExperiment
from labmind.task.model import KnobSpec, Task
from labmind.verdicts import RUN_FAILURES, Verdict

MARKER = "_brain"
BRAIN_NAME = "knobs"
_KNOB_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_UNTRUSTED = RUN_FAILURES | {Verdict.NO_CHANGE, Verdict.REJECTED, Verdict.FLAGGED}
#: How often to re-ask TPE when it suggests exactly the parent's configuration.
_MAX_ASKS = 8
_N_STARTUP = 4
#: Ideas carry the parent's knob values under this key too, so an insight can say where a knob moved from.
PARENT = "_parent"
#: Library moves tried as warm starts per lab (each a first proposal before TPE's own).
WARM_STARTS = 3
#: The knob a warm-start idea moved (its idea params), so a resumed lab knows which moves it tried.
WARM_KNOB = "_warm_knob"


# ----------------------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Literal:
    """One knob occurrence: where its literal sits in a file (byte offsets) and its value."""

    name: str
    path: Path
    start: int
    end: int
    value: Any
    text: str  # the literal's source text, e.g. "3e-4"


def _literal_value(node: ast.expr) -> tuple[bool, Any]:
    """(True, value) for an int/float/bool/str constant, optionally signed; (False, None) otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str):
        return True, node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        value = node.operand.value
        return True, -value if isinstance(node.op, ast.USub) else value
    return False, None


def _assignment(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    """(name, value node) for `NAME = v` or `NAME: T = v` at top level; None for anything else."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None


def _line_starts(source: bytes) -> list[int]:
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def scan_file(path: Path) -> tuple[list[Literal], set[str]]:
    """Knob literals in one file, plus names assigned at top level more than once or to a non-literal.

    Offsets are bytes: ast columns are UTF-8 byte offsets, so working on bytes keeps non-ASCII files exact.
    """
    source = path.read_bytes()
    try:
        tree = pyast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise BrainError(f"cannot parse {path.name} to find knobs: {exc}") from exc
    starts = _line_starts(source)
    found: list[Literal] = []
    other: set[str] = set()
    for stmt in tree.body:
        assigned = _assignment(stmt)
        if assigned is None:
            continue
        name, node = assigned
        ok, value = _literal_value(node)
        if not ok or node.end_lineno is None or node.end_col_offset is None:
            other.add(name)
            continue
        start = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        text = source[start:end].decode("utf-8")
        found.append(Literal(name, path, start, end, value, text))
    return found, other


def editable_files(task_dir: Path, editable: list[str]) -> list[Path]:
    """The editable Python files under task_dir (globs relative to it), sorted, without duplicates."""
    files: set[Path] = set()
    for pattern in editable:
        files.update(p for p in task_dir.glob(pattern) if p.is_file() and p.suffix == ".py")
    return sorted(files)


def discover(task_dir: Path, editable: list[str]) -> tuple[dict[str, Literal], set[str]]:
    """All unambiguous UPPER_CASE literals in the editable files, and the names that are ambiguous
    (assigned twice, in two files, or to a non-literal) and therefore never edited."""
    seen: dict[str, Literal] = {}
    ambiguous: set[str] = set()
    for path in editable_files(task_dir, editable):
        literals, other = scan_file(path)
        ambiguous |= other
        for lit in literals:
            if lit.name in seen:
                ambiguous.add(lit.name)
            seen[lit.name] = lit
    knobs = {name: lit for name, lit in seen.items() if name not in ambiguous and _KNOB_NAME.match(name)}
    return knobs, {n for n in ambiguous if _KNOB_NAME.match(n)}


# -------------------------------------------------------------------------------------- search space


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _declared(name: str, spec: KnobSpec, value: Any) -> BaseDistribution:
    if spec.choices is not None:
        return CategoricalDistribution(spec.choices)
    assert spec.low is not None and spec.high is not None  # KnobSpec guarantees it without choices
    if isinstance(value, bool | str):
        raise BrainError(f"knob {name} is {value!r} in the code but [knobs] gives it a numeric range")
    integral = float(spec.low).is_integer() and float(spec.high).is_integer()
    if spec.int or (_is_int(value) and integral):
        return IntDistribution(math.ceil(spec.low), math.floor(spec.high), log=spec.log)
    return FloatDistribution(spec.low, spec.high, log=spec.log)


def _inferred(value: Any) -> BaseDistribution | None:
    if isinstance(value, bool):
        return CategoricalDistribution([True, False])
    if _is_int(value) and value > 0:
        return IntDistribution(max(1, value // 4), value * 4, log=value >= 8)
    if isinstance(value, float) and value > 0 and math.isfinite(value):
        # Rounded so that 3e-4 gives [3e-5, 3e-3], not [2.9999999999999997e-05, ...].
        return FloatDistribution(float(f"{value / 10:.12g}"), float(f"{value * 10:.12g}"), log=True)
    return None  # zero, negative, strings: no sensible default range


def build_space(task: Task, knobs: dict[str, Literal], ambiguous: set[str]) -> dict[str, BaseDistribution]:
    """The search space: the [knobs] table when present (every name must exist), else inferred ranges."""
    if not task.knobs:
        space = {name: _inferred(lit.value) for name, lit in knobs.items()}
        return {name: dist for name, dist in space.items() if dist is not None}
    space: dict[str, BaseDistribution] = {}
    for name, spec in task.knobs.items():
        if name in ambiguous:
            raise BrainError(
                f"knob {name} from [knobs] is assigned more than once or to a non-literal in the editable "
                "files; make it a single top-level `NAME = <literal>`"
            )
        if name not in knobs:
            raise BrainError(
                f"knob {name} from [knobs] is not a top-level `{name} = <literal>` in the editable files "
                f"({', '.join(task.task.editable)})"
            )
        space[name] = _declared(name, spec, knobs[name].value)
    return space


# ---------------------------------------------------------------------------------------- rewriting


def compact(value: Any, dist: BaseDistribution) -> Any:
    """The value to write: floats rounded to 4 significant digits (readable diffs) if that stays in range."""
    if isinstance(dist, FloatDistribution) and isinstance(value, float):
        rounded = float(f"{value:.4g}")
        if dist.low <= rounded <= dist.high:
            return rounded
    return value


def format_value(value: Any, old_text: str = "") -> str:
    """Python source for a knob value; repr of a float is the shortest text that parses back exactly."""
    if isinstance(value, bool) or _is_int(value):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # Keep the file's quote style when the value needs no escaping.
        if old_text[:1] == '"' and '"' not in value and "\\" not in value and value.isprintable():
            return f'"{value}"'
        return repr(value)
    raise BrainError(f"cannot write knob value {value!r} of type {type(value).__name__}")


def write_values(knobs: dict[str, Literal], values: dict[str, Any]) -> None:
    """Replace each named knob's literal text in place; every other byte of each file is untouched."""
    by_file: dict[Path, list[tuple[Literal, Any]]] = {}
    for name, value in values.items():
        lit = knobs[name]
        by_file.setdefault(lit.path, []).append((lit, value))
    for path, edits in by_file.items():
        data = path.read_bytes()
        # Later spans first, so earlier offsets stay valid.
        for lit, value in sorted(edits, key=lambda e: e[0].start, reverse=True):
            data = data[: lit.start] + format_value(value, lit.text).encode("utf-8") + data[lit.end :]
        path.write_bytes(data)


def _same(a: Any, b: Any) -> bool:
    """Equal value and type: 3 and 3.0 differ as source text, so changing one to the other is a change."""
    return type(a) is type(b) and a == b


def _show(values: dict[str, Any]) -> str:
    """NAME=value pairs; floats not yet rounded for writing (e.g. raw TPE params) shown to 4 digits."""
    return ", ".join(
        f"{name}={float(f'{v:.4g}')!r}" if isinstance(v, float) else f"{name}={format_value(v)}"
        for name, v in values.items()
    )


# ------------------------------------------------------------------------------------- transfer


def transfer(move: KnobChange, here: Any, dist: BaseDistribution) -> Any:
    """The value an insight's knob move suggests for this task, inside this task's range, or None.

    Where this task's value is the one the insight moved from, the insight's value is taken as is. Elsewhere a
    positive numeric move transfers as its factor (×3 stays ×3 from a different starting point), other moves
    as the insight's value. Out-of-range values are clipped to the range; categorical values must be choices."""
    if isinstance(dist, CategoricalDistribution):
        return move.after if move.after in dist.choices else None
    if not isinstance(dist, FloatDistribution | IntDistribution):
        return None
    factor = move.factor
    if _same(here, move.before) or factor is None or isinstance(here, bool) or not isinstance(here, int | float):
        target = move.after
    else:
        target = here * factor
    if isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target):
        return None
    target = min(max(target, dist.low), dist.high)
    if isinstance(dist, IntDistribution):
        return round(target)
    rounded = float(f"{float(target):.4g}")  # readable diffs, as `compact` writes TPE's values
    return rounded if dist.low <= rounded <= dist.high else float(target)


def _move_size(move: KnobChange) -> float:
    """How far a move went: |log factor| for positive numeric moves, 1 for the rest (booleans, choices)."""
    factor = move.factor
    return abs(math.log(factor)) if factor else 1.0


# -------------------------------------------------------------------------------------------- brain


def _outcome(result: PastExperiment) -> float | None:
    """The value to tell TPE, or None for an outcome that must count as a failed trial."""
    if result.verdict in _UNTRUSTED or result.metric is None or not math.isfinite(result.metric):
        return None
    return float(result.metric)


class KnobsBrain:
    """TPE over knob literals. `anchor_dir`: the task directory holding the baseline's code; the search space
    is inferred from it. Without it, the space is anchored on the first worktree proposed from (the baseline's
    on a fresh lab; on a resumed lab pass anchor_dir, or inferred ranges may centre on a later value)."""

    name = BRAIN_NAME

    def __init__(self, task: Task, *, seed: int = 0, anchor_dir: Path | None = None) -> None:
        self.task = task
        self._lock = threading.Lock()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE announces itself as experimental
            sampler = TPESampler(
                seed=seed, n_startup_trials=_N_STARTUP, multivariate=True, constant_liar=True
            )
        self.study = optuna.create_study(direction=task.metric.goal, sampler=sampler)
        logging.getLogger("optuna").propagate = False
        self.space: dict[str, BaseDistribution] | None = None
        self._baseline_values: dict[str, Any] | None = None
        self._unsearched: dict[str, Any] = {}  # knobs found with no range to search (no [knobs] entry, value 0)
        self._pending: dict[int, Trial] = {}  # experiment id -> the trial it was asked for
        self._seen: set[int] = set()
        self._backlog: list[PastExperiment] = []  # learned before the space was known
        #: (insight id, knob) moves already tried as warm starts in this lab.
        self._tried_moves: set[tuple[int, str]] = set()
        if anchor_dir is not None:
            with self._lock:
                self._set_space(*discover(anchor_dir, task.task.editable), baseline=True)

    # ---- public protocol

    def propose(self, ctx: BrainContext) -> Idea:
        knobs, ambiguous = discover(ctx.task_dir, ctx.task.task.editable)
        from_baseline = ctx.parent.id == ctx.baseline.id
        with self._lock:
            if self.space is None:
                self._set_space(knobs, ambiguous, baseline=from_baseline)
            assert self.space is not None
            current = {n: knobs[n].value for n in self.space if n in knobs}
            applies = self._next_warm_start(ctx, current)
            if applies is not None:
                _, seeded = applies
                self.study.enqueue_trial(seeded)
                trial = self.study.ask(self.space)
                values = {n: compact(trial.params[n], d) for n, d in self.space.items()}
            else:
                trial, values = self._ask_distinct(current, ctx.parent)
            self._pending[ctx.experiment_id] = trial
        changes = {n: v for n, v in values.items() if n in current and not _same(v, current[n])}
        try:
            write_values(knobs, changes)
        except (OSError, BrainError) as exc:
            with self._lock:
                self._pending.pop(ctx.experiment_id, None)
                self.study.tell(trial, state=TrialState.FAIL)
            raise BrainError(f"could not write knob values: {exc}") from exc
        return self._idea(ctx, values, changes, current, applies[0] if applies else None)

    def _next_warm_start(self, ctx: BrainContext, current: dict[str, Any]
                         ) -> tuple[tuple[int, str], dict[str, Any]] | None:
        """The next library move to try: the parent's configuration with ONE knob move of an insight applied
        (see `transfer`). Insights in the order retrieval ranked them; within one, the largest move first.

        One move at a time, because an insight records every knob its verified stack moved: some moves carry
        the effect that transfers, others fit only the task they came from (`labmind bench transfer` and an
        agent session showed a whole configuration from a sibling task doing worse than its LR move alone).
        A move that helps is kept by the line, so the next warm start builds on it. At most WARM_STARTS per
        lab, each (insight, knob) once; only knobs this task has."""
        assert self.space is not None
        if len(self._tried_moves) >= WARM_STARTS:
            return None
        for insight in ctx.insights:
            if insight.id is None or insight.kind.value != "insight":
                continue
            moves = [k for k in insight.knobs if k.name in self.space and k.name in current
                     and (insight.id, k.name) not in self._tried_moves]
            for move in sorted(moves, key=lambda k: -_move_size(k)):
                self._tried_moves.add((insight.id, move.name))
                value = transfer(move, current[move.name], self.space[move.name])
                if value is not None and not _same(value, current[move.name]):
                    return (insight.id, move.name), {**current, move.name: value}
        return None

    def learn(self, result: PastExperiment) -> None:
        with self._lock:
            if result.id in self._seen:
                return
            if self.space is None:
                self._backlog.append(result)
                return
            self._learn_locked(result)

    @property
    def n_trials(self) -> int:
        """Trials in the study, finished or not (for tests and reports)."""
        with self._lock:
            return len(self.study.trials)

    # ---- internals (call with the lock held)

    def _set_space(self, knobs: dict[str, Literal], ambiguous: set[str], *, baseline: bool) -> None:
        space = build_space(self.task, knobs, ambiguous)
        if not space:
            raise BrainError(
                "the knobs brain found nothing to search: add top-level UPPER_CASE = <number> settings "
                "to the editable files, or a [knobs] table to labmind.toml"
            )
        self.space = space
        # Only for inferred spaces: with a [knobs] table, what is left out was left out on purpose.
        self._unsearched = {} if self.task.knobs else {n: lit.value for n, lit in knobs.items()
                                                        if n not in space and n not in ambiguous}
        if baseline:
            self._baseline_values = {n: knobs[n].value for n in space}
        backlog, self._backlog = self._backlog, []
        for result in backlog:
            if result.id not in self._seen:
                self._learn_locked(result)

    def _learn_locked(self, result: PastExperiment) -> None:
        value = _outcome(result)
        for insight_id in result.idea.params.get("applies") or ():
            knob = result.idea.params.get(WARM_KNOB)
            if isinstance(insight_id, int) and isinstance(knob, str):
                self._tried_moves.add((insight_id, knob))  # a resumed lab does not try the same move twice
        trial = self._pending.pop(result.id, None)
        if trial is not None:
            self._seen.add(result.id)
            if value is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, value)
            return
        if result.parent_id is None:
            params = self._baseline_values
        elif result.idea.params.get(MARKER) == BRAIN_NAME:
            params = result.idea.params
        else:
            return  # another brain's experiment: no knob values to learn from
        if params is None:
            return  # baseline values unknown (space anchored on a later worktree)
        self._seen.add(result.id)
        self._add_past(params, value)

    def _add_past(self, params: dict[str, Any], value: float | None) -> None:
        """Add a finished experiment this brain never asked for (resume, baseline) as a trial."""
        assert self.space is not None
        known = {n: params[n] for n in self.space if n in params}
        dists = {n: self.space[n] for n in known}
        if not known:
            return
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        try:
            trial = optuna.trial.create_trial(params=known, distributions=dists, value=value, state=state)
        except ValueError:
            return  # values outside today's space (e.g. the [knobs] table changed): nothing to learn
        self.study.add_trial(trial)

    def _ask_distinct(self, current: dict[str, Any], parent: PastExperiment) -> tuple[Trial, dict[str, Any]]:
        """Ask TPE until it suggests something other than the parent's configuration (bounded)."""
        assert self.space is not None
        for attempt in range(_MAX_ASKS):
            trial = self.study.ask(self.space)
            values = {n: compact(trial.params[n], d) for n, d in self.space.items()}
            differs = any(not _same(values[n], current[n]) for n in current)
            if differs or attempt == _MAX_ASKS - 1:
                return trial, values
            # The parent already measured this point: tell TPE so it moves on.
            outcome = _outcome(parent)
            if outcome is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, outcome)
        raise AssertionError("unreachable")

    def _idea(
        self, ctx: BrainContext, values: dict[str, Any], changes: dict[str, Any], current: dict[str, Any],
        applies: tuple[int, str] | None = None,
    ) -> Idea:
        metric = f"{ctx.task.metric.name} ({ctx.task.metric.goal})"
        if changes:
            title = f"set {_show(changes)}"
            before = _show({n: current[n] for n in changes})
            hypothesis = f"Setting {_show(changes)} (parent: {before}) improves {metric}."
        else:
            title = f"repeat {_show(values)}"
            hypothesis = f"Re-measures the parent's knob settings on {metric} (TPE found nothing new)."
        with self._lock:
            done = [t for t in self.study.trials if t.state == TrialState.COMPLETE]
            best = self.study.best_trial if done else None
        if len(done) < _N_STARTUP:
            rationale = f"Random start-up sample ({len(done)} of {_N_STARTUP} completed trials so far)."
        else:
            rationale = f"TPE suggestion after {len(done)} completed trials."
        if best is not None:
            rationale += f" Best so far: {best.value:.6g} at {_show(best.params)}."
        if self._unsearched and len(done) < _N_STARTUP:  # said while the search starts, where a person looks first
            rationale += (f" Not searched: {_show(self._unsearched)} (no default range from a zero, negative or "
                          "text value: give one in a [knobs] table).")
        params: dict[str, Any] = {MARKER: BRAIN_NAME, **values, PARENT: current}
        if applies is not None:
            insight_id, knob = applies
            insight = next(i for i in ctx.insights if i.id == insight_id)
            rationale = (f"Warm start from insight #{insight_id} ({insight.task}, {insight.status.value}): its "
                         f"{knob} move, from {insight.title}. " + rationale)
            params["applies"] = [insight_id]
            params[WARM_KNOB] = knob
        return Idea(title=title, hypothesis=hypothesis, rationale=rationale, params=params)
