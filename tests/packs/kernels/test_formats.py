import json

import pytest

from labmind.packs.kernels import build
from labmind.packs.kernels.roofline import Peaks, t_sol_ms
from labmind.packs.kernels.sol_format import Definition, SolutionSpec, eval_axis_expression, solution_json
from labmind.task import load_task

from .kernelkit import KB_PROBLEM, make_kernelbench, make_sol_upstream


def test_axis_expressions_resolve_in_dependency_order():
    d = Definition.from_json({
        "name": "x", "reference": "def run(): pass",
        "axes": {"b": {"type": "var"}, "s": {"type": "var"}, "t": {"type": "expr", "expression": "b * s"},
                 "h": {"type": "const", "value": 8}, "u": {"type": "expr", "expression": "t // h + (s % 3) ** 2"}},
        "inputs": {"x": {"shape": ["t", "h"], "dtype": "bfloat16"}, "n": {"shape": None, "dtype": "int32"}},
        "outputs": {"y": {"shape": ["u"], "dtype": "float32"}},
    })
    axes = d.resolve_axes({"b": 3, "s": 5})
    assert axes == {"b": 3, "s": 5, "h": 8, "t": 15, "u": 15 // 8 + 4}
    assert d.shape(d.inputs[0], axes) == (15, 8)
    assert d.shape(d.inputs[1], axes) is None
    with pytest.raises(ValueError, match="unsupported syntax"):
        eval_axis_expression("__import__('os')", {})
    with pytest.raises(ValueError, match="no value for var axis"):
        d.resolve_axes({"b": 1})


def test_roofline_memory_and_compute_bound():
    peaks = Peaks(gpu="g", bf16_tflops=500.0, fp32_tflops=50.0, copy_gbps=2000.0)
    # 2 GB moved at 2000 GB/s = 1 ms; 1 GFLOP at 500 TFLOP/s is far less
    assert t_sol_ms(1e9, 2e9, ["bfloat16"], peaks) == pytest.approx(1.0)
    # fp32 problems are priced at the 16-bit tensor-core rate (SOL-ExecBench's leaderboard policy)
    assert t_sol_ms(1e15, 0, ["float32"], peaks) == pytest.approx(2000.0)
    assert t_sol_ms(1e15, 0, ["float8_e4m3fn", "bfloat16"], peaks) == pytest.approx(1000.0)


def test_solution_spec_and_upstream_solution_json():
    spec = SolutionSpec.from_json({"languages": ["cuda_cpp"], "entry_point": "main.cpp::run",
                                   "destination_passing_style": False})
    assert spec.is_cpp and spec.entry == ("main.cpp", "run") and not spec.destination_passing_style
    data = solution_json("s", "d", {"languages": ["pytorch"], "entry_point": "k.py::run"}, {"k.py": "x"})
    assert data["sources"] == [{"path": "k.py", "content": "x"}] and data["definition"] == "d"
    with pytest.raises(ValueError):
        solution_json("s", "d", {}, {"../evil.py": ""})


def test_build_sol_task_writes_a_valid_task(tmp_path):
    up = make_sol_upstream(tmp_path / "up")
    dirs = build.find_sol_problems(up, ["examples/*/*"])
    task = build.build_sol_task(dirs[0], up, tmp_path / "out")
    t = load_task(task.path, {})
    assert t.metric.name == "sol_score" and t.metric.goal == "maximize" and t.metric.bound == 1.0
    assert t.task.editable == ["solution/*"] and "bounds.json" in t.task.protected
    assert t.run.hide == ["problem/unseen.*"] and "violations <= 0" in t.metric.constraints
    spec = json.loads((task.path / "solution" / "spec.json").read_text())
    assert spec["entry_point"] == "kernel.py::run" and spec["target_hardware"] == ["LOCAL"]
    unseen = [json.loads(line) for line in (task.path / "problem" / "unseen.jsonl").read_text().splitlines()]
    assert [u["axes"] for u in unseen] == [{"batch": 5}, {"batch": 8}]  # smallest +1, middle -1: unseen sizes
    meta = json.loads((task.path / "kernels.json").read_text())
    assert meta["suite"] == "sol" and meta["problem"] == "rmsnorm_h64"
    with pytest.raises(FileExistsError):
        build.build_sol_task(dirs[0], up, tmp_path / "out")


def test_build_prefers_an_upstream_solution_that_builds_here(tmp_path):
    up = make_sol_upstream(tmp_path / "up")
    problem = up / "examples" / "pytorch" / "rmsnorm_small"
    src = {"languages": ["triton"], "entry_point": "kernel.py::rms", "destination_passing_style": True}
    (problem / "solution_triton.json").write_text(json.dumps({"spec": src, "sources": [
        {"path": "kernel.py", "content": "# triton\n"}]}))
    (problem / "solution_cutile.json").write_text(json.dumps({"spec": {**src, "languages": ["cutile"]},
                                                              "sources": []}))
    spec, files, lang = build.starting_solution(problem, Definition.load(problem / "definition.json"))
    assert lang == "triton" and files == {"kernel.py": "# triton\n"} and spec["target_hardware"] == ["LOCAL"]


def test_build_kernelbench_task(tmp_path):
    kb = make_kernelbench(tmp_path / "kb")
    task = build.build_kernelbench_task(build.find_kernelbench_problems(kb, ["level1/*"])[0], kb, tmp_path / "out")
    assert task.name == "kb-level1-1_Linear_ReLU"
    assert json.loads((task.path / "problem" / "unseen.json").read_text()) == {"batch_size": 9}
    solution = (task.path / "solution" / "model_new.py").read_text()
    assert "class ModelNew(nn.Module)" in solution and "super(ModelNew, self)" in solution
    assert "USE_COMPILE = False" in solution
    compile(solution, "model_new.py", "exec")
    assert load_task(task.path, {}).knobs["USE_COMPILE"].choices == [False, True]
    assert build.kernelbench_unseen("x = 1\n") == {}
    assert build.kernelbench_unseen(KB_PROBLEM.replace("batch_size = 16", "batch_size = 1")) == {}
