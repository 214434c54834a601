"""The issue's done-when: a real lab on examples/tiny-lm driven by the llm brain against a real
OpenAI-compatible server on loopback (llama.cpp serving SmolLM2-135M). A 135M model writes no useful code:
this checks that every call is recorded with its tokens and that the lab ends cleanly whatever it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labmind.store import Store

from .test_llm_brain_lab import make_task


@pytest.mark.slow
@pytest.mark.llm_server
def test_tiny_lm_lab_on_a_local_server_ends_cleanly(tmp_path: Path, llm_server_url: str) -> None:
    task = make_task(tmp_path / "tiny-lm")
    proc = subprocess.run(
        [sys.executable, "-m", "labmind.cli.main", "run", str(task), "--brain",
         f"openai-compatible:smollm2@{llm_server_url}", "--max-experiments", "4", "--slots", "2", "--json",
         "--llm-tokens-per-experiment", "40000"],
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["kind"] == "summary" and summary["status"]["experiments"] == 4
    store = Store.open(task / ".labmind" / "lab.db", readonly=True)
    rows = [r for r in store.experiments() if r.kind == "candidate"]
    # Every experiment ended one way or another: judged, or a failed proposal with its reason.
    assert len(rows) == 4 and all(r.status in ("done", "failed") for r in rows)
    assert all(r.verdict or r.error for r in rows)
    calls = store.llm_calls()
    ok = [c for c in calls if c["status"] == "ok"]
    assert ok and all(c["input_tokens"] > 0 and c["output_tokens"] > 0 for c in ok)
    assert {c["model"] for c in calls} == {"smollm2"} and all(c["cost_usd"] in (0.0, None) for c in calls)
    assert {"ideate"} <= {c["role"] for c in ok}
    store.close()
