"""`labmind bench watchdog`: a real target process, timed unchecked, under the watchdog and under PSS reads."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from labmind.cli.main import app


def test_the_bench_times_each_variant_of_a_process_of_the_size_asked() -> None:
    result = CliRunner().invoke(app, ["bench", "watchdog", "--gib", "0.25", "--seconds", "1.5", "--json"])
    assert result.exit_code == 0, result.output
    figures = {f["variant"]: f for f in json.loads(result.output)}
    assert list(figures) == ["nothing", "watchdog", "pss every check"]
    for f in figures.values():
        assert 0.24 < f["held_gib"] < 0.3  # the target's own 256 MiB plus an interpreter
        assert f["cycles"] > 0 and f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
    assert figures["nothing"]["checks"] == 0
    # two checks a second for 1.5 s (the first after 0.5 s)
    assert all(1 <= figures[v]["checks"] <= 4 for v in ("watchdog", "pss every check"))


def test_the_table_names_every_variant() -> None:
    result = CliRunner().invoke(app, ["bench", "watchdog", "--gib", "0.1", "--seconds", "0.5"])
    assert result.exit_code == 0, result.output
    for variant in ("nothing", "watchdog", "pss every"):
        assert variant in result.output
