"""The measurement driver: a separate process that loads a problem and a candidate, checks and times it.

Started by the trusted evaluator (`evaluate.py`) as `python -m labmind.packs.kernels.driver`. It reads its
job (a JSON object) from stdin *before* any candidate code is imported, and writes exactly one result
message, carrying the job's nonce, to a pipe the evaluator passed it (`--result-fd`). Its stdout and
stderr, which the candidate shares, go to a side log the evaluator never parses, so a candidate that
prints metric lines or forged results reaches nothing that counts.

What it checks, per workload (docs/integrity.md: trusted evaluation and re-validation):
- correctness over several rounds of fresh inputs, against a float64 reference (see checks.py), with the
  outputs read on the caller's stream *right after the call returns*, before any device-wide sync: work
  left running on a hidden stream or a background thread is not a result yet;
- the candidate does not modify its inputs, and returns plain tensors;
- timing with fresh input *values* written into the same buffers before every timed iteration (so a cache
  keyed on pointers returns stale results, and one keyed on contents never hits), outputs zero-filled, L2
  flushed; the outputs of randomly chosen timed iterations (secrets, not the seed) are checked too;
- wall-clock per call up to a device-wide synchronize against the GPU time of the call on its stream:
  work that escapes the stream's timeline (hidden streams, threads) shows up as wall time;
- no threads started after the first call, and no timer or checker function replaced.
Held-out ("unseen") shapes get the correctness rounds only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Wall-clock may exceed the stream's GPU time by this factor plus UNSYNCED_SLACK_MS before the call
#: counts as leaving work outside its stream (a sync and a launch cost tens of microseconds).
UNSYNCED_FACTOR = 1.5
UNSYNCED_SLACK_MS = 0.05


@dataclass
class CaseResult:
    uuid: str
    split: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # integrity problems, apart from plain errors
    t_ms: float | None = None  # median GPU time of the call on its stream (host time on CPU)
    wall_ms: float | None = None  # median wall-clock from the call to a device-wide synchronize
    iterations: int = 0
    max_abs_error: float | None = None
    error_ratio: float | None = None
    flops: float | None = None
    bytes: float | None = None


def unsynced_work(t_ms: float, wall_ms: float) -> bool:
    """True when a call's wall-clock (to a device-wide sync) is far above its stream's GPU time."""
    return wall_ms > UNSYNCED_FACTOR * t_ms + UNSYNCED_SLACK_MS


class _Clock:
    """GPU time on the current stream (CUDA events) and wall-clock to a device-wide synchronize. On CPU both
    are the host's clock, so unsynced work is caught there by the immediate output read and the thread
    census instead."""

    def __init__(self, torch_mod: Any, device: Any):
        self.torch = torch_mod
        self.cuda = device.type == "cuda"
        self.perf = time.perf_counter
        self.flush_buf = None
        if self.cuda:
            l2 = torch_mod.cuda.get_device_properties(device).L2_cache_size
            self.flush_buf = torch_mod.empty(max(2 * l2, 1 << 20), dtype=torch_mod.uint8, device=device)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def flush(self) -> None:
        if self.flush_buf is not None:
            self.flush_buf.zero_()


class Driver:
    def __init__(self, job: dict[str, Any]):
        import torch

        from labmind.packs.kernels import checks, problems

        self.torch, self.checks, self.problems = torch, checks, problems
        self.job = job
        self.device = torch.device(job.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.problem = problems.load_problem(Path(job["task_dir"]))
        self.rounds = int(job.get("rounds", 3))
        self.iterations = int(job.get("iterations", 20))
        self.warmup = int(job.get("warmup", 3))
        self.audits = int(job.get("audits", 2))
        self.seed = int(job.get("seed", 1000))
        self.clock = _Clock(torch, self.device)
        self._guarded = self._critical()

    # -- integrity snapshots ---------------------------------------------------------------------------

    def _critical(self) -> dict[str, int]:
        """ids of the functions measurement and checking rely on, taken before candidate code runs."""
        torch = self.torch
        objs: dict[str, Any] = {
            "time.perf_counter": time.perf_counter, "torch.cuda.synchronize": torch.cuda.synchronize,
            "torch.cuda.Event.record": torch.cuda.Event.record,
            "torch.cuda.Event.elapsed_time": torch.cuda.Event.elapsed_time,
            "torch.Tensor.clone": torch.Tensor.clone, "torch.Tensor.copy_": torch.Tensor.copy_,
            "torch.Tensor.double": torch.Tensor.double, "torch.Tensor.abs": torch.Tensor.abs,
            "torch.Tensor.__sub__": torch.Tensor.__sub__, "torch.equal": torch.equal,
            "torch.isfinite": torch.isfinite, "torch.where": torch.where,
            "checks.compare": self.checks.compare, "checks._compare_one": self.checks._compare_one,
            "Driver._time_case": Driver._time_case, "Driver._correct": Driver._correct,
        }
        return {name: id(obj) for name, obj in objs.items()}

    def _tampered(self) -> list[str]:
        now = self._critical()
        return [name for name, ident in self._guarded.items() if now.get(name) != ident]

    # -- per case -----------------------------------------------------------------------------------------

    def _fresh_outputs(self, case: Any, candidate: Any) -> None:
        if getattr(candidate, "dps", False):
            torch = self.torch
            candidate.outputs = [torch.zeros(shape, dtype=dtype, device=self.device)
                                 for shape, dtype in self.problem.output_specs(case)]

    def _refs(self, case: Any, inputs: list[Any]) -> tuple[list[Any], list[Any] | None]:
        torch = self.torch
        ref = self.problem.reference(self.device)([x.clone() if isinstance(x, torch.Tensor) else x for x in inputs])
        try:
            exact = self.problem.reference(self.device, float64=True)(inputs)
            exact = [e if isinstance(e, torch.Tensor) else torch.as_tensor(e) for e in exact]
        except Exception:  # no float64 kernel for some op: fall back to the reference's own dtypes
            exact = None
        return ref, exact

    def _correct(self, case: Any, candidate: Any, result: CaseResult, rounds: int) -> bool:
        torch = self.torch
        for r in range(rounds):
            inputs = self.problem.inputs(case, self.seed + 7919 * r, self.device)
            ref, exact = self._refs(case, inputs)
            before = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
            self._fresh_outputs(case, candidate)
            outs = candidate(inputs)
            seen = [o.clone() if type(o) is torch.Tensor else o for o in outs]  # on the caller's stream, no sync
            self.clock.sync()
            verdict = self.checks.compare(seen, exact, ref, self.problem.tolerance(case, ref))
            if not verdict.passed:
                settled = self.checks.compare(outs, exact, ref, self.problem.tolerance(case, ref))
                if settled.passed:  # right only after a device-wide sync: the work ran off the caller's stream
                    result.violations.append("unsynced_output: outputs were not ready on the caller's stream "
                                             "when the call returned (work on a hidden stream or thread)")
                result.reasons.append(f"round {r}: {verdict.reason}")
                return False
            if not self.checks.inputs_unchanged(before, inputs):
                result.violations.append("modified_inputs: the candidate wrote into its inputs")
                return False
            result.max_abs_error = max(result.max_abs_error or 0.0, verdict.max_abs_error)
            if verdict.error_ratio is not None:
                result.error_ratio = max(result.error_ratio or 0.0, verdict.error_ratio)
            del inputs, ref, exact, before, outs, seen  # multi-GiB problems: free before the next round
        return True

    def _time_case(self, case: Any, fn: Any, result: CaseResult, audit: bool) -> None:
        """Median GPU and wall time of `fn` with fresh input values every iteration."""
        torch = self.torch
        inputs = self.problem.inputs(case, self.seed, self.device)
        for _ in range(self.warmup):
            self._fresh_outputs(case, fn)
            fn(inputs)
        self.clock.sync()
        start = time.perf_counter()
        self._fresh_outputs(case, fn)
        fn(inputs)
        self.clock.sync()
        one = time.perf_counter() - start
        n = max(5, min(self.iterations, int(2.0 / max(one, 1e-6))))  # ~2 s per workload at most
        audit_at = set()
        if audit:
            while len(audit_at) < min(self.audits, n - 1):
                audit_at.add(1 + secrets.randbelow(n - 1))  # never the first: caches hit from the second on
        gpu, wall = [], []
        for i in range(n):
            fresh = self.problem.inputs(case, self.seed + 104729 * (i + 1), self.device)
            for dst, src in zip(inputs, fresh, strict=True):
                if isinstance(dst, torch.Tensor):
                    dst.copy_(src)  # same buffers, new values
            self._fresh_outputs(case, fn)
            self.clock.flush()
            self.clock.sync()
            if self.clock.cuda:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                t0 = time.perf_counter()
                begin.record()
                outs = fn(inputs)
                end.record()
                seen = [o.clone() for o in outs] if i in audit_at else None
                torch.cuda.synchronize()
                t1 = time.perf_counter()
                gpu.append(begin.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                outs = fn(inputs)
                t1 = time.perf_counter()
                seen = [o.clone() for o in outs] if i in audit_at else None
                gpu.append((t1 - t0) * 1e3)
            if seen is None:
                wall.append((t1 - t0) * 1e3)
            else:
                ref, exact = self._refs(case, inputs)
                verdict = self.checks.compare(seen, exact, ref, self.problem.tolerance(case, ref))
                if not verdict.passed:
                    result.violations.append(f"timed_output_mismatch: a timed call (iteration {i}) returned a "
                                             f"wrong result for fresh input values: {verdict.reason}")
        result.t_ms = statistics.median(gpu)
        result.wall_ms = statistics.median(wall) if wall else result.t_ms
        result.iterations = n

    def run_case(self, case: Any, split: str, candidate: Any, mode: str) -> CaseResult:
        result = CaseResult(case.uuid, split, passed=False)
        try:
            if mode == "calibrate":
                self._calibrate(case, result)
                return result
            if not self._correct(case, candidate, result, self.rounds if split == "dev" else 2):
                return result
            if split == "dev" and mode == "evaluate":
                threads = threading.active_count()
                self._time_case(case, candidate, result, audit=True)
                if threading.active_count() > threads:
                    result.violations.append(f"threads: {threading.active_count() - threads} thread(s) started "
                                             "during timing")
                assert result.t_ms is not None and result.wall_ms is not None
                if self.clock.cuda and unsynced_work(result.t_ms, result.wall_ms):
                    result.violations.append(f"unsynced_work: wall-clock {result.wall_ms:.4f} ms per call but "
                                             f"{result.t_ms:.4f} ms on the call's stream")
            result.passed = not result.violations
        except Exception as exc:
            result.reasons.append(f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        return result

    def _calibrate(self, case: Any, result: CaseResult) -> None:
        """FLOPs and bytes of the reference (for T_SOL) and its timing (the baseline T_b)."""
        from torch.utils.flop_counter import FlopCounterMode

        torch = self.torch
        inputs = self.problem.inputs(case, self.seed, self.device)
        ref = self.problem.reference(self.device)
        with FlopCounterMode(display=False) as counter:
            outs = ref(inputs)
        result.flops = float(counter.get_total_flops())
        tensors = [x for x in (*inputs, *outs) if isinstance(x, torch.Tensor)]
        result.bytes = float(sum(t.numel() * t.element_size() for t in tensors))
        self._time_case(case, ref, result, audit=False)
        result.passed = True

    def run(self) -> dict[str, Any]:
        mode = self.job.get("mode", "evaluate")
        splits = ["dev"] if mode == "smoke" else ["dev", "unseen"]
        candidate = None if mode == "calibrate" else self.problem.candidate(self.device)
        results: list[CaseResult] = []
        for split in splits:
            cases = self.problem.cases(split)
            if mode == "smoke":
                cases = cases[:1]
            for case in cases:
                result = self.run_case(case, split, candidate, "calibrate" if mode == "calibrate" else mode)
                results.append(result)
                tampered = self._tampered()  # checked after every case, so a patch undone later is still seen
                if tampered:
                    result.passed = False
                    result.violations.append(f"monkey_patch: replaced {', '.join(tampered)}")
        return {"problem": self.problem.name, "device": self._device_name(), "mode": mode,
                "cases": [asdict(r) for r in results]}

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return str(self.torch.cuda.get_device_name(self.device))
        return "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    job = json.loads(sys.stdin.readline())
    nonce = job.pop("nonce")
    result_fd = args.result_fd
    try:
        message: dict[str, Any] = {"ok": True, **Driver(job).run()}
    except Exception as exc:  # the candidate failed to load or build: a result, not a driver crash
        traceback.print_exc()
        message = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps({"nonce": nonce, **message}) + "\n")


if __name__ == "__main__":
    main()
