"""What the guard's matchers read: one version of one file (parsed once), the task's facts, and names.

`Resolver` turns expressions into qualified names through imports and rebindings (`t = time` is `time`);
`fold` turns expressions built from literals into the string they build; `Source` parses a file once and
caches what several matchers ask for (patches, module constants, docstrings).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from labmind import pyast
from labmind.guard.findings import Hit, clip
from labmind.task.model import Task
from labmind.workspace.scope import protected_files

#: Stand-in for the metric name in rule regexes.
METRIC_PLACEHOLDER = "{metric}"



@dataclass(frozen=True)
class TaskFacts:
    """What rules need to know about the task, computed once per change."""

    metric: str
    protected: tuple[str, ...]
    #: Task-relative paths of protected files (globbed in the new tree, plus wildcard-free patterns).
    protected_paths: tuple[str, ...]
    #: Import names of protected Python files: `lib/eval.py` gives `lib.eval` and `eval`.
    protected_modules: frozenset[str]

    @classmethod
    def of(cls, task: Task, new_dir: Path) -> TaskFacts:
        patterns = tuple(task.task.protected)
        paths = {p.relative_to(new_dir).as_posix() for p in protected_files(new_dir, list(patterns))}
        paths.update(p.rstrip("/") for p in patterns if not any(c in p for c in "*?["))
        return cls(task.metric.name, patterns, tuple(sorted(paths)), frozenset(_module_names(paths)))


def _module_names(paths: Collection[str]) -> Iterator[str]:
    for path in paths:
        pure = PurePosixPath(path)
        if pure.suffix != ".py":
            continue
        parts = list(pure.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        # Every suffix of the dotted path: the run may import it from the task root or from its own folder.
        for start in range(len(parts)):
            yield ".".join(parts[start:])


_IMPORTERS = ("importlib.import_module", "__import__", "builtins.__import__")


class Resolver:
    """Qualified names of expressions, following `import x as y`, `from x import y` and `t = time`."""

    def __init__(self, tree: ast.AST) -> None:
        self.aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        self.aliases[root] = root
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                for alias in node.names:
                    qualified = f"{module}.{alias.name}" if module else alias.name
                    self.aliases[alias.asname or alias.name] = qualified
        # A plain rebinding of an imported name (`t = time`) is the cheapest way around an alias check.
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target = node.targets[0]
            if isinstance(target, ast.Name) and self._rooted_in_import(node.value):
                qualified = self.qualify(node.value)
                if qualified:
                    self.aliases[target.id] = qualified

    def _rooted_in_import(self, expr: ast.expr) -> bool:
        while isinstance(expr, ast.Attribute):
            expr = expr.value
        return (isinstance(expr, ast.Name) and expr.id in self.aliases) or self._module_lookup(expr) is not None

    def qualify(self, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return self.aliases.get(expr.id, expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.qualify(expr.value)
            return f"{base}.{expr.attr}" if base else None
        if isinstance(expr, ast.Call) and dotted(expr.func) == "vars" and len(expr.args) == 1:
            base = self.qualify(expr.args[0])
            return f"{base}.__dict__" if base else None  # vars(time).update(...) is time.__dict__.update(...)
        return self._module_lookup(expr)

    def imported(self, qualified: str) -> bool:
        """The qualified name starts at an imported module (or the builtins), not at a local object."""
        root = qualified.split(".")[0]
        roots = {v.split(".")[0] for v in self.aliases.values()} | {"builtins", "__builtins__"}
        return root in roots

    def _module_lookup(self, expr: ast.expr) -> str | None:
        """`sys.modules["x"]`, `importlib.import_module("x")` and `__import__("x")` all name module x."""
        if isinstance(expr, ast.Subscript) and self.qualify(expr.value) == "sys.modules":
            return const_str(expr.slice) or self._home_module(expr.slice)
        if isinstance(expr, ast.Call) and expr.args:
            func = self.qualify(expr.func)
            if func in _IMPORTERS:
                return const_str(expr.args[0])
            if func == "inspect.getmodule":
                return self._home_module(ast.Attribute(value=expr.args[0], attr="__module__"))
        return None

    def _home_module(self, expr: ast.expr) -> str | None:
        """`perf_counter.__module__` after `from time import perf_counter` is "time"."""
        if isinstance(expr, ast.Attribute) and expr.attr == "__module__":
            owner = self.qualify(expr.value)
            if owner and "." in owner:
                return owner.rsplit(".", 1)[0]
        return None


def const_str(expr: ast.expr | None) -> str | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


def const_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")  # b"val_bpb: 1" written with os.write is still a metric line
    return None


def fold(expr: ast.AST, resolve: Callable[[ast.expr], ast.expr] | None = None, depth: int = 0) -> str | None:
    """The string an expression builds from literals only: `"val_" + "bpb"`, f"{'val'}_bpb", `"_".join([...])`,
    `"%s_bpb" % "val"`, `"{}_bpb".format("val")`; None when any part is computed at run time."""
    if depth > 50 or not isinstance(expr, ast.expr):
        return None
    if resolve is not None and isinstance(expr, ast.Name):
        value = resolve(expr)
        return None if value is expr else fold(value, resolve, depth + 1)
    if isinstance(expr, ast.Constant):
        return const_text(expr.value)
    if isinstance(expr, ast.JoinedStr):
        parts = []
        for value in expr.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                inner = None if value.format_spec else fold(value.value, resolve, depth + 1)
                parts.append("{}" if inner is None else inner)
        return "".join(parts)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = fold(expr.left, resolve, depth + 1), fold(expr.right, resolve, depth + 1)
        return left + right if left is not None and right is not None else None
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
        left = fold(expr.left, resolve, depth + 1)
        items = expr.right.elts if isinstance(expr.right, ast.Tuple) else [expr.right]
        values = [_fold_value(v, resolve, depth) for v in items]
        if left is None or any(v is None for v in values):
            return None
        try:
            return left % tuple(values)
        except (TypeError, ValueError, KeyError):
            return None
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and not expr.keywords:
        owner = fold(expr.func.value, resolve, depth + 1)
        if owner is None:
            return None
        if expr.func.attr == "join" and len(expr.args) == 1 and isinstance(expr.args[0], ast.List | ast.Tuple):
            items = [fold(v, resolve, depth + 1) for v in expr.args[0].elts]
            return None if any(i is None for i in items) else owner.join(items)  # type: ignore[arg-type]
        if expr.func.attr == "format":
            values = [_fold_value(v, resolve, depth) for v in expr.args]
            if any(v is None for v in values):
                return None
            try:
                return owner.format(*values)
            except (IndexError, KeyError, ValueError):
                return None
    return None


def _fold_value(expr: ast.expr, resolve: Callable[[ast.expr], ast.expr] | None, depth: int) -> object:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, int | float):
        return expr.value
    return fold(expr, resolve, depth + 1)


def dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = dotted(expr.value)
        return f"{base}.{expr.attr}" if base else None
    return None


@dataclass(frozen=True)
class Patch:
    """One attribute set or deleted on a qualified object: `target` is e.g. "time.perf_counter"."""

    node: ast.AST
    target: str


class Source:
    """One version of one file; Python files are parsed once and shared by all matchers."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.lines = text.splitlines()
        self.tree: ast.Module | None = None
        if path.endswith(".py"):
            try:
                self.tree = pyast.parse(text)
            except (SyntaxError, ValueError):
                self.tree = None  # unparsable Python falls back to the text matchers

    def line(self, lineno: int) -> str:
        return self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""

    def hit(self, node: ast.AST, evidence: str | None = None) -> Hit:
        lineno = getattr(node, "lineno", None)
        return Hit(self.path, lineno, clip(evidence if evidence is not None else self.line(lineno or 0)))

    @cached_property
    def resolver(self) -> Resolver:
        assert self.tree is not None
        return Resolver(self.tree)

    @cached_property
    def patches(self) -> list[Patch]:
        assert self.tree is not None
        return list(_patches(self.tree, self.resolver))

    @cached_property
    def main_tail_calls(self) -> set[int]:
        """ids of calls that are the last statement of a top-level `if __name__ == "__main__":` block."""
        assert self.tree is not None
        out = set()
        for stmt in self.tree.body:
            if (
                isinstance(stmt, ast.If)
                and "__name__" in ast.unparse(stmt.test)
                and "__main__" in ast.unparse(stmt.test)
            ):
                last = stmt.body[-1]
                if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
                    out.add(id(last.value))
        return out

    @cached_property
    def module_constants(self) -> dict[str, ast.expr]:
        """Values of top-level `NAME = <expr>` bindings, so `pickle.loads(BLOB)` sees the literal behind BLOB."""
        assert self.tree is not None
        out: dict[str, ast.expr] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                out[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
                out[stmt.target.id] = stmt.value
        return out

    def resolve(self, expr: ast.expr) -> ast.expr:
        """A name bound once at module level stands for its value (one step, no data flow)."""
        if isinstance(expr, ast.Name) and expr.id in self.module_constants:
            return self.module_constants[expr.id]
        return expr

    @cached_property
    def docstrings(self) -> set[int]:
        """ids of string constants that are bare expression statements: docs, not data."""
        assert self.tree is not None
        return {
            id(node.value)
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Expr) and const_str(node.value) is not None
        }


