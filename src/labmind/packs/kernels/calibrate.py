"""Calibration on the GPU at hand: peaks (once), then each task's bounds.json (T_SOL and T_b per workload).

Run on the GPU that will run the campaign: `labmind pack kernels calibrate DIR`. The bounds are written into
each task and committed there, because they are protected files of the task (a candidate can neither read
a different bound nor change it).
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labmind.packs.kernels.evaluate import EvaluationError, run_driver
from labmind.packs.kernels.roofline import Peaks, t_sol_ms
from labmind.packs.kernels.sol_format import Definition


def measure_peaks(repeats: int = 10) -> Peaks:
    """Dense bf16 and fp32 matrix-product rates and device-copy bandwidth of GPU 0 (median of repeats)."""
    import torch

    if not torch.cuda.is_available():
        raise EvaluationError("measuring peaks needs a CUDA GPU")
    dev = torch.device("cuda")

    def timed(fn: Any) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        return statistics.median(times)

    n = 8192
    rates = {}
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(n, n, device=dev, dtype=dtype)
        y = torch.randn(n, n, device=dev, dtype=dtype)
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 figure is true fp32
        rates[dtype] = 2 * n**3 / timed(lambda x=x, y=y: x @ y) / 1e12
        del x, y
    src = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src))
    return Peaks(gpu=torch.cuda.get_device_name(dev), bf16_tflops=rates[torch.bfloat16],
                 fp32_tflops=rates[torch.float32], copy_gbps=2 * src.numel() / seconds / 1e9)


def task_dtypes(task_dir: Path, result: dict[str, Any]) -> list[str]:
    """The dtypes that decide a problem's pricing rate."""
    meta = json.loads((task_dir / "kernels.json").read_text())
    if meta["suite"] == "sol":
        return Definition.load(task_dir / "problem" / "definition.json").dtypes
    return list(meta.get("dtypes", ["float32"]))


def bounds_from(result: dict[str, Any], peaks: Peaks, dtypes: list[str]) -> dict[str, Any]:
    """bounds.json's content from a calibration run of the driver."""
    workloads = {}
    for case in result["cases"]:
        if not case["passed"]:
            raise EvaluationError(f"the reference failed on workload {case['uuid']}: {'; '.join(case['reasons'])}")
        t_sol = t_sol_ms(case["flops"], case["bytes"], dtypes, peaks)
        workloads[case["uuid"]] = {"t_sol_ms": t_sol, "t_b_ms": case["t_ms"], "t_ref_ms": case["t_ms"],
                                   "t_b_runs_ms": case.get("t_runs_ms", [case["t_ms"]]),
                                   "flops": case["flops"], "bytes": case["bytes"], "split": case["split"]}
    return {"gpu": peaks.gpu, "peaks": asdict(peaks), "baseline": "eager PyTorch reference",
            "workloads": workloads}


def prune_unseen(task_dir: Path, failed: set[str]) -> list[str]:
    """Drop held-out shapes the reference itself cannot run (an assert on a constant, a divisibility
    rule): they test nothing about the candidate. Returns the files changed."""
    if not failed:
        return []
    meta = json.loads((task_dir / "kernels.json").read_text())
    if meta["suite"] == "sol":
        path = task_dir / "problem" / "unseen.jsonl"
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line)["uuid"] not in failed]
        path.write_text("".join(line + "\n" for line in kept))
    else:
        path = task_dir / "problem" / "unseen.json"
        overrides = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in overrides.items() if f"unseen-{k}-{v}" not in failed}) + "\n")
    return [path.relative_to(task_dir).as_posix()]


#: Calibrations per task: two calibrations minutes apart moved single SOL scores by 0.03–0.07 on an H100
#: (their order flipped), so the bounds take the median of several and the starting score gets a CI.
DEFAULT_REPEATS = 3


