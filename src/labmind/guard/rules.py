"""Static rules over a change, interpreted from rules.toml.

A rule is data: a name, a family, a severity, one explanation, and one or more matchers. A matcher is one
of a few generic kinds below (calls of qualified names, attribute patches, string literals...), so a newly
confirmed hack is usually a new TOML entry rather than new code.

Only what a change introduces is reported: every rule runs on the parent's and the new text of each changed
file, and a finding counts only when its (rule, evidence) is not already in the parent as often.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from labmind import pyast
from labmind.guard.findings import Change, Finding, Hit, clip, normalized
from labmind.guard.shadow import ShadowModule, SymlinkOut
from labmind.task.model import Task
from labmind.workspace.scope import matches, protected_files

RULES_FILE = Path(__file__).with_name("rules.toml")
FAMILIES = ("scope", "static")
SEVERITIES = ("reject", "flag")
#: Stand-in for the metric name when a rule's regex is checked at load time.
_METRIC_PLACEHOLDER = "{metric}"


class RuleError(ValueError):
    """A malformed rules file; the message names the rule and the field."""


# --------------------------------------------------------------------------- what matchers see


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
        if isinstance(expr, ast.Call) and _dotted(expr.func) == "vars" and len(expr.args) == 1:
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
            return _const_str(expr.slice) or self._home_module(expr.slice)
        if isinstance(expr, ast.Call) and expr.args:
            func = self.qualify(expr.func)
            if func in _IMPORTERS:
                return _const_str(expr.args[0])
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


def _const_str(expr: ast.expr | None) -> str | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


def _const_text(value: object) -> str | None:
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
        return _const_text(expr.value)
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


def _dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value)
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
            if isinstance(node, ast.Expr) and _const_str(node.value) is not None
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
        key = _const_str(target.slice)
        if resolver.qualify(owner) == "sys.modules":
            return key  # replacing a whole module
        if resolver.qualify(owner) in ("__builtins__", "builtins.__dict__"):
            return f"builtins.{key if key is not None else '*'}"  # __builtins__["open"] = f
        # `time.__dict__["time"] = f` and `vars(time)["time"] = f` patch like `time.time = f`.
        if isinstance(owner, ast.Attribute) and owner.attr == "__dict__":
            base = resolver.qualify(owner.value)
        elif isinstance(owner, ast.Call) and _dotted(owner.func) == "vars" and owner.args:
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
        dotted = _const_str(args[0])
        if dotted and "." in dotted:
            return dotted  # monkeypatch.setattr("time.time", f)
        base = resolver.qualify(args[0])
        name = _const_str(args[1]) if len(args) > 1 else None
        return f"{base}.{name or '*'}" if base else None
    if last == "patch" and args:
        return _const_str(args[0])
    if last == "object" and func.endswith("patch.object") and len(args) >= 2:
        base = resolver.qualify(args[0])
        return f"{base}.{_const_str(args[1]) or '*'}" if base else None
    return None


def name_matches(name: str, patterns: Collection[str]) -> bool:
    """fnmatch on dotted names; a dynamic attribute (`x.*`) matches any pattern under x."""
    if name.endswith(".*"):
        base = name[:-2]
        if any(p.startswith(base + ".") for p in patterns):
            return True
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _name_regex(pattern: str) -> str:
    """A dotted-name pattern as a regex for text lines: `*` spans identifier characters and dots."""
    return r"(?<![\w.])" + re.escape(pattern).replace(r"\*", r"[\w.]*")


def _metric_regex(regex: str, facts: TaskFacts) -> re.Pattern[str]:
    return re.compile(regex.replace(_METRIC_PLACEHOLDER, re.escape(facts.metric)))


# --------------------------------------------------------------------------- matcher kinds


class FileMatcher(Protocol):
    kind: str

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]: ...

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]: ...


class ChangeMatcher(Protocol):
    kind: str

    def scan_change(self, change: Change) -> Iterator[Hit]: ...


def _text_lines(src: Source, regex: re.Pattern[str]) -> Iterator[Hit]:
    for lineno, line in enumerate(src.lines, 1):
        if regex.search(line):
            yield Hit(src.path, lineno, clip(line))


@dataclass(frozen=True)
class CallMatcher:
    """Calls of qualified names (`sys.exit`, `threading.Thread`...) or of methods by name, optionally narrowed.

    Every narrowing given must hold: `arg_regex` on a string the call's arguments build from literals (bytes
    included), `keyword_regex` on a keyword written `name=value`, `dynamic_arg` (the first argument is not a
    literal), `literal_arg_chars` (the arguments embed at least this many characters of literals),
    `protected_arg` ("dir": lists a protected directory or one holding a protected file; "glob": a pattern that
    matches a protected path), `imported_only` (the callee hangs off an imported module, not a local object).
    """

    kind = "call"
    names: tuple[str, ...]
    arg_regex: str = ""
    #: Skip the idiomatic last line `sys.exit(main())` of a script's `if __name__ == "__main__":` block.
    except_main_tail: bool = False
    #: Method names matched on any receiver: `Path("data").iterdir()`.
    methods: tuple[str, ...] = ()
    keyword_regex: str = ""
    dynamic_arg: bool = False
    literal_arg_chars: int = 0
    protected_arg: str = ""
    imported_only: bool = False

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        arg_regex = _metric_regex(self.arg_regex, facts) if self.arg_regex else None
        keyword_regex = re.compile(self.keyword_regex) if self.keyword_regex else None
        skip = src.main_tail_calls if self.except_main_tail else set()
        for node in ast.walk(src.tree):  # type: ignore[arg-type]
            if not isinstance(node, ast.Call) or id(node) in skip:
                continue
            name = src.resolver.qualify(node.func)
            by_name = bool(name and name_matches(name, self.names))
            method = isinstance(node.func, ast.Attribute) and node.func.attr in self.methods
            if not (by_name or method):
                continue
            if self.imported_only and not (name and src.resolver.imported(name)):
                continue
            if arg_regex is not None and not any(
                arg_regex.search(s) for s in _strings_in([*node.args, *node.keywords], src)
            ):
                continue
            if keyword_regex is not None and not any(
                kw.arg and keyword_regex.search(f"{kw.arg}={ast.unparse(kw.value)}") for kw in node.keywords
            ):
                continue
            if self.dynamic_arg and not _dynamic_first_arg(node, src):
                continue
            if self.literal_arg_chars and _literal_chars(node, src) < self.literal_arg_chars:
                continue
            if self.protected_arg and not _lists_protected(node, src, facts, self.protected_arg, by_name):
                continue
            yield src.hit(node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        if self.dynamic_arg or self.literal_arg_chars or self.protected_arg or not self.names:
            return  # these narrowings need the syntax tree
        calls = re.compile("|".join(_name_regex(n) + r"\s*\(" for n in self.names))
        arg_regex = _metric_regex(self.arg_regex, facts) if self.arg_regex else None
        keyword_regex = re.compile(self.keyword_regex.strip("^$")) if self.keyword_regex else None
        for hit in _text_lines(src, calls):
            if arg_regex is not None and not arg_regex.search(hit.evidence):
                continue
            if keyword_regex is not None and not keyword_regex.search(re.sub(r"\s+", "", hit.evidence)):
                continue
            yield hit


def _strings_in(nodes: list[ast.AST], src: Source | None = None) -> Iterator[str]:
    """Strings built from literals anywhere in `nodes`: constants, bytes, and folded concatenations."""
    resolve = src.resolve if src is not None and src.tree is not None else None
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Constant | ast.JoinedStr | ast.BinOp | ast.Call | ast.Name):
                value = fold(node, resolve)
                if value is not None:
                    yield value


def _dynamic_first_arg(call: ast.Call, src: Source) -> bool:
    first = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    return first is not None and fold(first, src.resolve) is None


def _literal_chars(call: ast.Call, src: Source) -> int:
    total = 0
    for top in [*call.args, *(k.value for k in call.keywords)]:
        for node in ast.walk(src.resolve(top)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                total += len(node.value)
    return total


_PATH_CALLS = ("Path", "PurePath", "PosixPath", "pathlib.Path", "pathlib.PurePath", "os.path.join")


def _path_fold(expr: ast.expr, src: Source) -> str | None:
    """A path built from literals: `"data"`, `Path("data") / "x"`, `os.path.join(DIR, "x")` with DIR a literal."""
    expr = src.resolve(expr)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
        left, right = _path_fold(expr.left, src), _path_fold(expr.right, src)
        return f"{left}/{right}" if left is not None and right is not None else None
    if isinstance(expr, ast.Call) and (src.resolver.qualify(expr.func) or "") in _PATH_CALLS and expr.args:
        parts = [_path_fold(a, src) for a in expr.args]
        return None if any(p is None for p in parts) else "/".join(parts)  # type: ignore[arg-type]
    return fold(expr, src.resolve)


def _clean_path(text: str) -> str:
    text = text.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return re.sub(r"/+", "/", text).rstrip("/")


def _lists_protected(call: ast.Call, src: Source, facts: TaskFacts, how: str, by_name: bool) -> bool:
    """A listing or glob call whose target (argument, or receiver for methods) reaches a protected path."""
    first = call.args[0] if call.args else None
    base = None
    if not by_name and isinstance(call.func, ast.Attribute):
        base = _path_fold(call.func.value, src)  # Path("data").glob("*") lists under "data"
        if base is None:
            return False
    if how == "dir":
        target = base if base is not None else (_path_fold(first, src) if first is not None else None)
        if target is None:
            return False
        target = _clean_path(target)
        if target in ("", "."):
            return False  # the task root holds everything; listing it alone is ordinary
        return names_protected(target, facts) or any(p.startswith(target + "/") for p in facts.protected_paths)
    pattern = _path_fold(first, src) if first is not None else None
    if pattern is None:
        return False
    joiner = "/*" if isinstance(call.func, ast.Attribute) and call.func.attr == "rglob" else "/"
    full = _clean_path(f"{base}{joiner}{pattern}" if base not in (None, "", ".") else pattern)
    return names_protected(full, facts) or any(fnmatch.fnmatchcase(p, full) for p in facts.protected_paths)


@dataclass(frozen=True)
class AssignAttrMatcher:
    """Assignment, deletion, setattr or monkeypatching of qualified attributes (`time.*`, `torch.allclose`)."""

    kind = "assign_attr"
    targets: tuple[str, ...]
    #: Only targets under an imported module: `time.__dict__ = ...`, not `self.__dict__ = state`.
    imported_only: bool = False

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        for patch in src.patches:
            if name_matches(patch.target, self.targets) and (
                not self.imported_only or src.resolver.imported(patch.target)
            ):
                yield src.hit(patch.node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        assign = re.compile("|".join(_name_regex(t) + r"\s*(?:=(?!=)|[-+*/]=)" for t in self.targets))
        yield from _text_lines(src, assign)


@dataclass(frozen=True)
class AssignModuleAttrMatcher:
    """Patching any attribute of a module the task protects (its evaluator or harness), or replacing it."""

    kind = "assign_module_attr"
    modules: tuple[str, ...] = ()  # extra module names, besides those of the task's protected .py files

    def _modules(self, facts: TaskFacts) -> frozenset[str]:
        return facts.protected_modules | frozenset(self.modules)

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        modules = self._modules(facts)
        for patch in src.patches:
            if any(patch.target == m or patch.target.startswith(m + ".") for m in modules):
                yield src.hit(patch.node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        modules = self._modules(facts)
        if modules:
            assign = re.compile("|".join(_name_regex(m) + r"\.[\w.]+\s*(?:=(?!=)|[-+*/]=)" for m in sorted(modules)))
            yield from _text_lines(src, assign)


@dataclass(frozen=True)
class DefineMethodMatcher:
    """Defining comparison dunders that answer a constant (an always-equal object passes any check)."""

    kind = "define_method"
    names: tuple[str, ...]
    constant_return: bool = True

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        for node in ast.walk(src.tree):  # type: ignore[arg-type]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in self.names:
                if not self.constant_return or _returns_constant(node):
                    yield src.hit(node)
            elif isinstance(node, ast.ClassDef):
                yield from self._class_assignments(src, node)
        for patch in src.patches:
            # `Tensor.__eq__ = ...` or setattr(cls, "__eq__", ...) replaces comparison on a type from outside.
            if patch.target.rsplit(".", 1)[-1] in self.names:
                yield src.hit(patch.node)

    def _class_assignments(self, src: Source, cls: ast.ClassDef) -> Iterator[Hit]:
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in self.names for t in stmt.targets
            ):
                value = stmt.value
                if not self.constant_return or (isinstance(value, ast.Lambda) and isinstance(value.body, ast.Constant)):
                    yield src.hit(stmt)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        return iter(())  # the shape of a method body is only known from the AST


def _returns_constant(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    returns = [node for node in _own_nodes(func) if isinstance(node, ast.Return)]
    return bool(returns) and all(isinstance(r.value, ast.Constant) for r in returns)


def _own_nodes(func: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function body, not descending into nested functions, lambdas or classes."""
    for child in ast.iter_child_nodes(func):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        yield child
        yield from _own_nodes(child)


