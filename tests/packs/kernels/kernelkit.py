"""Small synthetic problems in the upstream formats, built into tasks on CPU."""

from __future__ import annotations

import json
from pathlib import Path

RMSNORM_REF = '''import torch

@torch.no_grad()
def run(x, weight):
    inv = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5)
    return x * inv * weight
'''

KB_PROBLEM = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, features):
        super(Model, self).__init__()
        self.linear = nn.Linear(features, features)

    def forward(self, x):
        return torch.relu(self.linear(x))

batch_size = 16
features = 32

def get_inputs():
    return [torch.randn(batch_size, features)]

def get_init_inputs():
    return [features]
'''


def make_sol_upstream(root: Path, *, workloads: tuple[int, ...] = (4, 9, 16)) -> Path:
    """A SOL-ExecBench-shaped checkout holding one float32 rmsnorm problem (hidden size 64)."""
    problem = root / "examples" / "pytorch" / "rmsnorm_small"
    problem.mkdir(parents=True)
    definition = {
        "name": "rmsnorm_h64", "op_type": "rmsnorm",
        "axes": {"batch": {"type": "var"}, "hidden": {"type": "const", "value": 64}},
        "inputs": {"x": {"shape": ["batch", "hidden"], "dtype": "float32"},
                   "weight": {"shape": ["hidden"], "dtype": "float32"}},
        "outputs": {"y": {"shape": ["batch", "hidden"], "dtype": "float32"}},
        "reference": RMSNORM_REF,
    }
    (problem / "definition.json").write_text(json.dumps(definition))
    (problem / "workload.jsonl").write_text("".join(
        json.dumps({"uuid": f"w{b}", "axes": {"batch": b},
                    "inputs": {"x": {"type": "random"}, "weight": {"type": "random"}},
                    "tolerance": {"max_atol": 1e-4, "max_rtol": 1e-4}}) + "\n" for b in workloads))
    return root


def make_kernelbench(root: Path) -> Path:
    level = root / "KernelBench" / "level1"
    level.mkdir(parents=True)
    (level / "1_Linear_ReLU.py").write_text(KB_PROBLEM)
    return root


HONEST = '''import torch

def run(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * weight
'''

CPU_PEAKS = {"gpu": "cpu", "bf16_tflops": 1.0, "fp32_tflops": 0.5, "copy_gbps": 10.0}
FAST_JOB = {"iterations": 6, "rounds": 2, "audits": 2}


def calibrated_tasks(root: Path, peaks: dict | None = None) -> dict[str, Path]:
    """The synthetic SOL and KernelBench problems built into tasks and calibrated (on the CPU by default)."""
    from labmind.packs.kernels import build, calibrate
    from labmind.packs.kernels.roofline import Peaks

    up = make_sol_upstream(root / "sol")
    kb = make_kernelbench(root / "kb")
    out = root / "tasks"
    sol = build.build_sol_task(build.find_sol_problems(up, ["examples/*/*"])[0], up, out)
    kbt = build.build_kernelbench_task(build.find_kernelbench_problems(kb, ["level1/*"])[0], kb, out)
    peaks = Peaks(**(peaks or CPU_PEAKS))
    for task in (sol, kbt):
        calibrate.calibrate_task(task.path, peaks, repeats=1)
    return {"sol": sol.path, "kb": kbt.path}


def with_solution(task: Path, dest: Path, source: str, file: str = "kernel.py") -> Path:
    """A copy of a calibrated task whose solution file is `source`."""
    import shutil

    shutil.copytree(task, dest)
    (dest / "solution" / file).write_text(source)
    return dest
