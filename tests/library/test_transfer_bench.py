"""`labmind bench transfer` end to end on a small campaign: both arms run the real lab loop on the same tasks and
seeds; the first task is identical in both (its library starts empty); later tasks of the on arm warm-start from
insights and the bench reports what they did."""

from __future__ import annotations

import json
import math

import pytest
from lab.toy import labmind  # tests/ is on sys.path (rootdir import mode)

from labmind.bench.transfer import BASE, family, interval


def test_the_family_shares_its_lr_optimum_and_not_the_rest() -> None:
    specs = family(0, 4)
    lrs = [math.log10(s.lr) for s in specs]
    assert max(lrs) - min(lrs) < 0.4 and min(lrs) > -2.2 and max(lrs) < -1.2
    assert len({round(s.w, 3) for s in specs}) == 4
    best = specs[0]
    at_opt = best.true_loss({"LR": best.lr, "WIDTH": 2 ** best.w, "DECAY": best.d})
    assert at_opt == pytest.approx(1.0) and best.true_loss(BASE) > 1.2
    assert family(0, 4) == specs and family(1, 4) != specs
    iv = interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.n == 3 and iv.half == pytest.approx(2.4841, rel=1e-3)


@pytest.mark.slow
def test_bench_transfer_runs_both_arms_and_reports_with_cis() -> None:
    proc = labmind("bench", "transfer", "--tasks", "2", "--experiments", "6", "--reps", "2", "--json", timeout=900)
    out = json.loads(proc.stdout)
    assert out["tasks"] == 2 and out["reps"] == 2 and out["family"] == "bench/transfer"
    first = out["per_task"][0]
    # Task 1 has nothing to draw on: both arms ran the same experiments on the same seeds.
    assert first["gain"]["on"]["mean"] == pytest.approx(first["gain"]["off"]["mean"])
    assert first["first_real"]["diff"]["mean"] == 0
    later = out["later_tasks"]
    assert later["gain"]["on"]["n"] == 2 and later["gain"]["diff"]["n"] == 2
    assert later["insights_recorded"] >= 1, "task 1 verified a gain in each repetition"
    assert later["applied"] >= 1 and 0 <= later["applied_hits"] <= later["applied"]
    human = labmind("bench", "transfer", "--tasks", "2", "--experiments", "3", "--reps", "2", timeout=900).stdout
    assert "library on" in human and "(95% CI, n=2)" in human
