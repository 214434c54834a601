"""SOL-ExecBench's task and solution files, read without torch.

A problem is ``definition.json`` (axes, inputs, outputs, a PyTorch reference defining ``run``) plus
``workload.jsonl`` (one line per workload: var-axis values, input sources, optional tolerance). A solution
is ``solution.json``: a ``spec`` (languages, entry point, calling convention, compile options) and its
``sources``. These classes read the fields labmind needs and keep the rest untouched, so a solution
written by labmind is still one the upstream harness accepts.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON_LANGUAGES = frozenset({"pytorch", "triton", "cute_dsl", "cutile", "cudnn_frontend", "tlx"})
CPP_LANGUAGES = frozenset({"cuda_cpp", "cutlass", "cudnn", "cublas"})
#: Languages whose toolchains the H100 image lacks or that need sm_100 (see docs/packs/kernels.md).
UNSUPPORTED_ON_HOPPER = frozenset({"cutile", "cute_dsl", "cudnn_frontend", "cutlass", "cudnn"})

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}


def eval_axis_expression(expression: str, values: dict[str, int]) -> int:
    """Evaluate an `expr` axis (+ - * / // % ** and parentheses over axis names) without `eval`."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"axis expression {expression!r} names unknown axis {node.id!r}")
            return values[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise ValueError(f"unsupported syntax in axis expression {expression!r}")

    return int(walk(ast.parse(expression, mode="eval")))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[str, ...] | None  # None: a Python scalar
    dtype: str


@dataclass(frozen=True)
class Tolerance:
    """A workload's numeric tolerance; the defaults are SOL-ExecBench's."""

    max_atol: float = 1e-2
    max_rtol: float = 1e-2
    required_matched_ratio: float = 0.99
    max_error_cap: float | None = None
    allow_negative_inf: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Tolerance:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


@dataclass(frozen=True)
class Workload:
    uuid: str
    axes: dict[str, int]
    inputs: dict[str, dict[str, Any]]
    tolerance: Tolerance = field(default_factory=Tolerance)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        return cls(uuid=str(data["uuid"]), axes={k: int(v) for k, v in data.get("axes", {}).items()},
                   inputs=dict(data.get("inputs", {})), tolerance=Tolerance.from_json(data.get("tolerance")),
                   raw=data)


@dataclass(frozen=True)
class Definition:
    name: str
    axes: dict[str, dict[str, Any]]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    reference: str
    custom_inputs_entrypoint: str | None = None
    description: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Definition:
        def specs(section: dict[str, Any]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(name, None if s.get("shape") is None else tuple(s["shape"]), s["dtype"])
                         for name, s in section.items())

        return cls(name=data["name"], axes=dict(data["axes"]), inputs=specs(data["inputs"]),
                   outputs=specs(data["outputs"]), reference=data["reference"],
                   custom_inputs_entrypoint=data.get("custom_inputs_entrypoint"),
                   description=data.get("description") or "")

    @classmethod
    def load(cls, path: Path) -> Definition:
        return cls.from_json(json.loads(path.read_text()))

    def resolve_axes(self, var_values: dict[str, int]) -> dict[str, int]:
        """Every axis's value for one workload: consts, the workload's vars, then expressions."""
        values: dict[str, int] = {}
        for name, axis in self.axes.items():
            if axis["type"] == "const":
                values[name] = int(axis["value"])
            elif axis["type"] == "var":
                if name not in var_values:
                    raise ValueError(f"workload gives no value for var axis {name!r}")
                values[name] = int(var_values[name])
        pending = {n: a["expression"] for n, a in self.axes.items() if a["type"] == "expr"}
        while pending:  # expressions may name other expressions: resolve in dependency order
            ready = {n: e for n, e in pending.items()
                     if all(x.id in values for x in ast.walk(ast.parse(e, mode="eval")) if isinstance(x, ast.Name))}
            if not ready:
                raise ValueError(f"axis expressions cannot be resolved: {sorted(pending)}")
            for n, e in ready.items():
                values[n] = eval_axis_expression(e, values)
                del pending[n]
        return values

    def shape(self, spec: TensorSpec, axes: dict[str, int]) -> tuple[int, ...] | None:
        return None if spec.shape is None else tuple(axes[a] for a in spec.shape)

    @property
    def dtypes(self) -> list[str]:
        return [s.dtype for s in (*self.inputs, *self.outputs)]


def load_workloads(path: Path) -> list[Workload]:
    return [Workload.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def write_workloads(path: Path, workloads: list[Workload]) -> None:
    path.write_text("".join(json.dumps(w.raw) + "\n" for w in workloads))


@dataclass(frozen=True)
class SolutionSpec:
    """The `spec` object of an upstream solution.json."""

    languages: tuple[str, ...]
    entry_point: str
    destination_passing_style: bool = True
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SolutionSpec:
        return cls(languages=tuple(data["languages"]), entry_point=data["entry_point"],
                   destination_passing_style=bool(data.get("destination_passing_style", True)), raw=data)

    @property
    def is_cpp(self) -> bool:
        return any(lang in CPP_LANGUAGES for lang in self.languages)

    @property
    def entry(self) -> tuple[str, str]:
        """(file, function) of the entry point; the function defaults to `run`."""
        file, _, fn = self.entry_point.partition("::")
        return file, fn or "run"

    @property
    def compile_options(self) -> dict[str, list[str]]:
        return dict(self.raw.get("compile_options") or {})


def solution_json(name: str, definition: str, spec: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """An upstream-format solution.json from a spec and {path: content}."""
    for path in sources:
        if path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"solution source path {path!r} must be relative and stay inside the solution")
    return {"name": name, "definition": definition, "author": "labmind", "spec": spec,
            "sources": [{"path": p, "content": c} for p, c in sorted(sources.items())]}
