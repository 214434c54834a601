"""A campaign: labmind labs over a pack's tasks under one budget, most GPU time where the headroom is.

Headroom is 1 - (the problem's baseline SOL score): a problem already near its speed-of-light bound has
little to give. The budget is shared in proportion to headroom, one lab at a time (one GPU, so timings
never overlap); time a lab leaves unused goes back to the pool for the problems after it. Problems whose
share would fall below `min_share_s` are not started, and the report says so.

Per-problem results come from each lab's own store (`labmind status --json`): the baseline and the best
*confirmed* experiment, so a number in the campaign table passed the same judge and guard as any lab's.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labmind.model import RunPurpose
from labmind.packs.kernels.score import campaign_score, fast_p

MIN_HEADROOM = 0.02  # a problem at its bound still gets a sliver, so ties are broken by order, not skipped


@dataclass
class ProblemRow:
    name: str
    suite: str
    baseline_score: float | None  # the starting solution's SOL score at calibration (None: not calibrated)
    start_speedup: float | None = None  # reference time / starting solution's time (geomean over workloads)
    budget_s: float = 0.0
    lab_baseline: float | None = None
    best: float | None = None
    best_speedup: float | None = None  # the confirmed best's speedup (mean over its confirmation runs)
    experiments: int = 0
    improved: int = 0
    status: str = "not run"
    #: 95% CIs and run counts of the starting score (repeated calibration) and of the confirmed best.
    baseline_ci: list[float] | None = None
    baseline_n: int = 1
    best_ci: list[float] | None = None
    best_n: int = 0

    @property
    def final_speedup(self) -> float | None:
        return self.best_speedup if self.best is not None else self.start_speedup

    @property
    def final(self) -> float:
        """The score the campaign reports for this problem: the confirmed best, else the baseline, else 0."""
        for value in (self.best, self.lab_baseline, self.baseline_score):
            if value is not None:
                return value
        return 0.0


def allocate(headroom: dict[str, float], budget_s: float, min_share_s: float) -> dict[str, float]:
    """Seconds per problem in proportion to headroom; problems whose share is below min_share_s get none and
    their share goes to the rest (largest headroom first)."""
    active = {k: max(v, MIN_HEADROOM) for k, v in headroom.items()}
    while active:
        total = sum(active.values())
        shares = {k: budget_s * v / total for k, v in active.items()}
        smallest = min(shares, key=lambda k: (shares[k], k))
        if shares[smallest] >= min_share_s:
            return dict(sorted(shares.items(), key=lambda kv: -kv[1]))
        del active[smallest]
    return {}


def _labmind(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labmind.packs.kernels.labcli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def lab_summary(task: Path) -> dict[str, Any]:
    proc = _labmind(["status", str(task), "--json"])
    if proc.returncode != 0:
        return {}
    return json.loads(proc.stdout)


def run_campaign(root: Path, budget_s: float, *, brain: str = "knobs", sandbox: str = "auto",
                 min_share_s: float = 60.0, max_experiments: int | None = None, only: list[str] | None = None,
                 log: Any = print) -> list[ProblemRow]:
    manifest = json.loads((root / "campaign.json").read_text())
    if only:
        manifest["tasks"] = [t for t in manifest["tasks"] if any(fnmatch.fnmatch(t["name"], p) for p in only)]
    baseline = json.loads((root / "baseline.json").read_text()) if (root / "baseline.json").exists() else {}
    rows = {t["name"]: ProblemRow(t["name"], t["suite"], baseline.get(t["name"], {}).get("sol_score"),
                                  baseline.get(t["name"], {}).get("speedup"),
                                  baseline_ci=baseline.get(t["name"], {}).get("sol_score_ci"),
                                  baseline_n=int(baseline.get(t["name"], {}).get("sol_score_n") or 1))
            for t in manifest["tasks"]}
    headroom = {n: 1.0 - r.baseline_score for n, r in rows.items() if r.baseline_score is not None}
    plan = allocate(headroom, budget_s, min_share_s)
    deadline = time.monotonic() + budget_s
    for i, name in enumerate(plan):
        remaining = deadline - time.monotonic()
        rest = sum(plan[n] for n in list(plan)[i:])
        share = remaining * plan[name] / rest if rest > 0 else 0.0  # unused time flows to later problems
        if share < min_share_s / 2:
            rows[name].status = "skipped: budget spent"
            continue
        row = rows[name]
        row.budget_s = share
        args = ["run", str(root / name), "--brain", brain, "--budget", f"{int(share)}s", "--sandbox", sandbox,
                "--plain"]
        if max_experiments:
            args += ["--max-experiments", str(max_experiments)]
        log(f"campaign: {name}: {int(share)} s (baseline SOL score {row.baseline_score:.3f})")
        proc = _labmind(args, timeout=share + 900)  # confirmations already started may finish past the budget
        row.status = "ran" if proc.returncode == 0 else f"lab exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
        _fill(row, root / name)
    for name, row in rows.items():
        if name not in plan and row.baseline_score is not None:
            row.status = "not run: share below the minimum"
    return list(rows.values())


def _fill(row: ProblemRow, task: Path) -> None:
    status = lab_summary(task)
    if not status:
        return
    row.lab_baseline = (status.get("baseline") or {}).get("metric")
    best = status.get("best") or {}
    if best.get("confirmed"):
        row.best = best.get("metric")
        row.best_ci, row.best_n = best.get("ci"), int(best.get("n_runs") or 0)
        proc = _labmind(["show", str(best["experiment"]), str(task), "--json"])
        if proc.returncode == 0:
            runs = json.loads(proc.stdout).get("runs", [])
            speedups = [r["secondary"]["speedup"] for r in runs
                        if r.get("purpose") == RunPurpose.CONFIRM and "speedup" in (r.get("secondary") or {})]
            row.best_speedup = sum(speedups) / len(speedups) if speedups else None
    row.experiments = int(status.get("experiments") or 0)
    row.improved = int((status.get("verdicts") or {}).get("improved", 0))


def report(rows: list[ProblemRow], gpu: str) -> tuple[str, dict[str, Any]]:
    """A markdown table and a JSON summary: per problem and aggregate, SOL score on this GPU, fast_p."""
    kb = [r for r in rows if r.suite == "kernelbench"]

    def fp(speedups: list[float | None]) -> dict[float, float]:
        correct = [s is not None and s > 0 for s in speedups]
        return {p: fast_p(correct, [s or 0.0 for s in speedups], [1.0] * len(speedups), p) for p in (1.0, 1.5, 2.0)}

    summary = {
        "gpu": gpu,
        "problems": len(rows),
        "sol_score_baseline": campaign_score(r.baseline_score or 0.0 for r in rows),
        "sol_score_final": campaign_score(r.final for r in rows),
        "kernelbench_fast_p_start": fp([r.start_speedup for r in kb]) if kb else {},
        "kernelbench_fast_p_final": fp([r.final_speedup for r in kb]) if kb else {},
        "rows": [{**asdict(r), "final": r.final} for r in rows],
    }
    lines = [f"SOL score on {gpu} (not comparable with B200 leaderboard numbers)", "",
             "S ± 95% CI half-width (runs) where a score rests on several runs.", "",
             "| problem | suite | start S | start speedup | lab baseline S | best confirmed S | best speedup | "
             "experiments | improved | budget (s) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.suite} | {_fci(r.baseline_score, r.baseline_ci, r.baseline_n)} | "
                     f"{_f(r.start_speedup)} | {_f(r.lab_baseline)} | {_fci(r.best, r.best_ci, r.best_n)} | "
                     f"{_f(r.best_speedup)} | {r.experiments} | {r.improved} | "
                     f"{r.budget_s:.0f} | {r.status} |")
    start, final = summary["sol_score_baseline"], summary["sol_score_final"]
    lines += ["", f"mean SOL score: start {start:.4f} -> final {final:.4f}"]
    for key in ("kernelbench_fast_p_start", "kernelbench_fast_p_final"):
        if summary[key]:
            lines.append(f"{key}: " + ", ".join(f"fast_{p:g} {v:.3f}" for p, v in summary[key].items()))
    return "\n".join(lines) + "\n", summary


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _fci(value: float | None, ci: list[float] | None, n: int) -> str:
    """A score with its 95% CI half-width and runs when it rests on several (`0.527 ± 0.052 (n=3)`)."""
    if value is None or n < 2 or not ci or ci[0] is None or ci[1] is None:
        return _f(value)
    return f"{value:.3f} ± {(ci[1] - ci[0]) / 2:.2g} (n={n})"
