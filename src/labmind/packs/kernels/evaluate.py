"""The kernels pack's trusted evaluator: `python -m labmind.packs.kernels.evaluate [TASK_DIR]`.

labmind runs it after every successful run, in a fresh checkout of the experiment's commit (docs/integrity.md).
It starts the measurement driver in its own process (driver.py), and, for SOL-ExecBench problems when the
upstream checkout is there and a GPU is present, the upstream harness in another; then it scores the
candidate against the GPU's bounds (bounds.json) and prints the metric lines labmind reads:

    sol_score: <mean SOL score over the dev workloads; failures 0>
    speedup: <geometric mean of reference time / candidate time over passed workloads>
    passed: <fraction of dev workloads that passed>
    violations: <integrity findings: the task's constraint requires 0>
    unseen_failures: <held-out shapes the candidate got wrong>

Nothing the candidate prints reaches this output: the driver's stdout and stderr go to
`kernels_candidate.log`, and results come back over a private pipe with a per-run nonce. Details of every
workload are written to `kernels_eval.json`.

`--smoke` (the task's run command) only loads the candidate and checks one workload.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labmind.packs.kernels.score import WorkloadResult, geomean, problem_score
from labmind.packs.kernels.sol_format import solution_json

METRIC = "sol_score"
SECONDARY = ("speedup", "passed", "violations", "unseen_failures")
#: Host time before the first kernel that the upstream (CUPTI, kernels-only) timer cannot see: flagged when
#: labmind's stream time exceeds it by this much and by more than the CUPTI time itself.
HOST_GAP_MS = 0.1


class EvaluationError(RuntimeError):
    pass


def run_driver(task_dir: Path, job: dict[str, Any], log_path: Path, timeout_s: float = 1800) -> dict[str, Any]:
    """Run driver.py on `task_dir` in a child process; return its one result message."""
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labmind.packs.kernels.driver", "--result-fd", str(write_fd)],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env,
            cwd=task_dir)
    os.close(write_fd)
    assert proc.stdin is not None
    proc.stdin.write((json.dumps({**job, "task_dir": str(task_dir.resolve()), "nonce": nonce}) + "\n").encode())
    proc.stdin.close()
    with os.fdopen(read_fd) as pipe:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise EvaluationError(f"the measurement driver ran past {timeout_s:.0f} s") from None
        lines = pipe.read().splitlines()
    messages = [json.loads(line) for line in lines if line.strip()]
    genuine = [m for m in messages if isinstance(m, dict) and m.get("nonce") == nonce]
    if len(genuine) != 1 or len(messages) != 1:
        raise EvaluationError(f"the driver's result channel carried {len(messages)} message(s), "
                              f"{len(genuine)} with the run's nonce: results cannot be trusted")
    return genuine[0]


def run_upstream(task_dir: Path, upstream: Path, log_path: Path, timeout_s: int = 900) -> dict[str, dict[str, Any]]:
    """Run SOL-ExecBench's own harness on the dev workloads; {uuid: evaluation} from its traces."""
    sol = task_dir / "solution"
    spec = json.loads((sol / "spec.json").read_text())
    sources = {p.name: p.read_text() for p in sorted(sol.iterdir()) if p.is_file() and p.name != "spec.json"}
    definition = json.loads((task_dir / "problem" / "definition.json").read_text())
    with tempfile.TemporaryDirectory(prefix="labmind-upstream-") as tmp:
        work = Path(tmp)
        (work / "definition.json").write_text(json.dumps(definition))
        (work / "workload.jsonl").write_text((task_dir / "problem" / "workload.jsonl").read_text())
        (work / "solution.json").write_text(json.dumps(solution_json("labmind", definition["name"], spec, sources)))
        traces = work / "traces.jsonl"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(upstream / "src"), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-c", "from sol_execbench.cli.main import cli; cli()", str(work),
               "--solution", str(work / "solution.json"), "-o", str(traces), "--timeout", str(timeout_s)]
        with open(log_path, "ab") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s + 120, check=False)
        if not traces.exists():
            return {}
        out = {}
        for line in traces.read_text().splitlines():
            if line.strip():
                trace = json.loads(line)
                out[trace["workload"]["uuid"]] = trace.get("evaluation") or {}
        return out


@dataclass
class TaskScore:
    problem: str
    gpu: str
    sol_score: float
    speedup: float
    passed: float
    violations: list[str] = field(default_factory=list)
    unseen_failures: int = 0
    workloads: list[dict[str, Any]] = field(default_factory=list)

    def metric_lines(self) -> list[str]:
        return [f"{METRIC}: {self.sol_score:.6f}", f"speedup: {self.speedup:.6f}", f"passed: {self.passed:.6f}",
                f"violations: {len(self.violations)}", f"unseen_failures: {self.unseen_failures}"]


