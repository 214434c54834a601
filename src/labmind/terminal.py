"""Text that runs, brains and models wrote, made safe to print on a terminal.

Run output, idea titles, reasons quoting a log line and LLM answers can hold terminal control sequences:
an escape sequence can rewrite what is already on the screen, set the window title, or hide text; a
bidirectional override can make text read differently from what it is. Before any of it reaches a
terminal, control and format characters (Unicode categories Cc and Cf) are shown as escapes such as
`\\x1b` instead; newlines and tabs stay. JSON output needs none of this (JSON escapes control characters).
"""

from __future__ import annotations

import unicodedata

_KEEP = frozenset("\n\t")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, *, newlines: bool = True) -> str:
    """`text` with every control or format character escaped (newlines and tabs kept unless newlines=False)."""
    if text.isprintable() and (newlines or "\n" not in text):
        return text
    keep = _KEEP if newlines else frozenset()
    return "".join(
        c if c in keep or unicodedata.category(c) not in ("Cc", "Cf") else _escape(c) for c in text
    )
