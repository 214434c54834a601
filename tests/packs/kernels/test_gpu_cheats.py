"""The GPU forms of the cheats: work on a hidden CUDA stream, and host work that CUPTI's kernel span misses.

Skipped without a CUDA GPU, since both need real kernels on a real timeline. The untimed-host-work test also
needs the SOL-ExecBench checkout (LABMIND_SOL_UPSTREAM) and its harness's packages (pydantic, cupti-python).
On CPU, test_evaluator.py covers the same checks: the background-thread form of hidden work, and the
upstream-gap rule on recorded traces.
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: hidden streams and CUPTI timing exist only there")

from labmind.packs.kernels import evaluate  # noqa: E402

from .kernelkit import FAST_JOB, HONEST, calibrated_tasks, with_solution  # noqa: E402

GPU_PEAKS = {"bf16_tflops": 700.0, "fp32_tflops": 50.0, "copy_gbps": 3000.0}

HIDDEN_STREAM = '''import torch

_side = torch.cuda.Stream()

def run(x, weight):
    out = torch.empty_like(x)
    _side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(_side):  # the caller's stream never waits for this
        torch.cuda._sleep(20_000_000)
        out.copy_(x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * weight)
    return out
'''

HOST_WORK = '''import time
import torch

def run(x, weight):
    time.sleep(0.003)  # stands for host-side precomputation done before the first kernel is launched
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * weight
'''


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return calibrated_tasks(tmp_path_factory.mktemp("gpu"), {"gpu": torch.cuda.get_device_name(0), **GPU_PEAKS})


def test_honest_solution_passes_on_gpu(tasks, tmp_path):
    result = evaluate.evaluate(with_solution(tasks["sol"], tmp_path / "honest", HONEST), FAST_JOB)
    assert result.passed == 1.0 and result.violations == []


def test_hidden_stream_is_caught(tasks, tmp_path):
    result = evaluate.evaluate(with_solution(tasks["sol"], tmp_path / "stream", HIDDEN_STREAM), FAST_JOB)
    assert result.sol_score == 0.0
    assert any("unsynced" in v for v in result.violations), result.workloads


def test_untimed_host_work_is_caught(tasks, tmp_path):
    upstream = os.environ.get("LABMIND_SOL_UPSTREAM")
    if not upstream or not (Path(upstream) / "src" / "sol_execbench").is_dir():
        pytest.skip("set LABMIND_SOL_UPSTREAM to a SOL-ExecBench checkout to compare with its CUPTI timing")
    if importlib.util.find_spec("cupti") is None or importlib.util.find_spec("pydantic") is None:
        pytest.skip("the upstream harness needs cupti-python and pydantic")
    task = with_solution(tasks["sol"], tmp_path / "host", HOST_WORK)
    meta = json.loads((task / "kernels.json").read_text())
    (task / "kernels.json").write_text(json.dumps({**meta, "upstream": upstream}))
    result = evaluate.evaluate(task, FAST_JOB)
    assert any("untimed_host_work" in v for v in result.violations), result.workloads
    assert result.sol_score == 0.0
