"""`labmind bench dashboard`: how fast the dashboard answers on a lab with many experiments.

A synthetic store (the real schema, bulk-loaded: lines, a baseline, `n` candidates in a tree with a run each,
an event per 5 experiments) is served by the real app on a loopback port, and each page or API is requested
over HTTP: one warm-up request, then the median of `repeat`.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from labmind.observe.web.thread import serve_in_thread
from labmind.paths import LabPaths
from labmind.store import Store

LINES = 8
PAGE = 50  # the experiment list's page size
VERDICTS = ["not_improved"] * 70 + ["inconclusive"] * 8 + ["crashed"] * 6 + ["timed_out"] * 2 + \
    ["no_metric"] * 2 + ["no_change"] * 3 + ["rejected"] * 2 + ["flagged"] * 1 + ["improved"] * 3
TASK_JSON = json.dumps({"task": {"name": "scale", "editable": ["train.py"]}, "run": {"command": "python train.py"},
                        "metric": {"name": "loss", "goal": "minimize"}})


def build_store(task_dir: Path, n: int, seed: int = 0) -> Path:
    """A lab of `n` candidates over LINES lines under `task_dir/.labmind`; verdicts drawn like a long real lab's."""
    paths = LabPaths(task_dir)
    store = Store.open(paths.db)
    rng = random.Random(seed)
    with store.transaction():
        store.create_lab(name="scale", task_json=TASK_JSON, repo_root=str(task_dir), task_subdir=".",
                         base_commit="0" * 40, branch="labmind/scale", settings={})
        store.update_lab(baseline_id=1, min_effect=0.01, noise_sd=0.005)
        base = store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit="0" * 40,
                                    status="done")
        store.update_experiment(base, metric=1.0, metric_sd=0.005, ci_low=0.99, ci_high=1.01, n_runs=3)
        lines = [store.add_line(f"line-{i + 1}", base) for i in range(LINES)]
    store.close()
    incumbent = {line: (base, 1.0) for line in lines}
    exps, runs, now = [], [], time.time() - n
    for i in range(n):
        exp_id = base + 1 + i
        line = lines[i % LINES]
        parent, parent_metric = incumbent[line]
        verdict = rng.choice(VERDICTS)
        metric = None if verdict in ("crashed", "timed_out", "no_metric", "no_change", "rejected") else \
            parent_metric + abs(rng.gauss(0.02, 0.02)) * (-0.5 if verdict == "improved" else 1)
        if verdict == "improved":
            incumbent[line] = (exp_id, metric)
        idea = json.dumps({"title": f"try setting {i % 97} to {rng.random():.4f}", "hypothesis": "h"})
        flags = json.dumps(["plausibility: gain far beyond history"] if verdict == "flagged" else [])
        exps.append((exp_id, line, parent, "candidate", "done", "knobs", idea, verdict, "synthetic", metric,
                     0.004, None if metric is None else metric - 0.01, None if metric is None else metric + 0.01,
                     1 if metric is None else 3, 0.01, flags, 30.0, now + i, now + i + 30))
        runs.append((exp_id, "screen", i, "done", f"gpu{i % 8}", now + i, now + i + 30, 0, "ok", metric))
    # One bulk load on a connection of its own: the Store's typed API inserts a row at a time.
    conn = sqlite3.connect(paths.db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO experiments(id, line_id, parent_id, kind, status, brain, idea_json, verdict, reason, metric, "
            "metric_sd, ci_low, ci_high, n_runs, p_value, flags, slot_seconds, created_at, finished_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", exps)
        conn.executemany("INSERT INTO runs(experiment_id, purpose, seed, status, slot, started_at, ended_at, "
                         "exit_code, outcome, metric) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
        conn.executemany("INSERT INTO events(at, kind, experiment_id, message) VALUES (?, 'verdict', ?, ?)",
                         [(now + i, base + 1 + i, f"exp {base + 1 + i} done") for i in range(0, n, 5)])
        for line, (inc, _) in incumbent.items():
            conn.execute("UPDATE lines SET incumbent_id = ? WHERE id = ?", (inc, line))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return task_dir


def urls(n: int) -> list[tuple[str, str]]:
    """(url, what it is) for a lab of `n` candidates: pages near the start, deep in the list, and filtered."""
    deep = max(1, (3 * n // 4) // PAGE)
    improved = max(1, (n * 3 // 100) // PAGE // 2)
    by_line = max(1, (n // LINES) // PAGE // 2)
    return [
        ("/", "overview page"),
        ("/api/status", "overview data"),
        ("/api/chart", "progress chart series (downsampled)"),
        ("/experiments", "experiments list, first page"),
        (f"/experiments?page={deep}", f"deep page (offset {(deep - 1) * PAGE:,})"),
        (f"/experiments?verdict=improved&page={improved}", "filtered by verdict"),
        (f"/experiments?line=3&page={by_line}", "filtered by line"),
        (f"/api/experiments?limit=100&offset={max(0, n - 1000)}", "API list, near the end"),
        ("/tree?line=2", "tree view (capped)"),
        (f"/experiments/{max(2, n // 2)}", "one experiment"),
    ]


@dataclass
class Figure:
    url: str
    about: str
    median_ms: float
    max_ms: float
    repeat: int
    bytes: int


def time_requests(base: str, n: int, repeat: int = 5) -> list[Figure]:
    figures = []
    for url, about in urls(n):
        with urllib.request.urlopen(base + url, timeout=60) as response:  # warm-up: caches, templates
            size = len(response.read())
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            with urllib.request.urlopen(base + url, timeout=60) as response:
                response.read()
            times.append((time.perf_counter() - start) * 1000)
        figures.append(Figure(url, about, statistics.median(times), max(times), repeat, size))
    return figures


def run_bench(workdir: Path, n: int, repeat: int = 5) -> tuple[float, list[Figure]]:
    """Build the store under `workdir`, serve it, time every URL. Returns (seconds to build, figures)."""
    start = time.perf_counter()
    build_store(workdir, n)
    built = time.perf_counter() - start
    with serve_in_thread(workdir) as base:
        return built, time_requests(base, n, repeat)
