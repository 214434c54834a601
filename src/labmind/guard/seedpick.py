"""The seed-pick rule: code that maps the seeds labmind gives onto chosen ones makes every draw a lucky one.

Changing a seed constant is seed_only's business; this catches the remap that survives fresh seeds:
`LUCKY[seed % len(LUCKY)]`, where LUCKY came from a search over candidate seeds that kept those whose
generator drew a favourable value.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from labmind.guard.findings import Hit
from labmind.guard.source import Resolver, Source, TaskFacts, dotted, name_matches

#: `seed % 2**32` only folds a seed into a generator's range: it keeps distinct seeds distinct.
_RANGE_FOLD = 2**16
_SEQUENCES = (ast.List, ast.Tuple, ast.ListComp)


@dataclass(frozen=True)
class SeedPickMatcher:
    """Seeds selected or remapped: a seed used as an index, taken modulo a small number, or searched for."""

    kind = "seed_pick"
    names_regex: str = "seed"
    generators: tuple[str, ...] = ("random.Random", "random.seed", "*.manual_seed", "numpy.random.default_rng")

    def scan_python(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        assert src.tree is not None
        names, resolver = re.compile(self.names_regex, re.IGNORECASE), src.resolver
        annotations = _annotation_nodes(src.tree)  # `Optional[int | SeedConfig]` is a type, not a lookup
        lines: set[int] = set()
        for node in ast.walk(src.tree):
            if id(node) in annotations:
                continue
            if self._remap(node, names, src) or self._search(node, resolver):
                lineno = getattr(node, "lineno", 0)
                if lineno not in lines:
                    lines.add(lineno)
                    yield src.hit(node)

    def scan_text(self, src: Source, facts: TaskFacts) -> Iterator[Hit]:
        return iter(())  # the pattern is a syntax-tree shape; a config line cannot remap a seed

    # ------------------------------------------------------------------ remaps: TABLE[seed], seed % 7

    def _remap(self, node: ast.AST, names: re.Pattern[str], src: Source) -> bool:
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            # Only a sequence of seeds or a module-level sequence: `results[seed]` on a dict is bookkeeping.
            table = node.value
            listed = isinstance(table, ast.Name) and isinstance(src.module_constants.get(table.id), _SEQUENCES)
            seedy_table = listed or _mentions(table, names)
            return seedy_table and _mentions(node.slice, names)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _mentions(node.left, names):
            modulus = _int_value(src.resolve(node.right))
            return modulus is None or modulus < _RANGE_FOLD
        return False

    # ------------------------------------------------------------------ searches over candidate seeds

    def _search(self, node: ast.AST, resolver: Resolver) -> bool:
        """A loop whose variable seeds a generator, filtered on what that generator draws."""
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            return any(
                self._reads_draw(test, _loop_vars(gen.target), resolver, set())
                for gen in node.generators
                for test in gen.ifs
            )
        if isinstance(node, ast.For | ast.AsyncFor):
            variables = _loop_vars(node.target)
            drawn = self._drawn_names(node.body, variables, resolver)
            return any(
                self._reads_draw(inner.test, variables, resolver, drawn)
                for stmt in node.body
                for inner in ast.walk(stmt)
                if isinstance(inner, ast.If | ast.IfExp)
            )
        if isinstance(node, ast.Call) and dotted(node.func) in ("min", "max", "sorted"):
            # min(range(1000), key=lambda s: random.Random(s).gauss(0, 1)): the best-drawing seed.
            return any(
                isinstance(k.value, ast.Lambda)
                and self._reads_draw(k.value.body, {a.arg for a in k.value.args.args}, resolver, set())
                for k in node.keywords
                if k.arg == "key"
            )
        return False

    def _seeding(self, expr: ast.AST, variables: set[str], resolver: Resolver) -> bool:
        """`expr` contains a generator seeded by one of the loop variables."""
        for call in ast.walk(expr):
            if not isinstance(call, ast.Call):
                continue
            name = resolver.qualify(call.func) or ""
            if isinstance(call.func, ast.Attribute) and not name:
                name = f"?.{call.func.attr}"  # torch.Generator().manual_seed(s): any receiver
            if name_matches(name, self.generators) and any(
                isinstance(n, ast.Name) and n.id in variables
                for arg in [*call.args, *(k.value for k in call.keywords)]
                for n in ast.walk(arg)
            ):
                return True
        return False

    def _drawn_names(self, body: list[ast.stmt], variables: set[str], resolver: Resolver) -> set[str]:
        """Names bound in the loop to a seeded generator (`rng = Random(s)`) or to one draw from it."""
        generators: set[str] = set()
        drawn: set[str] = set()
        assigns = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Assign)]
        for assign in assigns:
            if self._seeding(assign.value, variables, resolver):
                generators |= _bound(assign)
        for assign in assigns:
            if _uses(assign.value, generators):
                drawn |= _bound(assign)  # one hop only: a whole training step seeded by s is no search
        return generators | drawn

    def _reads_draw(self, test: ast.AST, variables: set[str], resolver: Resolver, drawn: set[str]) -> bool:
        return self._seeding(test, variables, resolver) or _uses(test, drawn)


def _mentions(expr: ast.AST, names: re.Pattern[str]) -> bool:
    """A seed value (`seed`, `args.seed`) appears in `expr`. String keys do not count, and neither do a
    generator named seed used for draws (`seed.randrange(n)`, as networkx does) or class constants
    (`Kind.LOAD_SEED`)."""
    if isinstance(expr, ast.Call):
        parts = [*expr.args, *(k.value for k in expr.keywords)]
        if not isinstance(expr.func, ast.Attribute):
            parts.append(expr.func)  # get_seed() counts; the receiver of seed.randrange(n) does not
        return any(_mentions(p, names) for p in parts)
    if isinstance(expr, ast.Name):
        return bool(names.search(expr.id))
    if isinstance(expr, ast.Attribute):
        constant = expr.attr.isupper() and isinstance(expr.value, ast.Name) and expr.value.id[:1].isupper()
        return (not constant and bool(names.search(expr.attr))) or _mentions(expr.value, names)
    return any(_mentions(child, names) for child in ast.iter_child_nodes(expr))


def _annotation_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        for annotation in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if isinstance(annotation, ast.AST):
                out |= {id(n) for n in ast.walk(annotation)}
    return out


def _int_value(expr: ast.expr) -> int | None:
    """The value of a constant integer expression (`2**32`, `1 << 31`, `2**32 - 1`), or None."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, int):
        return expr.value
    if isinstance(expr, ast.BinOp):
        left, right = _int_value(expr.left), _int_value(expr.right)
        if left is None or right is None or (isinstance(expr.op, ast.Pow | ast.LShift) and right > 256):
            return None
        ops = {ast.Pow: pow, ast.LShift: lambda a, b: a << b, ast.Add: int.__add__, ast.Sub: int.__sub__}
        op = ops.get(type(expr.op))
        return op(left, right) if op else None
    return None


def _loop_vars(target: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _bound(assign: ast.Assign) -> set[str]:
    return set().union(*(_loop_vars(t) for t in assign.targets))


def _uses(expr: ast.AST, names: set[str]) -> bool:
    return bool(names) and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(expr))