def merge_calibrations(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One calibration from repeats of the driver: per workload the median time (a stall in one repeat does not
    set the bound), the repeats' times kept as `t_runs_ms`; a workload passes only if it passed every time."""
    first = results[0]
    cases = []
    for case in first["cases"]:
        same = [next(c for c in r["cases"] if c["uuid"] == case["uuid"]) for r in results]
        times = [c["t_ms"] for c in same if c.get("t_ms") is not None]
        reasons = [reason for c in same for reason in c.get("reasons", [])]
        cases.append({**case, "passed": all(c["passed"] for c in same), "reasons": reasons,
                      "t_ms": statistics.median(times) if times else case.get("t_ms"), "t_runs_ms": times})
    return {**first, "cases": cases}


def score_summary(values: list[float]) -> dict[str, Any]:
    """A starting score from repeats: mean, sd, 95% CI (Student t) and n, as baseline.json keeps it."""
    from labmind.judge import summarize

    s = summarize(values)
    return {"sol_score": s.mean, "sol_score_sd": s.sd, "sol_score_ci": [s.ci_low, s.ci_high],
            "sol_score_n": s.n, "sol_score_runs": values}


def calibrate_task(task_dir: Path, peaks: Peaks, *, commit: bool = True, repeats: int = DEFAULT_REPEATS
                   ) -> dict[str, Any]:
    results = []
    for _ in range(max(1, repeats)):
        result = run_driver(task_dir, {"mode": "calibrate"}, task_dir / "kernels_candidate.log")
        if not result.get("ok"):
            raise EvaluationError(f"calibration of {task_dir.name} failed: {result.get('error')}")
        results.append(result)
    result = merge_calibrations(results)
    if result["device"] != peaks.gpu:
        raise EvaluationError(f"peaks were measured on {peaks.gpu!r} but this is {result['device']!r}")
    failed_unseen = {c["uuid"] for c in result["cases"] if c["split"] == "unseen" and not c["passed"]}
    changed = prune_unseen(task_dir, failed_unseen)
    result = {**result, "cases": [c for c in result["cases"] if c["uuid"] not in failed_unseen]}
    bounds = bounds_from(result, peaks, task_dtypes(task_dir, result))
    (task_dir / "bounds.json").write_text(json.dumps(bounds, indent=2) + "\n")
    if commit:
        files = ["bounds.json", *changed]
        subprocess.run(["git", "add", *files], cwd=task_dir, check=True)
        subprocess.run(["git", "-c", "user.name=labmind", "-c", "user.email=labmind@localhost", "commit", "-q",
                        "-m", f"bounds for {peaks.gpu}", "--", *files], cwd=task_dir, check=True)
    return bounds


def load_or_measure_peaks(root: Path) -> Peaks:
    """Peaks are measured once per GPU model and kept in DIR/peaks.json."""
    import torch

    path = root / "peaks.json"
    if path.exists():
        peaks = Peaks.load(path)
        if torch.cuda.is_available() and peaks.gpu == torch.cuda.get_device_name(0):
            return peaks
    peaks = measure_peaks()
    peaks.save(path)
    return peaks


def calibrate_all(root: Path, *, only: list[str] | None = None, log: Any = print,
                  repeats: int = DEFAULT_REPEATS) -> dict[str, Any]:
    """Bounds for every task (median of `repeats` calibrations), then the starting solution's score, evaluated
    `repeats` times (mean with its 95% CI); DIR/baseline.json collects the scores."""
    from labmind.packs.kernels.evaluate import evaluate

    peaks = load_or_measure_peaks(root)
    log(f"peaks on {peaks.gpu}: bf16 {peaks.bf16_tflops:.0f} TFLOP/s, fp32 {peaks.fp32_tflops:.1f} TFLOP/s, "
        f"copy {peaks.copy_gbps:.0f} GB/s")
    manifest = json.loads((root / "campaign.json").read_text())
    path = root / "baseline.json"
    scores: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for task in manifest["tasks"]:
        name = task["name"]
        if only and name not in only:
            continue
        task_dir = root / task["path"]
        try:
            calibrate_task(task_dir, peaks, repeats=repeats)
            runs = [evaluate(task_dir) for _ in range(max(1, repeats))]
        except (EvaluationError, subprocess.CalledProcessError, OSError) as exc:
            scores[name] = {"error": str(exc)}
            log(f"{name}: not calibrated: {exc}")
            continue
        score = runs[-1]
        scores[name] = {**score_summary([r.sol_score for r in runs]),
                        "speedup": statistics.fmean(r.speedup for r in runs), "passed": score.passed,
                        "violations": score.violations, "unseen_failures": score.unseen_failures,
                        "workloads": score.workloads, "gpu": score.gpu}
        log(f"{name}: SOL score {score_text(scores[name])}, speedup {scores[name]['speedup']:.3f}, "
            f"passed {score.passed:.2f}" + (f", violations {len(score.violations)}" if score.violations else ""))
        path.write_text(json.dumps(scores, indent=2) + "\n")  # after every task: a crash loses nothing done
    return scores


def score_text(row: dict[str, Any]) -> str:
    """`0.527 ± 0.012 (95% CI, n=3)`, or the single value of a calibration made before repeats."""
    from labmind.figures import figure_text

    return figure_text(row["sol_score"], row.get("sol_score_n", 1), ci=row.get("sol_score_ci"), digits=4)
