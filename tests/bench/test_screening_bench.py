"""`labmind bench screening`: the replayed screening rules do what they say on streams whose truth is known."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from labmind.bench.judge import REGIMES, Regime, ScriptedBrain, run_perfect, run_ratchet
from labmind.bench.screening import (
    MARGINS,
    TWO_STAGE,
    best_margin,
    deconvolve,
    margin_rule,
    run_screening,
    run_two_stage,
)
from labmind.cli.main import app

QUIET = Regime("quiet", "no noise", "linear", 10.0, 0.0, lambda rng, k: [1.0, -2.0, 0.5, -0.1, 3.0][k % 5])


def test_without_noise_every_screen_keeps_exactly_what_helps() -> None:
    brain = ScriptedBrain(QUIET, rep=0, seeds=0)
    perfect = run_perfect(QUIET, 0, brain, budget=10)
    assert perfect.gain == 9.0
    assert run_ratchet(QUIET, 0, brain, budget=11, margin=0.0).gain == 9.0
    for drop, keep in TWO_STAGE:
        assert run_two_stage(QUIET, 0, brain, budget=11, drop=drop, keep=keep).gain == 9.0


def test_a_negative_margin_keeps_near_ties_and_a_positive_one_refuses_them() -> None:
    noisy = Regime("ties", "one idea a shade worse, then a gain", "linear", 10.0, 1.0,
                   lambda rng, k: [-0.01, 2.0][k % 2])
    brain = ScriptedBrain(noisy, rep=5, seeds=0)
    # With a margin of −100 sd everything is kept; with +100 sd nothing is.
    assert run_ratchet(noisy, 5, brain, budget=3, margin=-100.0).claims == 2
    assert run_ratchet(noisy, 5, brain, budget=3, margin=100.0).claims == 0


def test_the_fitted_margin_follows_the_effects_it_sees() -> None:
    rng = np.random.default_rng(0)
    # Differences of a point-mass effect (+2) plus the noise of two runs: the fit puts its mass near +2.
    grid, weights = deconvolve(list(2.0 + rng.normal(0, 1.0, 400)), noise_sd=1.0)
    assert abs(float(grid @ weights) - 2.0) < 0.15 and abs(weights.sum() - 1) < 1e-9
    # Every idea helps a lot: refusing any costs, so the smallest margin wins; every idea hurts: one that refuses.
    assert best_margin(np.array([5.0]), np.array([1.0]), sd=1.0, horizon=20, rng=rng) == min(MARGINS)
    assert best_margin(np.array([-5.0]), np.array([1.0]), sd=1.0, horizon=20, rng=rng) >= 0.0


def test_two_stage_spends_a_second_run_only_on_close_calls() -> None:
    # Every idea is a clear loss (−50 sd): each is dropped on its one screen run, so runs = ideas + baseline.
    losing = Regime("losing", "clear losses", "linear", 10.0, 1.0, lambda rng, k: -50.0)
    out = run_two_stage(losing, 0, ScriptedBrain(losing, rep=0, seeds=0), budget=21, drop=0.5, keep=1.0)
    assert out.runs == 21 and out.verdicts == 20 and out.gain == 0.0
    # Every idea a near-tie: each close call costs two runs (the screen, a second seed the incumbent has run
    # on) or three (a fresh seed, where the incumbent runs too: the first time, and after each keep).
    ties = Regime("ties", "near-ties", "linear", 10.0, 1.0, lambda rng, k: 0.0)
    out = run_two_stage(ties, 0, ScriptedBrain(ties, rep=0, seeds=0), budget=21, drop=100.0, keep=100.0)
    assert out.runs <= 21 and 20 // 3 <= out.verdicts <= 20 // 2
    # baseline + a screen and a second run per idea + the incumbent's run on a fresh seed, once per incumbent
    assert out.runs <= 1 + 2 * out.verdicts + (out.claims + 1)


def test_the_ceiling_bounds_every_screen_and_the_reference_gets_the_claim_s_runs() -> None:
    result = run_screening(REGIMES["small"], reps=6, experiments=30, claim_runs=4)
    assert result.runs == 35 and result.screen_runs == 31
    rules = {"ratchet", "perfect", "fitted margin", *(margin_rule(m) for m in MARGINS),
             *(f"two-stage {d:g}/{k:g}" for d, k in TWO_STAGE)}
    assert set(result.gains) == rules and all(len(v) == 6 for v in result.gains.values())
    for rep in range(6):
        # Every rule but the reference sees at most the same 30 ideas; the ceiling keeps all that help.
        assert all(result.gains["perfect"][rep] >= result.gains[r][rep] - 1e-9 for r in rules - {"ratchet"})
    best = result.oracle_margin()
    assert result.summary(margin_rule(best))["gain"] == max(result.summary(margin_rule(m))["gain"] for m in MARGINS)
    assert result.summary("ratchet")["vs_ratchet"] == 1.0


def test_the_command_prints_json_with_the_oracle_margin() -> None:
    out = CliRunner().invoke(app, ["bench", "screening", "--regimes", "large", "--reps", "3", "--experiments", "10",
                                   "--claim-runs", "2", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert row["regime"] == "large" and row["runs"] == 13 and row["screen_runs"] == 11
    assert row["oracle_margin"] in MARGINS and row["rules"]["perfect"]["n"] == 3
    bad = CliRunner().invoke(app, ["bench", "screening", "--regimes", "tiny"])
    assert bad.exit_code != 0 and "unknown regime" in bad.output