def score_task(result: dict[str, Any], bounds: dict[str, Any], upstream: dict[str, dict[str, Any]] | None) -> TaskScore:
    """Score one driver result against the GPU's bounds; upstream traces (SOL problems on a GPU) gate too."""
    if not result.get("ok"):
        reason = f"the candidate did not load: {result.get('error', 'unknown error')}"
        return TaskScore(result.get("problem", "?"), bounds.get("gpu", "?"), 0.0, 0.0, 0.0, [],
                         workloads=[{"uuid": "*", "passed": False, "reason": reason}])
    if result.get("device") != bounds.get("gpu"):
        raise EvaluationError(f"bounds.json was measured on {bounds.get('gpu')!r} but this GPU is "
                              f"{result.get('device')!r}: run `labmind pack kernels calibrate` on this GPU")
    rows: list[WorkloadResult] = []
    details, violations, speedups, unseen_failures = [], [], [], 0
    for case in result["cases"]:
        found = list(case["violations"])
        if case["split"] == "unseen":
            if not case["passed"]:
                unseen_failures += 1
                violations.extend(f"unseen shape {case['uuid']}: {v}" for v in found or case["reasons"])
            continue
        b = bounds["workloads"].get(case["uuid"])
        if b is None:
            raise EvaluationError(f"bounds.json has no bounds for workload {case['uuid']}: calibrate again")
        reasons = list(case["reasons"])
        t_k = case["t_ms"]
        if upstream is not None:
            up = upstream.get(case["uuid"], {})
            status = up.get("status", "MISSING")
            up_ms = (up.get("performance") or {}).get("latency_ms")
            if status != "PASSED":
                reasons.append(f"upstream harness: {status}")
            elif t_k is not None and up_ms is not None and t_k - up_ms > max(HOST_GAP_MS, up_ms):
                found.append(f"untimed_host_work: {t_k:.4f} ms on the stream but {up_ms:.4f} ms of kernels (CUPTI)")
        if t_k is not None and case["passed"] and t_k < b["t_sol_ms"]:
            found.append(f"below_sol: {t_k:.5f} ms is faster than the speed-of-light bound {b['t_sol_ms']:.5f} ms")
        ok = case["passed"] and not reasons and not found
        rows.append(WorkloadResult(case["uuid"], ok, t_k, b["t_b_ms"], b["t_sol_ms"], "; ".join(reasons + found)))
        violations.extend(f"workload {case['uuid']}: {v}" for v in found)
        if ok and t_k:
            speedups.append(b["t_ref_ms"] / t_k)
        details.append({**case, "t_b_ms": b["t_b_ms"], "t_sol_ms": b["t_sol_ms"], "t_ref_ms": b["t_ref_ms"],
                        "score": rows[-1].score, "reason": rows[-1].reason})
    passed = sum(r.passed for r in rows) / len(rows) if rows else 0.0
    return TaskScore(result["problem"], bounds["gpu"], problem_score(rows), geomean(speedups), passed,
                     violations, unseen_failures, details)


def evaluate(task_dir: Path, job: dict[str, Any] | None = None) -> TaskScore:
    meta = json.loads((task_dir / "kernels.json").read_text())
    bounds_path = task_dir / "bounds.json"
    if not bounds_path.exists():
        raise EvaluationError(f"{bounds_path} is missing: run `labmind pack kernels calibrate DIR` on the GPU")
    bounds = json.loads(bounds_path.read_text())
    log = task_dir / "kernels_candidate.log"
    result = run_driver(task_dir, {"mode": "evaluate", **(job or {})}, log)
    upstream = None
    up_dir = Path(meta["upstream"]) if meta.get("upstream") else None
    if (meta["suite"] == "sol" and result.get("ok") and result.get("device") != "cpu" and up_dir
            and (up_dir / "src" / "sol_execbench").is_dir()):
        upstream = run_upstream(task_dir, up_dir, log)
    return score_task(result, bounds, upstream)


def smoke(task_dir: Path) -> None:
    result = run_driver(task_dir, {"mode": "smoke", "rounds": 1}, task_dir / "kernels_candidate.log")
    if not result.get("ok"):
        raise EvaluationError(f"the candidate did not load: {result.get('error')}")
    bad = [c for c in result["cases"] if not c["passed"]]
    if bad:
        why = "; ".join(bad[0]["reasons"] + bad[0]["violations"])
        raise EvaluationError(f"workload {bad[0]['uuid']} failed: {why}")
    print(f"smoke check passed on {result['device']} ({result['cases'][0]['uuid']})")


def _defuse(text: str) -> str:
    """Text that cannot be read as a metric line (`name: value`, `name=value`, a JSON object)."""
    return text.replace(":", " ").replace("=", " ").replace("{", "(").replace("}", ")")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labmind.packs.kernels.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task_dir", nargs="?", default=".")
    parser.add_argument("--smoke", action="store_true", help="load the candidate and check one workload")
    args = parser.parse_args(argv)
    task_dir = Path(args.task_dir)
    try:
        if args.smoke:
            smoke(task_dir)
            return 0
        score = evaluate(task_dir)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (task_dir / "kernels_eval.json").write_text(json.dumps(asdict(score), indent=2) + "\n")
    for row in score.workloads:  # reasons can carry candidate text (exception messages): defused below
        status = "ok  " if row["passed"] and not row["reason"] else "FAIL"
        t = f"{row['t_ms']:.4f}" if row.get("t_ms") is not None else "-"
        print(f"  {status} {row['uuid'][:12]:12} t_k {t} ms  t_b {row['t_b_ms']:.4f}  t_sol {row['t_sol_ms']:.5f}  "
              f"S {row['score']:.3f}  {_defuse(row['reason'])[:160]}")
    for v in score.violations:
        print(f"  violation - {_defuse(v)}")
    print("\n".join(score.metric_lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
