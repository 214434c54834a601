"""The matcher kinds rules.toml names: generic patterns over one file (calls, patches, literals...).

A file matcher scans a parsed Python file (`scan_python`) or, for other files and unparsable Python, its
lines (`scan_text`); a change matcher (seeds.py, shadow.py) looks at the whole change at once.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from labmind.guard.findings import Change, Hit, clip
from labmind.guard.source import (
    Source,
    TaskFacts,
    const_text,
    fold,
    metric_regex,
    name_matches,
    name_regex,
)
from labmind.workspace.scope import matches


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
        arg_regex = metric_regex(self.arg_regex, facts) if self.arg_regex else None
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
        calls = re.compile("|".join(name_regex(n) + r"\s*\(" for n in self.names))
        arg_regex = metric_regex(self.arg_regex, facts) if self.arg_regex else None
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
        yield from _patched(src, lambda target: name_matches(target, self.targets) and (
            not self.imported_only or src.resolver.imported(target)))

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        yield from _assigned(src, [name_regex(t) for t in self.targets])


@dataclass(frozen=True)
class AssignModuleAttrMatcher:
    """Patching any attribute of a module the task protects (its evaluator or harness), or replacing it."""

    kind = "assign_module_attr"
    modules: tuple[str, ...] = ()  # extra module names, besides those of the task's protected .py files

    def _modules(self, facts: TaskFacts) -> frozenset[str]:
        return facts.protected_modules | frozenset(self.modules)

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        modules = self._modules(facts)
        yield from _patched(src, lambda target: any(target == m or target.startswith(m + ".") for m in modules))

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        modules = self._modules(facts)
        if modules:
            yield from _assigned(src, [name_regex(m) + r"\.[\w.]+" for m in sorted(modules)])


def _patched(src: Source, wanted: Callable[[str], bool]) -> Iterator[Hit]:
    """The patches of a parsed file (assignments, deletions, setattr, mock.patch) whose target is wanted."""
    return (src.hit(patch.node) for patch in src.patches if wanted(patch.target))


def _assigned(src: Source, name_regexes: list[str]) -> Iterator[Hit]:
    """Lines assigning (or augmenting, not comparing) a name matching one of the regexes."""
    return _text_lines(src, re.compile("|".join(r + r"\s*(?:=(?!=)|[-+*/]=)" for r in name_regexes)))


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
        regex = metric_regex(self.regex, facts) if self.regex else None
        for node, text in _literals(src):
            if (regex and regex.search(text)) or (self.protected_paths and names_protected(text, facts)):
                yield src.hit(node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        regex = metric_regex(self.regex, facts) if self.regex else None
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
            yield node, const_text(node.value)  # type: ignore[misc]
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


#: A collection display, the kind of literal whose elements `_display_size` counts.
Display = ast.List | ast.Tuple | ast.Set | ast.Dict


def _top_literals(node: ast.AST, docstrings: set[int]) -> Iterator[Display | ast.Constant]:
    """Outermost collection displays and str/bytes constants (not docstrings, not inside a counted display)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.List | ast.Tuple | ast.Set | ast.Dict):
            yield child
        elif isinstance(child, ast.Constant) and isinstance(child.value, str | bytes):
            if id(child) not in docstrings:
                yield child
        else:
            yield from _top_literals(child, docstrings)


def _display_size(node: Display) -> int:
    """Direct elements or constant leaves, whichever is larger: a table of 50 rows of 5 numbers is 250."""
    direct = len(node.keys) if isinstance(node, ast.Dict) else len(node.elts)
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
            yield from _text_lines(src, metric_regex(self.pattern, facts))
