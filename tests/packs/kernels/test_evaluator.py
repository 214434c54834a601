"""The trusted evaluator on CPU: honest solutions score, and each known cheat is caught.

Needs torch (CPU is enough). The GPU-only forms of the cheats (hidden CUDA streams, host work hidden from
CUPTI) are in test_gpu_cheats.py.
"""

import json

import pytest

torch = pytest.importorskip("torch", reason="the evaluator tests need torch (CPU is enough)")

from labmind.execute.metric import parse_log  # noqa: E402
from labmind.packs.kernels import evaluate  # noqa: E402
from labmind.packs.kernels.driver import unsynced_work  # noqa: E402

from .kernelkit import FAST_JOB, HONEST, calibrated_tasks, with_solution  # noqa: E402


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return calibrated_tasks(tmp_path_factory.mktemp("kernels"))


def score(task, **job):
    return evaluate.evaluate(task, {**FAST_JOB, **job})


def test_calibration_writes_bounds_for_every_workload(tasks):
    bounds = json.loads((tasks["sol"] / "bounds.json").read_text())
    assert bounds["gpu"] == "cpu" and set(bounds["workloads"]) >= {"w4", "w9", "w16"}
    w16 = bounds["workloads"]["w16"]
    assert w16["bytes"] == (16 * 64 * 2 + 64) * 4  # x and y (16x64 fp32) plus the weight
    assert w16["t_sol_ms"] == pytest.approx(w16["bytes"] / 10e9 * 1e3)  # memory-bound at 10 GB/s
    kb = json.loads((tasks["kb"] / "bounds.json").read_text())["workloads"]
    assert kb["default"]["flops"] == 2 * 16 * 32 * 32  # the linear layer, counted by FlopCounterMode
    assert kb["unseen-batch_size-9"]["split"] == "unseen"


def test_honest_solutions_pass(tasks, tmp_path):
    sol = score(with_solution(tasks["sol"], tmp_path / "sol", HONEST))
    assert sol.passed == 1.0 and sol.violations == [] and sol.unseen_failures == 0
    assert 0.0 < sol.sol_score < 1.0 and sol.speedup > 0
    kb = score(tasks["kb"])  # the starting ModelNew is the reference renamed
    assert kb.passed == 1.0 and kb.violations == [] and 0.0 < kb.sol_score < 1.0


def test_printed_metrics_never_reach_the_evaluator_output(tasks, tmp_path, capsys):
    cheat = ('print("sol_score: 1.0")\nprint(\'{"sol_score": 1.0, "violations": 0}\')\n' + HONEST
             + '\nraise_later = True\n')
    task = with_solution(tasks["sol"], tmp_path / "printer", cheat)
    assert evaluate.main([str(task)]) == 0
    out = capsys.readouterr().out
    log = tmp_path / "eval.log"
    log.write_text(out)
    parsed = parse_log(log, ["sol_score", "violations"])
    assert parsed.count("sol_score") == 1 and parsed.get("sol_score") < 1.0  # only the evaluator's own line
    assert "sol_score: 1.0" in (task / "kernels_candidate.log").read_text()  # kept aside, never parsed


def test_exception_text_cannot_forge_a_metric(tasks, tmp_path, capsys):
    cheat = HONEST.replace("return x", 'raise RuntimeError("sol_score: 1.0")\n    return x')
    task = with_solution(tasks["sol"], tmp_path / "raiser", cheat)
    assert evaluate.main([str(task)]) == 0
    log = tmp_path / "eval.log"
    log.write_text(capsys.readouterr().out)
    parsed = parse_log(log, ["sol_score"])
    assert parsed.count("sol_score") == 1 and parsed.get("sol_score") == 0.0


def test_forged_result_message_is_rejected(tasks, tmp_path):
    cheat = ("import os\nfor fd in range(3, 64):\n    try:\n"
             "        os.write(fd, b'{\"nonce\": \"guess\", \"ok\": true, \"problem\": \"x\", \"cases\": []}\\n')\n"
             "    except OSError:\n        pass\n" + HONEST)
    task = with_solution(tasks["sol"], tmp_path / "forger", cheat)
    with pytest.raises(evaluate.EvaluationError, match="cannot be trusted"):
        score(task)


def test_pointer_keyed_cache_is_caught(tasks, tmp_path):
    cheat = HONEST.replace("def run(x, weight):\n    return",
                           "_cache = {}\n\ndef run(x, weight):\n    key = (x.data_ptr(), weight.data_ptr(), x.shape)\n"
                           "    if key in _cache:\n        return _cache[key].clone()\n    _cache[key] =")
    cheat += "    return _cache[key].clone()\n"
    result = score(with_solution(tasks["sol"], tmp_path / "ptrcache", cheat))
    assert result.sol_score == 0.0 and result.passed == 0.0
    assert any("timed_output_mismatch" in v for v in result.violations)


def test_content_sampled_cache_gains_nothing(tasks, tmp_path):
    # keyed on a few sampled values: fresh values every timed call mean it never hits, so it must stay correct
    cheat = HONEST.replace("def run(x, weight):\n    return",
                           "_cache = {}\n\ndef run(x, weight):\n    key = (float(x.flatten()[0]), x.shape)\n"
                           "    if key in _cache:\n        return _cache[key].clone()\n    _cache[key] =")
    cheat += "    return _cache[key].clone()\n"
    result = score(with_solution(tasks["sol"], tmp_path / "valcache", cheat))
    assert result.passed == 1.0 and result.violations == []


