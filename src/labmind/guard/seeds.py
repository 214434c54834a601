"""The seed-only rule: a change that only moves seed values is a lucky draw, not an improvement."""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from labmind import pyast
from labmind.guard.findings import Change, Hit, clip
from labmind.guard.source import Resolver, const_str, name_matches


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
            return self._seedy(const_str(target.slice))
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

    def visit_AnnAssign(self, node: ast.AnnAssign | ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if node.value is not None and self._target_seedy(node.target):
            node.value = _mark()
        return node

    visit_AugAssign = visit_AnnAssign  # `seed += 1` like `seed: int = 1`: one target, one value

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        self.generic_visit(node)
        if self._seedy(node.arg):
            node.value = _mark()
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.values = [
            _mark() if self._seedy(const_str(k)) else v for k, v in zip(node.keys, node.values, strict=True)
        ]
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = self.resolver.qualify(node.func)
        if name and name_matches(name, self.calls):
            node.args = [_mark() for _ in node.args]
            node.keywords = [ast.keyword(arg=k.arg, value=_mark()) for k in node.keywords]
        elif any(self._seedy(const_str(a)) for a in node.args):
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
