"""`ast.parse` for code that runs in several threads at once (brain threads check proposals in parallel).

CPython 3.11 keeps the AST conversion's recursion depth per interpreter, not per thread, so two threads
parsing at the same moment can fail with "SystemError: AST constructor recursion depth mismatch"
(python/cpython#106905). One lock around the parse avoids it; parsing is fast next to everything else.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    with _LOCK:
        return ast.parse(source, filename=filename)
