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


def calibrate_task(task_dir: Path, peaks: Peaks, *, commit: bool = True) -> dict[str, Any]:
    result = run_driver(task_dir, {"mode": "calibrate"}, task_dir / "kernels_candidate.log")
    if not result.get("ok"):
        raise EvaluationError(f"calibration of {task_dir.name} failed: {result.get('error')}")
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


def calibrate_all(root: Path, *, only: list[str] | None = None, log: Any = print) -> dict[str, Any]:
    """Bounds for every task, then the starting solution's score; DIR/baseline.json collects the scores."""
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
            calibrate_task(task_dir, peaks)
            score = evaluate(task_dir)
        except (EvaluationError, subprocess.CalledProcessError, OSError) as exc:
            scores[name] = {"error": str(exc)}
            log(f"{name}: not calibrated: {exc}")
            continue
        scores[name] = {"sol_score": score.sol_score, "speedup": score.speedup, "passed": score.passed,
                        "violations": score.violations, "unseen_failures": score.unseen_failures,
                        "workloads": score.workloads, "gpu": score.gpu}
        log(f"{name}: SOL score {score.sol_score:.4f}, speedup {score.speedup:.3f}, passed {score.passed:.2f}"
            + (f", violations {len(score.violations)}" if score.violations else ""))
        path.write_text(json.dumps(scores, indent=2) + "\n")  # after every task: a crash loses nothing done
    return scores