@dataclass(frozen=True)
class StringLiteralMatcher:
    """String literals that name a protected path, or match a regex (`{metric}` is the task's metric name)."""

    kind = "string_literal"
    regex: str = ""
    protected_paths: bool = False

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        regex = _metric_regex(self.regex, facts) if self.regex else None
        for node, text in _literals(src):
            if (regex and regex.search(text)) or (self.protected_paths and names_protected(text, facts)):
                yield src.hit(node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        regex = _metric_regex(self.regex, facts) if self.regex else None
        for lineno, line in enumerate(src.lines, 1):
            if (regex and regex.search(line)) or (self.protected_paths and _line_names_protected(line, facts)):
                yield Hit(src.path, lineno, clip(line))


def _literals(src: Source) -> Iterator[tuple[ast.AST, str]]:
    """String literals outside docstrings; an f-string is one literal with `{}` for each value."""
    inside_fstring: set[int] = set()
    for node in ast.walk(src.tree):  # type: ignore[arg-type]
        if isinstance(node, ast.JoinedStr):
            for value in node.values:
                inside_fstring.add(id(value))
            yield node, fold(node) or ""  # f"{'val'}_bpb" folds its literal parts: "val_bpb"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            if id(node) in inside_fstring or id(node) in src.docstrings:
                continue
            yield node, _const_text(node.value)  # type: ignore[misc]
        elif isinstance(node, ast.BinOp | ast.Call):
            folded = fold(node)  # "val_" + "bpb: " is the literal "val_bpb: "
            if folded is not None:
                yield node, folded


def names_protected(literal: str, facts: TaskFacts) -> bool:
    """True when a literal is, ends with, or lies under a protected path, or is a protected file's name."""
    text = literal.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    if not text or "\n" in text:
        return False
    if matches(text, list(facts.protected)):
        return True
    base = PurePosixPath(text).name
    for path in facts.protected_paths:
        if text == path or text.endswith("/" + path) or text.startswith(path + "/") or f"/{path}/" in text:
            return True
        # A bare file name is enough when joined onto a directory elsewhere: os.path.join(DATA, "val.bin").
        if "." in PurePosixPath(path).name and base == PurePosixPath(path).name:
            return True
    return False


def _line_names_protected(line: str, facts: TaskFacts) -> bool:
    names = {p for p in facts.protected_paths} | {PurePosixPath(p).name for p in facts.protected_paths}
    return any(re.search(r"(?<![\w.])" + re.escape(n) + r"(?![\w])", line) for n in names if "." in n or "/" in n)


@dataclass(frozen=True)
class SettingChangeMatcher:
    """Assignments to global backend settings and calls of setting functions (precision, cudnn)."""

    kind = "setting_change"
    attrs: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        if self.attrs:
            yield from AssignAttrMatcher(self.attrs).scan_python(src, facts)
        if self.calls:
            yield from CallMatcher(self.calls).scan_python(src, facts)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        if self.attrs:
            yield from AssignAttrMatcher(self.attrs).scan_text(src, facts)
        if self.calls:
            yield from CallMatcher(self.calls).scan_text(src, facts)


@dataclass(frozen=True)
class LargeLiteralMatcher:
    """Collection displays with many elements and very long string literals: embedded answer tables."""

    kind = "large_literal"
    max_elements: int = 200
    max_chars: int = 2000
    #: A file whose literals together pass these (0: off) is a table split into pieces under the limits above.
    max_total_chars: int = 0
    max_total_elements: int = 0
    #: Literals smaller than this are ordinary strings and small lists; only bigger ones count towards the totals.
    min_counted: int = 20

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        yield from self._visit(src, src.tree)  # type: ignore[arg-type]
        yield from self._totals(src)

    def _totals(self, src: Source) -> Iterator[Hit]:
        """One finding naming the highest multiple of a limit the file's literals pass. The evidence only changes
        when a change adds a limit's worth of literals, so a file that already held many is not flagged again
        for an unrelated edit, while any change that adds that much more is."""
        chars, elements, first = 0, 0, None
        for node in _top_literals(src.tree, src.docstrings):  # type: ignore[arg-type]
            if isinstance(node, ast.Constant):
                size = len(node.value)
                if size >= self.min_counted:
                    chars += size
                    first = first or node
            else:
                size = _display_size(node)
                text = sum(len(n.value) for n in ast.walk(node) if isinstance(n, ast.Constant)
                           and isinstance(n.value, str | bytes) and len(n.value) >= self.min_counted)
                if size >= self.min_counted or text:
                    elements += size if size >= self.min_counted else 0
                    chars += text
                    first = first or node
        for total, limit, unit in ((chars, self.max_total_chars, "characters"), (elements, self.max_total_elements,
                                                                              "elements")):
            if limit and total > limit and first is not None:
                yield src.hit(first, f"literals of more than {total // limit * limit} {unit} in this file")

    def _visit(self, src: Source, node: ast.AST) -> Iterator[Hit]:
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            size = _display_size(node)
            if size > self.max_elements:
                kind = type(node).__name__.lower()
                yield src.hit(node, f"{kind} of {size} elements: {src.line(node.lineno).strip()}")
                return  # one finding per table, not one per nested row
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            if len(node.value) > self.max_chars and id(node) not in src.docstrings:
                kind = type(node.value).__name__
                yield src.hit(node, f"{kind} of {len(node.value)} characters: {src.line(node.lineno).strip()}")
            return
        for child in ast.iter_child_nodes(node):
            yield from self._visit(src, child)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        for lineno, line in enumerate(src.lines, 1):
            if len(line) > self.max_chars:
                yield Hit(src.path, lineno, clip(f"line of {len(line)} characters: {line.strip()}"))


def _top_literals(node: ast.AST, docstrings: set[int]) -> Iterator[ast.AST]:
    """Outermost collection displays and str/bytes constants (not docstrings, not inside a counted display)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.List | ast.Tuple | ast.Set | ast.Dict):
            yield child
        elif isinstance(child, ast.Constant) and isinstance(child.value, str | bytes):
            if id(child) not in docstrings:
                yield child
        else:
            yield from _top_literals(child, docstrings)


def _display_size(node: ast.AST) -> int:
    """Direct elements or constant leaves, whichever is larger: a table of 50 rows of 5 numbers is 250."""
    direct = len(node.keys) if isinstance(node, ast.Dict) else len(node.elts)  # type: ignore[attr-defined]
    leaves = sum(1 for n in ast.walk(node) if isinstance(n, ast.Constant))
    return max(direct, leaves)


@dataclass(frozen=True)
class AttrAccessMatcher:
    """Any use of attributes by name (`f_back`, `f_locals`): frame walking to find a grader's values."""

    kind = "attr_access"
    names: tuple[str, ...]

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        for node in ast.walk(src.tree):  # type: ignore[arg-type]
            if isinstance(node, ast.Attribute) and node.attr in self.names:
                yield src.hit(node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        yield from _text_lines(src, re.compile("|".join(r"\." + re.escape(n) + r"\b" for n in self.names)))


@dataclass(frozen=True)
class RegexMatcher:
    """A regex over the lines of files matching `files` (non-Python by default, e.g. CUDA and C++ sources)."""

    kind = "regex"
    pattern: str
    files: tuple[str, ...] = ("*",)
    python: bool = False

    def _wants(self, src: Source) -> bool:
        name = PurePosixPath(src.path).name
        return any(fnmatch.fnmatchcase(src.path, f) or fnmatch.fnmatchcase(name, f) for f in self.files)

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        if self.python:
            yield from self.scan_text(src, facts)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        if self._wants(src):
            yield from _text_lines(src, _metric_regex(self.pattern, facts))


@dataclass(frozen=True)
class SeedOnlyMatcher:
    """The whole change only moves seed values: a lucky seed is not an improvement."""

    kind = "seed_only"
    names_regex: str = "seed"
    calls: tuple[str, ...] = ("*.manual_seed", "*.manual_seed_all", "random.seed", "numpy.random.seed")

    def scan_change(self, change: Change) -> Iterator[Hit]:
        first: Hit | None = None
        for path in change.changed:
            old, new = change.old(path), change.new(path)
            if old is None or new is None or old == new:
                if old != new:
                    return  # an added or deleted file is more than a seed
                continue
            if not self._seed_only(path, old, new):
                return
            first = first or _first_difference(path, old, new)
        if first is not None:
            yield first

    def _seed_only(self, path: str, old: str, new: str) -> bool:
        names = re.compile(self.names_regex, re.IGNORECASE)
        if path.endswith(".py"):
            try:
                old_tree, new_tree = pyast.parse(old), pyast.parse(new)
            except (SyntaxError, ValueError):
                return False
            raw = ast.dump(old_tree) != ast.dump(new_tree)
            blind = [ast.dump(_SeedBlind(names, self.calls, Resolver(t)).visit(t)) for t in (old_tree, new_tree)]
            return raw and blind[0] == blind[1]
        keep = [[line.strip() for line in text.splitlines() if not names.search(line)] for text in (old, new)]
        return keep[0] == keep[1]


def _first_difference(path: str, old: str, new: str) -> Hit:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for op, _, _, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        if op in ("replace", "insert") and j1 < j2:
            return Hit(path, j1 + 1, clip(new_lines[j1]))
    return Hit(path, None, "only seed values were removed")


_SEED_MARK = "<seed>"


class _SeedBlind(ast.NodeTransformer):
    """Replaces every seed value with one placeholder, so two trees that differ only in seeds dump equal."""

    def __init__(self, names: re.Pattern[str], calls: tuple[str, ...], resolver: Resolver) -> None:
        self.names, self.calls, self.resolver = names, calls, resolver

    def _seedy(self, name: str | None) -> bool:
        return bool(name and self.names.search(name))

    def _target_seedy(self, target: ast.expr) -> bool:
        if isinstance(target, ast.Name):
            return self._seedy(target.id)
        if isinstance(target, ast.Attribute):
            return self._seedy(target.attr)
        if isinstance(target, ast.Subscript):
            return self._seedy(_const_str(target.slice))
        return False

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        self.generic_visit(node)
        target = node.targets[0]
        if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) and len(node.targets) == 1:
            if len(target.elts) == len(node.value.elts):
                node.value.elts = [
                    _mark() if self._target_seedy(t) else v for t, v in zip(target.elts, node.value.elts, strict=True)
                ]
            return node
        if all(self._target_seedy(t) for t in node.targets):
            node.value = _mark()
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if self._target_seedy(node.target):
            node.value = _mark()
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        self.generic_visit(node)
        if node.value is not None and self._target_seedy(node.target):
            node.value = _mark()
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        self.generic_visit(node)
        if self._seedy(node.arg):
            node.value = _mark()
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.values = [
            _mark() if self._seedy(_const_str(k)) else v for k, v in zip(node.keys, node.values, strict=True)
        ]
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = self.resolver.qualify(node.func)
        if name and name_matches(name, self.calls):
            node.args = [_mark() for _ in node.args]
            node.keywords = [ast.keyword(arg=k.arg, value=_mark()) for k in node.keywords]
        elif any(self._seedy(_const_str(a)) for a in node.args):
            # parser.add_argument("--seed", default=42): the default is the seed value.
            for keyword in node.keywords:
                if keyword.arg == "default":
                    keyword.value = _mark()
        return node

    def visit_arguments(self, node: ast.arguments) -> ast.AST:
        self.generic_visit(node)
        positional = [*node.posonlyargs, *node.args]
        with_default = positional[len(positional) - len(node.defaults) :]
        node.defaults = [_mark() if self._seedy(a.arg) else d for a, d in zip(with_default, node.defaults, strict=True)]
        node.kw_defaults = [
            _mark() if d is not None and self._seedy(a.arg) else d
            for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True)
        ]
        return node


