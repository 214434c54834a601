"""`labmind bench judge`: the replayed rules do what they say, and a short bench runs labmind's side through
the real lab loop with every rule given the same runs."""

from __future__ import annotations

from pathlib import Path

from labmind.bench.judge import REGIMES, Regime, ScriptedBrain, run_perfect, run_ratchet, run_regime


def test_the_ratchet_keeps_what_beats_its_best_run_and_perfect_keeps_what_truly_helps() -> None:
    # No noise: the ratchet sees the truth, so it keeps exactly the ideas that help, as the ceiling does.
    quiet = Regime("quiet", "no noise", "linear", 10.0, 0.0, lambda rng, k: [1.0, -2.0, 0.5, -0.1, 3.0][k % 5])
    brain = ScriptedBrain(quiet, rep=0, seeds=1)
    ratchet = run_ratchet(quiet, 0, brain, budget=6)
    perfect = run_perfect(quiet, 0, brain, budget=5)
    assert ratchet.runs == 6 and ratchet.verdicts == 5
    assert ratchet.gain == perfect.gain == 4.5 and ratchet.claims == perfect.claims == 3
    assert ratchet.false_claims == 0


def test_a_noisy_ratchet_keeps_false_steps_the_ceiling_never_does() -> None:
    regime = REGIMES["small"]
    brain = ScriptedBrain(regime, rep=3, seeds=1)
    ratchet = run_ratchet(regime, 3, brain, budget=80)
    perfect = run_perfect(regime, 3, brain, budget=80)
    assert ratchet.false_claims > 0 and perfect.false_claims == 0
    assert perfect.gain >= ratchet.gain
    truth = sum(e for e in brain.effects[:80] if e > 0)
    assert abs(perfect.gain - truth) < 1e-9


def test_a_short_bench_gives_every_rule_labmind_s_runs(tmp_path: Path) -> None:
    result = run_regime(REGIMES["large"], reps=2, experiments=8)
    assert set(result.outcomes) == {"labmind", "ratchet", "previous", "perfect"}
    for rep in range(2):
        runs = {rule: result.outcomes[rule][rep].runs for rule in result.outcomes}
        # The baseline's runs and one screening run per experiment at least, and the same for every rule.
        assert runs["labmind"] >= 3 + 8 and len(set(runs.values())) == 1, runs
    mine = result.summary("labmind")
    assert mine["false_claims"] == 0 and mine["reached"] >= mine["gain"]
    best = max(result.summary(rule)["gain"] for rule in ("labmind", "ratchet", "previous"))
    assert result.summary("perfect")["gain"] >= best
