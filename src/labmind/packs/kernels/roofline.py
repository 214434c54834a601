"""Speed-of-light bound T_SOL for the GPU at hand: a roofline from a problem's FLOPs and bytes.

SOL-ExecBench's published T_SOL values come from NVIDIA's SOLAR model of a B200 and are not in the
benchmark's repository, so they cannot be used on another GPU. labmind recomputes a bound the same way in
spirit (a fused, whole-problem roofline) from peaks measured once on the GPU that runs the campaign:

    T_SOL = max(FLOPs / peak_flops(pricing dtype), bytes / peak_bandwidth)

- FLOPs: counted by running the reference once under ``torch.utils.flop_counter.FlopCounterMode`` (matrix
  products, convolutions, attention). Elementwise work is not counted; it is priced by its bytes.
- bytes: the problem's inputs plus outputs, each at its own dtype ("fused": intermediates are assumed to
  stay on chip, as SOLAR's fused estimate does).
- pricing dtype: 8-bit float problems at the fp8 tensor-core rate; every other problem, fp32 included, at
  the 16-bit tensor-core rate. This follows SOL-ExecBench's leaderboard policy (`fp32_as: fp16`): fast
  fp32 kernels legitimately use 16-bit tensor cores within the benchmark's tolerances.
- peaks: the measured dense bf16 matrix-product rate and device-to-device copy bandwidth (bytes read
  plus written). The fp8 rate is taken as twice the measured bf16 rate (Hopper's ratio), not measured.

A measured peak is below the datasheet's, so the bound is one a real kernel can approach; it is still a
bound only in the model's sense (a kernel that beats it is reported, never silently scored).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

FP8_DTYPES = frozenset({"float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"})


@dataclass(frozen=True)
class Peaks:
    """Peaks measured once on one GPU."""

    gpu: str
    bf16_tflops: float  # dense bf16 matrix product, measured
    fp32_tflops: float  # fp32 matrix product without TF32, measured (reported, not used for pricing)
    copy_gbps: float  # device-to-device copy, bytes read + written per second / 1e9
    method: str = "8192^3 bf16/fp32 matmul and a 1 GiB device copy; median of timed repeats after warm-up"

    @property
    def fp8_tflops(self) -> float:
        return 2.0 * self.bf16_tflops

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({**asdict(self), "fp8_tflops": self.fp8_tflops}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Peaks:
        data = json.loads(path.read_text())
        data.pop("fp8_tflops", None)
        return cls(**data)


def pricing_rate_tflops(dtypes: list[str], peaks: Peaks) -> float:
    """The tensor-core rate a problem with these input/output dtypes is priced at (see module doc)."""
    return peaks.fp8_tflops if any(d in FP8_DTYPES for d in dtypes) else peaks.bf16_tflops


def t_sol_ms(flops: float, nbytes: float, dtypes: list[str], peaks: Peaks) -> float:
    """The roofline bound in milliseconds."""
    if flops < 0 or nbytes < 0:
        raise ValueError("flops and bytes must be non-negative")
    compute_s = flops / (pricing_rate_tflops(dtypes, peaks) * 1e12)
    memory_s = nbytes / (peaks.copy_gbps * 1e9)
    return max(compute_s, memory_s) * 1e3