def _mark() -> ast.Constant:
    return ast.Constant(value=_SEED_MARK)


FILE_KINDS: dict[str, type] = {
    m.kind: m
    for m in (
        CallMatcher,
        AssignAttrMatcher,
        AssignModuleAttrMatcher,
        DefineMethodMatcher,
        StringLiteralMatcher,
        SettingChangeMatcher,
        LargeLiteralMatcher,
        AttrAccessMatcher,
        RegexMatcher,
    )
}
CHANGE_KINDS: dict[str, type] = {m.kind: m for m in (SeedOnlyMatcher, ShadowModule, SymlinkOut)}


# --------------------------------------------------------------------------- rules and loading


@dataclass(frozen=True)
class Rule:
    name: str
    family: str
    severity: str
    explanation: str
    file_matchers: tuple[Any, ...] = ()
    change_matchers: tuple[Any, ...] = ()
    #: Whether the rule is about how the metric is measured (see rules.toml); False: a trusted evaluator's
    #: measurement stands without a person's review.
    measurement: bool = True

    def finding(self, hit: Hit) -> Finding:
        return Finding(self.name, self.family, self.severity, hit.path, hit.line, hit.evidence, self.explanation)

    def scan_file(self, src: Source, facts: TaskFacts) -> list[Hit]:
        hits: dict[tuple[int | None, str], Hit] = {}
        for matcher in self.file_matchers:
            found = matcher.scan_python(src, facts) if src.tree is not None else matcher.scan_text(src, facts)
            for hit in found:
                hits.setdefault((hit.line, normalized(hit.evidence)), hit)  # two matchers, one line: one finding
        return sorted(hits.values(), key=lambda h: (h.line or 0, h.evidence))


