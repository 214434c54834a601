"""Which runs shared the machine: one `overlap` event per finished run (timings are read alongside it)."""

from __future__ import annotations

import re

KIND = "overlap"
_IDS = re.compile(r"alongside run\(s\) ([\d, ]+)")


def overlap_text(run_id: int, others: list[int]) -> str:
    if not others:
        return f"run {run_id} ran alone"
    return f"run {run_id} ran alongside run(s) {', '.join(map(str, others))}"


def parse_overlap(message: str) -> list[int]:
    match = _IDS.search(message)
    return [int(x) for x in match.group(1).split(",") if x.strip()] if match else []
