"""Parsing in several threads at once (brain threads check proposals in parallel) must not fail."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor

from labmind import pyast

SOURCE = "x = " + "(" * 40 + "1" + ")" * 40 + "\n" + "\n".join(f"def f{i}(a):\n    return [a for a in range({i})]"
                                                              for i in range(50))


def test_parallel_parses_all_succeed_and_match_a_serial_parse() -> None:
    expected = ast.dump(ast.parse(SOURCE))
    with ThreadPoolExecutor(max_workers=8) as pool:
        dumps = list(pool.map(lambda _: ast.dump(pyast.parse(SOURCE)), range(400)))
    assert set(dumps) == {expected}