def load_rules(path: Path | None = None) -> list[Rule]:
    """Rules from a TOML file (the packaged rules.toml by default); a malformed entry raises RuleError."""
    path = path or RULES_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"{path}: cannot read rules: {exc}") from exc
    entries = data.get("rule")
    if not isinstance(entries, list) or not entries:
        raise RuleError(f"{path}: expected one or more [[rule]] tables")
    unknown = set(data) - {"rule"}
    if unknown:
        raise RuleError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected only [[rule]]")
    rules: list[Rule] = []
    for index, entry in enumerate(entries):
        rule = _parse_rule(entry, index, path)
        if any(r.name == rule.name for r in rules):
            raise RuleError(f"{path}: rule {rule.name!r}: field 'name': defined twice")
        rules.append(rule)
    return rules


@lru_cache(maxsize=1)
def default_rules() -> tuple[Rule, ...]:
    return tuple(load_rules())


_RULE_FIELDS = ("name", "family", "severity", "explanation", "measurement", "match")


def _parse_rule(entry: Any, index: int, path: Path) -> Rule:
    label = f"#{index + 1}"
    if not isinstance(entry, dict):
        raise RuleError(f"{path}: rule {label}: expected a table")
    name = entry.get("name")
    if isinstance(name, str) and name:
        label = repr(name)

    def fail(field_name: str, problem: str) -> RuleError:
        return RuleError(f"{path}: rule {label}: field '{field_name}': {problem}")

    for key in entry:
        if key not in _RULE_FIELDS:
            raise fail(key, f"unknown field; expected one of {', '.join(_RULE_FIELDS)}")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise fail("name", f"expected a lower_snake_case name, got {name!r}")
    family, severity, explanation = entry.get("family"), entry.get("severity"), entry.get("explanation")
    if family not in FAMILIES:
        raise fail("family", f"expected one of {', '.join(FAMILIES)}, got {family!r}")
    if severity not in SEVERITIES:
        raise fail("severity", f"expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not isinstance(explanation, str) or not explanation.strip():
        raise fail("explanation", "expected a non-empty sentence")
    measurement = entry.get("measurement", True)
    if not isinstance(measurement, bool):
        raise fail("measurement", f"expected true or false, got {measurement!r}")
    raw = entry.get("match")
    if not isinstance(raw, list) or not raw:
        raise fail("match", "expected one or more [[rule.match]] tables")
    file_matchers, change_matchers = [], []
    for position, params in enumerate(raw):
        matcher = _parse_matcher(params, f"match[{position}]", fail)
        (change_matchers if matcher.kind in CHANGE_KINDS else file_matchers).append(matcher)
    return Rule(name, family, severity, explanation.strip(), tuple(file_matchers), tuple(change_matchers),
                measurement)


def _parse_matcher(params: Any, where: str, fail: Callable[[str, str], RuleError]) -> Any:
    if not isinstance(params, dict):
        raise fail(where, "expected a table")
    kind = params.get("kind")
    cls = FILE_KINDS.get(kind) or CHANGE_KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        kinds = ", ".join(sorted([*FILE_KINDS, *CHANGE_KINDS]))
        raise fail(f"{where}.kind", f"expected one of {kinds}, got {kind!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key == "kind":
            continue
        if key not in fields:
            raise fail(f"{where}.{key}", f"unknown parameter of kind {kind!r}; expected one of {', '.join(fields)}")
        values[key] = _coerce(value, str(fields[key].type), lambda p, k=key: fail(f"{where}.{k}", p))
    for name, spec in fields.items():
        if name not in values and spec.default is dataclasses.MISSING:
            raise fail(f"{where}.{name}", f"required by kind {kind!r}")
    for key in ("regex", "arg_regex", "pattern", "names_regex"):
        if values.get(key):
            try:
                re.compile(values[key].replace(_METRIC_PLACEHOLDER, "metric"))
            except re.error as exc:
                raise fail(f"{where}.{key}", f"not a valid regular expression: {exc}") from exc
    return cls(**values)


def _coerce(value: Any, type_name: str, fail: Callable[[str], RuleError]) -> Any:
    if type_name.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail("expected a list of non-empty strings")
        return tuple(value)
    expected = {"str": str, "int": int, "bool": bool}[type_name]
    # bool is an int in Python; a flag written as a count (or the reverse) is a mistake worth naming.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise fail(f"expected {type_name}, got {value!r}")
    return value


# --------------------------------------------------------------------------- running rules on a change


def check_change(
    task: Task,
    new_dir: Path,
    old_source: Callable[[str], str | None],
    changed: list[str],
    *,
    allow: Collection[str] = (),
) -> list[Finding]:
    """Scope and static findings that this change introduces, minus the rules the task allows."""
    return run_rules(default_rules(), Change(task, Path(new_dir), old_source, list(changed)), allow=allow)


def run_rules(rules: Collection[Rule], change: Change, *, allow: Collection[str] = ()) -> list[Finding]:
    active = [r for r in rules if r.name not in set(allow)]
    findings: list[Finding] = []
    for rule in active:
        for matcher in rule.change_matchers:
            findings.extend(rule.finding(hit) for hit in matcher.scan_change(change))
    file_rules = [r for r in active if r.file_matchers]
    if file_rules:
        facts = TaskFacts.of(change.task, change.new_dir)
        for path in change.changed:
            findings.extend(_introduced(file_rules, change, path, facts))
    order = {"scope": 0, "static": 1}
    return sorted(findings, key=lambda f: (order.get(f.family, 2), f.path, f.line or 0, f.rule))


def _introduced(rules: list[Rule], change: Change, path: str, facts: TaskFacts) -> Iterator[Finding]:
    new_text = change.new(path)
    if new_text is None:
        return
    old_text = change.old(path)
    new_src = Source(path, new_text)
    old_src = Source(path, old_text) if old_text is not None else None
    for rule in rules:
        before = Counter(normalized(h.evidence) for h in rule.scan_file(old_src, facts)) if old_src else Counter()
        for hit in rule.scan_file(new_src, facts):
            key = normalized(hit.evidence)
            if before[key] > 0:
                before[key] -= 1  # the parent had this line already: moved or untouched, not introduced
            else:
                yield rule.finding(hit)


__all__ = [
    "CHANGE_KINDS",
    "FILE_KINDS",
    "RULES_FILE",
    "Rule",
    "RuleError",
    "Source",
    "TaskFacts",
    "check_change",
    "default_rules",
    "load_rules",
    "name_matches",
    "names_protected",
    "run_rules",
]
