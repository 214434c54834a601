"""What a knobs lab learnt about its knobs: how much each one mattered (optuna's PED-ANOVA importance over the
screened experiments) and the range of each that was tried.

Only experiments with a measured metric count (crashes and flagged or rejected ones do not), and each is one
trial with its full knob configuration, as the knobs brain records it in the idea's params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labmind.store import ExperimentRow

#: Fewer measured experiments than this say nothing about importance.
MIN_TRIALS = 5
_EXCLUDED = {"flagged", "rejected", "crashed", "timed_out", "no_metric", "bad_metric", "no_change"}


@dataclass(frozen=True)
class KnobImportance:
    name: str
    importance: float  # share of the explained variation, summing to 1 over the knobs
    tried: str  # the range or the choices tried
    best: Any  # the value in the best measured experiment


def knob_params(exp: ExperimentRow) -> dict[str, Any]:
    return {k: v for k, v in exp.idea.params.items() if not str(k).startswith("_")}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def knob_importance(experiments: list[ExperimentRow], sign: float) -> tuple[list[KnobImportance], int]:
    """Importances, most important first, and the number of experiments they rest on ([] when too few)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.importance import PedAnovaImportanceEvaluator

    trials = [e for e in experiments if e.idea.params.get("_brain") == "knobs" and e.metric is not None
              and e.verdict not in _EXCLUDED and knob_params(e)]
    if len(trials) < MIN_TRIALS:
        return [], len(trials)
    names = sorted(set.intersection(*(set(knob_params(e)) for e in trials)))
    distributions: dict[str, Any] = {}
    for name in names:
        values = [knob_params(e)[name] for e in trials]
        if all(_number(v) for v in values):
            low, high = min(values), max(values)
            if low == high:
                continue  # never varied: nothing to attribute to it
            if all(isinstance(v, int) for v in values):
                distributions[name] = IntDistribution(int(low), int(high))
            else:
                distributions[name] = FloatDistribution(float(low), float(high), log=low > 0 and high / low > 100)
        else:
            choices = sorted({repr(v) for v in values})
            if len(choices) > 1:
                distributions[name] = CategoricalDistribution(choices)
    if not distributions:
        return [], len(trials)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if sign > 0 else "maximize")
    for e in trials:
        params = {n: (repr(knob_params(e)[n]) if isinstance(d, CategoricalDistribution) else knob_params(e)[n])
                  for n, d in distributions.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=float(e.metric)))
    shares = optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    best = min(trials, key=lambda e: sign * float(e.metric))  # type: ignore[arg-type]
    out = []
    for name, share in shares.items():
        values = [knob_params(e)[name] for e in trials]
        tried = (f"{min(values):.4g} to {max(values):.4g}" if all(_number(v) for v in values)
                 else ", ".join(sorted({str(v) for v in values})))
        out.append(KnobImportance(name, float(share), tried, knob_params(best)[name]))
    return out, len(trials)