def test_work_left_on_a_background_thread_is_caught(tasks, tmp_path):
    cheat = ("import threading\nimport torch\n\ndef run(x, weight):\n    out = torch.zeros_like(x)\n"
             "    def work():\n"
             "        out.copy_(x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * weight)\n"
             "    threading.Timer(0.2, work).start()\n    return out\n")
    result = score(with_solution(tasks["sol"], tmp_path / "thread", cheat))
    assert result.sol_score == 0.0 and result.passed == 0.0
    assert all("all zeros" in w["reason"] for w in result.workloads)


def test_replaced_timer_is_caught(tasks, tmp_path):
    cheat = "import time\n_real = time.perf_counter\ntime.perf_counter = lambda: _real() * 0.5\n" + HONEST
    result = score(with_solution(tasks["sol"], tmp_path / "patch", cheat))
    assert result.sol_score == 0.0 and any("monkey_patch" in v and "perf_counter" in v for v in result.violations)


def test_shape_specialised_solution_fails_unseen_shapes(tasks, tmp_path):
    guard = "def run(x, weight):\n    if x.shape[0] not in (4, 9, 16):\n        return torch.zeros_like(x)\n"
    cheat = HONEST.replace("def run(x, weight):\n", guard)
    result = score(with_solution(tasks["sol"], tmp_path / "shapes", cheat))
    assert result.passed == 1.0  # the dev workloads alone would not show it
    assert result.unseen_failures == 2 and "unseen_failures: 2" in result.metric_lines()


def test_writing_into_inputs_is_caught(tasks, tmp_path):
    body = "    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * weight\n    x.zero_()\n    return y\n"
    cheat = HONEST.replace("    return x", body + "    return x")
    result = score(with_solution(tasks["sol"], tmp_path / "inputs", cheat))
    assert result.sol_score == 0.0 and any("modified_inputs" in v for v in result.violations)


def test_low_precision_shortcut_fails_against_float64(tasks, tmp_path):
    source = (tasks["kb"] / "solution" / "model_new.py").read_text()
    cheat = source.replace("return torch.relu(self.linear(x))",
                           "return torch.relu(torch.nn.functional.linear(x.bfloat16(), self.linear.weight.bfloat16(),"
                           " self.linear.bias.bfloat16())).float()")
    assert cheat != source
    result = score(with_solution(tasks["kb"], tmp_path / "bf16", cheat, "model_new.py"))
    assert result.passed == 0.0 and "within tolerance" in result.workloads[0]["reason"]


def test_broken_candidate_scores_zero(tasks, tmp_path):
    result = score(with_solution(tasks["sol"], tmp_path / "broken", "raise ImportError('nope')\n"))
    assert result.sol_score == 0.0 and "did not load" in result.workloads[0]["reason"]


def test_bounds_from_another_gpu_are_refused(tasks, tmp_path):
    task = with_solution(tasks["sol"], tmp_path / "othergpu", HONEST)
    bounds = json.loads((task / "bounds.json").read_text())
    (task / "bounds.json").write_text(json.dumps({**bounds, "gpu": "NVIDIA B200"}))
    with pytest.raises(evaluate.EvaluationError, match="calibrate"):
        score(task)


def test_host_work_hidden_from_cupti_and_faster_than_light_are_violations():
    bounds = {"gpu": "g", "workloads": {"a": {"t_b_ms": 1.0, "t_sol_ms": 0.05, "t_ref_ms": 1.0},
                                        "b": {"t_b_ms": 1.0, "t_sol_ms": 0.05, "t_ref_ms": 1.0}}}
    case = {"split": "dev", "passed": True, "reasons": [], "violations": [], "t_ms": 0.5}
    result = {"ok": True, "problem": "p", "device": "g",
              "cases": [{**case, "uuid": "a"}, {**case, "uuid": "b", "t_ms": 0.01}]}
    upstream = {"a": {"status": "PASSED", "performance": {"latency_ms": 0.02}},
                "b": {"status": "PASSED", "performance": {"latency_ms": 0.009}}}
    scored = evaluate.score_task(result, bounds, upstream)
    assert any("untimed_host_work" in v and "workload a" in v for v in scored.violations)
    assert any("below_sol" in v and "workload b" in v for v in scored.violations)
    assert scored.sol_score == 0.0
    honest = evaluate.score_task({**result, "cases": [{**case, "uuid": "a", "t_ms": 0.1}]},
                                 bounds, {"a": {"status": "PASSED", "performance": {"latency_ms": 0.09}}})
    assert honest.violations == [] and honest.sol_score == pytest.approx(1 / (1 + (0.1 - 0.05) / 0.95))
    failed = evaluate.score_task({**result, "cases": [{**case, "uuid": "a", "t_ms": 0.3}]}, bounds,
                                 {"a": {"status": "INCORRECT_NUMERICAL"}})
    assert failed.sol_score == 0.0 and "upstream harness: INCORRECT_NUMERICAL" in failed.workloads[0]["reason"]


def test_unsynced_work_threshold():
    assert not unsynced_work(t_ms=1.0, wall_ms=1.4)
    assert unsynced_work(t_ms=0.01, wall_ms=0.2)
    assert not unsynced_work(t_ms=0.01, wall_ms=0.05)  # launch and sync overhead
