"""Turn upstream problems into labmind tasks: one git repository per problem, plus a campaign manifest.

Sources (the user's own checkouts, at the commits the pack was written against):
- SOL-ExecBench (`--upstream`): any directory holding `definition.json` and `workload.jsonl` under the
  checkout, e.g. `data/benchmark/L1/<name>/` after the user ran the upstream download script, or the
  worked examples under `examples/`. The starting solution is the problem's own upstream solution file
  when it has one in a language this GPU can build, else the reference as a PyTorch solution.
- KernelBench (`--kernelbench`): `KernelBench/level<N>/<id>_<name>.py`. The starting solution is the
  reference with `Model` renamed `ModelNew` and one knob, `USE_COMPILE`.

Each task directory:
    labmind.toml      the task (editable: solution/*; protected: problem/*, kernels.json, bounds.json)
    kernels.json      suite, problem name, upstream path and commit
    brief.md          what the agent may do, and how it is scored
    problem/          the problem files; unseen.* holds held-out shapes, hidden from runs
    solution/         the editable solution
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labmind.packs.kernels.sol_format import UNSUPPORTED_ON_HOPPER, Definition, Workload, load_workloads

SOL_COMMIT = "8d2237d"
UNSEEN_TAG = "labmind-unseen"


@dataclass(frozen=True)
class BuiltTask:
    name: str
    suite: str
    path: Path
    language: str


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-.")[:80] or "problem"


def git_commit_of(path: Path) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


# ------------------------------------------------------------------------------------------- SOL-ExecBench


def find_sol_problems(upstream: Path, patterns: list[str]) -> list[Path]:
    """Problem directories under the checkout whose path (relative to it) matches one of the patterns."""
    found = sorted(p.parent for p in upstream.rglob("definition.json") if (p.parent / "workload.jsonl").exists())
    rel = {d: d.relative_to(upstream).as_posix() for d in found}
    return [d for d in found if any(fnmatch.fnmatch(rel[d], pat) for pat in patterns)]


def unseen_workloads(definition: Definition, workloads: list[Workload]) -> list[dict[str, Any]]:
    """Shapes no dev workload has: every var axis of the smallest workload moved by +1 (an odd size where the
    value was even), and of a middle one by -1. Calibration drops any the reference itself cannot run."""
    var_axes = [n for n, a in definition.axes.items() if a["type"] == "var"]
    if not var_axes or not workloads:
        return []
    by_size = sorted(workloads, key=lambda w: sum(w.axes.values()))
    seen = {tuple(sorted(w.axes.items())) for w in workloads}
    out = []
    for base, step in ((by_size[0], 1), (by_size[len(by_size) // 2], -1)):
        axes = {k: max(1, v + step) for k, v in base.axes.items()}
        key = tuple(sorted(axes.items()))
        if key in seen:
            continue
        seen.add(key)
        inputs = {k: v for k, v in base.inputs.items()}
        out.append({"uuid": f"{UNSEEN_TAG}-{len(out)}", "axes": axes, "inputs": inputs,
                    **({"tolerance": base.raw["tolerance"]} if "tolerance" in base.raw else {})})
    return out


def starting_solution(problem_dir: Path, definition: Definition) -> tuple[dict[str, Any], dict[str, str], str]:
    """(spec, {file: content}, language): the problem's upstream solution if one builds here, else the
    reference as a PyTorch solution."""
    for path in sorted(problem_dir.glob("solution*.json")):
        data = json.loads(path.read_text())
        langs = set(data["spec"]["languages"])
        if langs & UNSUPPORTED_ON_HOPPER:
            continue
        spec = {**data["spec"], "target_hardware": ["LOCAL"]}
        return spec, {s["path"]: s["content"] for s in data["sources"]}, sorted(langs)[0]
    spec = {"languages": ["pytorch"], "target_hardware": ["LOCAL"], "entry_point": "kernel.py::run",
            "dependencies": ["torch"], "destination_passing_style": False}
    return spec, {"kernel.py": definition.reference.rstrip() + "\n"}, "pytorch"


# --------------------------------------------------------------------------------------------- KernelBench


def find_kernelbench_problems(kernelbench: Path, patterns: list[str]) -> list[Path]:
    root = kernelbench / "KernelBench"
    found = sorted(root.glob("level*/*.py"))
    return [p for p in found if any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pat) for pat in patterns)]


def kernelbench_unseen(source: str) -> dict[str, int]:
    """A held-out batch size: roughly half the problem's, and odd. Empty when there is no `batch_size`."""
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "batch_size" and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, int) and node.value.value > 1):
            return {"batch_size": node.value.value // 2 + 1}
    return {}


def kernelbench_solution(source: str) -> str:
    """The reference renamed to ModelNew, with a USE_COMPILE knob for the knobs brain."""
    body = re.sub(r"\bclass Model\b", "class ModelNew", source)
    body = re.sub(r"\bsuper\(Model, self\)", "super(ModelNew, self)", body)
    return ("# Candidate for labmind's kernels pack: ModelNew must compute what Model computes.\n"
            "USE_COMPILE = False  # knob: compile forward with torch.compile\n\n" + body.rstrip() + "\n\n\n"
            "if USE_COMPILE:\n"
            "    ModelNew.forward = torch.compile(ModelNew.forward, dynamic=False)\n")


# ---------------------------------------------------------------------------------------------- task files


def task_toml(name: str, knobs: bool) -> str:
    knob_table = "\n[knobs]\nUSE_COMPILE = { choices = [false, true] }\n" if knobs else ""
    return f"""# A kernels-pack task written by `labmind pack kernels` (docs/packs/kernels.md).
[task]
name = "{name}"
brief = "brief.md"
family = "kernel/gpu"  # insights are shared between the pack's problems (docs/library.md)
editable = ["solution/*"]
protected = ["problem/*", "kernels.json", "bounds.json"]

[run]
command = "python -m labmind.packs.kernels.evaluate --smoke"
timeout = "20m"
gpus = 1
env = ["PYTHONPATH"]
hide = ["problem/unseen.*"]

[metric]
name = "sol_score"
goal = "maximize"
evaluate = "python -m labmind.packs.kernels.evaluate"
secondary = ["speedup", "passed", "violations", "unseen_failures"]
constraints = ["violations <= 0", "unseen_failures <= 0"]
bound = 1.0

[noise]
baseline_runs = 2
confirm_seeds = 2

[guard]
# The evaluator runs the solution in its own process: native or generated code could reach its timers.
hold = ["native_call", "dynamic_code"]
{knob_table}"""


BRIEF = """# {name}

Make the kernel in `solution/` faster without changing what it computes.

- The problem is in `problem/` ({what}). Do not edit it; `bounds.json` holds this GPU's bounds.
- Score: the SOL score on this GPU, averaged over the workloads: 0.5 at the PyTorch baseline, 1.0 at the
  speed-of-light bound (a roofline from the problem's FLOPs and bytes at peaks measured on this GPU);
  a workload that fails scores 0.
- Outputs are checked against a float64 reference on fresh inputs, including during timing and on
  shapes you do not see. Inputs change values between timed calls, so caching results does not help.
- Work must finish on the caller's CUDA stream before the call returns; background threads, hidden
  streams, host-side precomputation and printed numbers are caught and disqualify the result.
"""


def _write_task(out: Path, name: str, meta: dict[str, Any], files: dict[str, str], knobs: bool) -> Path:
    task = out / name
    if task.exists():
        raise FileExistsError(f"{task} already exists: choose another --out or remove it")
    for rel, content in files.items():
        path = task / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (task / "kernels.json").write_text(json.dumps(meta, indent=2) + "\n")
    (task / "labmind.toml").write_text(task_toml(name, knobs))
    (task / ".gitignore").write_text("kernels_candidate.log\nkernels_eval.json\n__pycache__/\n")
    git = ["git", "-c", "user.name=labmind", "-c", "user.email=labmind@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=task, check=True)
    subprocess.run(["git", "add", "-A"], cwd=task, check=True)
    subprocess.run([*git, "commit", "-q", "-m", f"{name}: task from labmind pack kernels"], cwd=task, check=True)
    return task


def build_sol_task(problem_dir: Path, upstream: Path, out: Path) -> BuiltTask:
    definition = Definition.load(problem_dir / "definition.json")
    workloads = load_workloads(problem_dir / "workload.jsonl")
    spec, sources, language = starting_solution(problem_dir, definition)
    unseen = unseen_workloads(definition, workloads)
    name = slug(f"sol-{problem_dir.parent.name}-{problem_dir.name}")
    files = {
        "problem/definition.json": (problem_dir / "definition.json").read_text(),
        "problem/workload.jsonl": (problem_dir / "workload.jsonl").read_text(),
        "problem/unseen.jsonl": "".join(json.dumps(w) + "\n" for w in unseen),
        "solution/spec.json": json.dumps(spec, indent=2) + "\n",
        "brief.md": BRIEF.format(name=name, what=f"SOL-ExecBench `{definition.name}`: definition.json, workload.jsonl"),
        **{f"solution/{path}": content for path, content in sources.items()},
    }
    meta = {"suite": "sol", "problem": definition.name, "source": problem_dir.relative_to(upstream).as_posix(),
            "upstream": str(upstream.resolve()), "upstream_commit": git_commit_of(upstream), "language": language}
    return BuiltTask(name, "sol", _write_task(out, name, meta, files, knobs=False), language)


def build_kernelbench_task(problem_file: Path, kernelbench: Path, out: Path) -> BuiltTask:
    source = problem_file.read_text()
    level = problem_file.parent.name
    name = slug(f"kb-{level}-{problem_file.stem}")
    files = {
        "problem/problem.py": source,
        "problem/unseen.json": json.dumps(kernelbench_unseen(source)) + "\n",
        "solution/model_new.py": kernelbench_solution(source),
        "brief.md": BRIEF.format(name=name, what="KernelBench `Model`, `get_inputs`, `get_init_inputs`; "
                                             "your class is `ModelNew` in solution/model_new.py"),
    }
    meta = {"suite": "kernelbench", "problem": f"{level}/{problem_file.stem}",
            "source": problem_file.relative_to(kernelbench).as_posix(), "upstream": str(kernelbench.resolve()),
            "upstream_commit": git_commit_of(kernelbench), "dtypes": ["float32"], "language": "pytorch"}
    return BuiltTask(name, "kernelbench", _write_task(out, name, meta, files, knobs=True), "pytorch")


def write_manifest(out: Path, tasks: list[BuiltTask]) -> Path:
    path = out / "campaign.json"
    path.write_text(json.dumps({"tasks": [{"name": t.name, "suite": t.suite, "path": t.path.name,
                                           "language": t.language} for t in tasks]}, indent=2) + "\n")
    return path