def _patches(tree: ast.AST, resolver: Resolver) -> Iterator[Patch]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign) or (isinstance(node, ast.AnnAssign) and node.value is not None):
            targets = [node.target]
        elif isinstance(node, ast.Call):
            target = _call_patch(node, resolver)
            if target:
                yield Patch(node, target)
            continue
        else:
            continue
        for target in _flatten(targets):
            qualified = _target_name(target, resolver)
            if qualified:
                yield Patch(node, qualified)


def _flatten(targets: list[ast.expr]) -> Iterator[ast.expr]:
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List):
            yield from _flatten(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _flatten([target.value])
        else:
            yield target


def _target_name(target: ast.expr, resolver: Resolver) -> str | None:
    if isinstance(target, ast.Attribute):
        return resolver.qualify(target)
    if isinstance(target, ast.Subscript):
        owner = target.value
        key = const_str(target.slice)
        if resolver.qualify(owner) == "sys.modules":
            return key  # replacing a whole module
        if resolver.qualify(owner) in ("__builtins__", "builtins.__dict__"):
            return f"builtins.{key if key is not None else '*'}"  # __builtins__["open"] = f
        # `time.__dict__["time"] = f` and `vars(time)["time"] = f` patch like `time.time = f`.
        if isinstance(owner, ast.Attribute) and owner.attr == "__dict__":
            base = resolver.qualify(owner.value)
        elif isinstance(owner, ast.Call) and dotted(owner.func) == "vars" and owner.args:
            base = resolver.qualify(owner.args[0])
        else:
            return None
        return f"{base}.{key if key is not None else '*'}" if base else None
    return None


def _call_patch(call: ast.Call, resolver: Resolver) -> str | None:
    """The target of setattr/delattr, pytest's monkeypatch.setattr and unittest.mock.patch(.object)."""
    func = resolver.qualify(call.func) or ""
    last = func.rsplit(".", 1)[-1]
    args = call.args
    setter = last in ("setattr", "__setattr__") and len(args) >= 2
    if setter or (last in ("delattr", "__delattr__") and args):
        dotted = const_str(args[0])
        if dotted and "." in dotted:
            return dotted  # monkeypatch.setattr("time.time", f)
        base = resolver.qualify(args[0])
        name = const_str(args[1]) if len(args) > 1 else None
        return f"{base}.{name or '*'}" if base else None
    if last == "patch" and args:
        return const_str(args[0])
    if last == "object" and func.endswith("patch.object") and len(args) >= 2:
        base = resolver.qualify(args[0])
        return f"{base}.{const_str(args[1]) or '*'}" if base else None
    return None


def name_matches(name: str, patterns: Collection[str]) -> bool:
    """fnmatch on dotted names; a dynamic attribute (`x.*`) matches any pattern under x."""
    if name.endswith(".*"):
        base = name[:-2]
        if any(p.startswith(base + ".") for p in patterns):
            return True
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def name_regex(pattern: str) -> str:
    """A dotted-name pattern as a regex for text lines: `*` spans identifier characters and dots."""
    return r"(?<![\w.])" + re.escape(pattern).replace(r"\*", r"[\w.]*")


def metric_regex(regex: str, facts: TaskFacts) -> re.Pattern[str]:
    return re.compile(regex.replace(METRIC_PLACEHOLDER, re.escape(facts.metric)))
