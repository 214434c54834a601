"""Read metric values out of run logs with code, never with a model.

Recognized forms, one or more per line:
  ``val_bpb: 1.23``   ``val_bpb=1.23``   ``step 10 | loss=2.1 | val_bpb: 1.23``
and a whole-line JSON object: ``{"val_bpb": 1.23, "loss": "nan"}``.
A name matches only as a whole token: ``my_val_bpb: 1`` is not ``val_bpb``. Numbers are ASCII only: Python's
float() also reads other scripts' digits ("١٢") and underscores ("1_0"), which no metric line means.
Whether a parsed value can be used (finite, and small enough to summarise) is `labmind.numeric`'s call.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labmind.numeric import summarisable

#: Longer lines are cut to this many characters before parsing: a run printing a huge line must not
#: make labmind hold it in memory or spend seconds in a regex.
MAX_LINE_CHARS = 10_000

# Characters that may be part of a metric name (matches the task model's name pattern), so a
# name preceded or followed by one of them is part of a longer token.
_NAME_CHARS = r"\w.\-/"
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?i:nan|inf(?:inity)?)"
_WHOLE_NUMBER = re.compile(rf"\s*(?:{_NUMBER})\s*")


@dataclass
class ParsedMetrics:
    """Per name: the last value seen and how many times a value was seen."""

    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        return self.values.get(name)

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)

    def add(self, name: str, value: float) -> None:
        self.values[name] = value
        self.counts[name] = self.counts.get(name, 0) + 1


def _pattern(names: list[str]) -> re.Pattern[str] | None:
    if not names:
        return None
    # Longest first so that with names "a" and "a.b" the longer one wins at the same position.
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    return re.compile(
        rf"(?<![{_NAME_CHARS}])(?P<name>{alternatives})\s*[:=]\s*(?P<value>{_NUMBER})(?![{_NAME_CHARS}])"
    )


def _to_float(value: object) -> float | None:
    """A JSON value as a metric: numbers and numeric strings ("nan", "inf", "1.5"); bools are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        # JSON integers are unbounded: one beyond the float range is infinite, never an OverflowError.
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str) and len(value) <= 100 and _WHOLE_NUMBER.fullmatch(value):
        return float(value.strip())
    return None


def _parse_json_line(text: str, names: list[str], out: ParsedMetrics) -> bool:
    """Parse a whole-line JSON object; False when the line is not one."""
    if not (text.startswith("{") and text.endswith("}")):
        return False
    try:
        obj = json.loads(text)  # also accepts NaN / Infinity literals
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    for name in names:
        if name in obj:
            value = _to_float(obj[name])
            if value is not None:
                out.add(name, value)
    return True


def parse_metrics(lines: Iterable[str], names: list[str]) -> ParsedMetrics:
    """Scan `lines` for values of `names`; keep the last value and the count per name."""
    out = ParsedMetrics()
    pattern = _pattern(names)
    if pattern is None:
        return out
    for line in lines:
        text = line[:MAX_LINE_CHARS].strip()
        if not text or _parse_json_line(text, names, out):
            continue
        for match in pattern.finditer(text):
            out.add(match.group("name"), float(match.group("value")))
    return out


def iter_log_lines(
    path: Path, start: int = 0, end: int | None = None, max_chars: int = MAX_LINE_CHARS
) -> Iterator[str]:
    """Lines of the byte range [start, end) of a log, streamed; overlong lines are truncated."""
    limit = max_chars * 4  # bytes: a UTF-8 character is at most 4
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        truncated = False
        while end is None or pos < end:
            chunk = f.readline(limit if end is None else min(limit, end - pos))
            if not chunk:
                return
            pos += len(chunk)
            if not truncated:
                yield chunk.decode("utf-8", errors="replace")
            # A chunk without a newline is a cut line: skip the remainder of it.
            truncated = not chunk.endswith(b"\n")


def parse_log(path: Path, names: list[str], start: int = 0, end: int | None = None) -> ParsedMetrics:
    """parse_metrics over a byte range of a log file; a missing file parses as empty."""
    try:
        return parse_metrics(iter_log_lines(path, start, end), names)
    except FileNotFoundError:
        return ParsedMetrics()


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def is_usable(value: float | None) -> bool:
    """A value labmind records as a metric: finite and within labmind.numeric.SUMMARY_LIMIT."""
    return summarisable(value)
