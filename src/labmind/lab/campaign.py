"""A campaign's state: many tasks under one directory (its `campaign.json` lists them), each with its own lab.

Read-only, like `lab_status`: per task the starting score (from a pack's `baseline.json`, when there is
one), the lab's measured baseline, its best confirmed experiment and its verdict counts; over the campaign,
the mean of each task's current value (best confirmed, else measured baseline, else starting score), so
tasks not run yet count at their starting score rather than vanishing from the mean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labmind.figures import fmt
from labmind.lab.status import lab_status
from labmind.numeric import safe_mean
from labmind.paths import LabPaths
from labmind.store import Store, StoreError

MANIFEST = "campaign.json"


class CampaignError(Exception):
    pass


def is_campaign(directory: Path) -> bool:
    return (directory / MANIFEST).is_file() and not LabPaths(directory.resolve()).db.exists()


def _start_scores(directory: Path) -> dict[str, float]:
    """Starting scores a pack measured before any lab ran (kernels: `baseline.json` from calibrate)."""
    path = directory / "baseline.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return {name: float(row["sol_score"]) for name, row in data.items()
            if isinstance(row, dict) and isinstance(row.get("sol_score"), int | float)}


def campaign_status(directory: Path) -> dict[str, Any]:
    directory = directory.resolve()
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        tasks = [str(t.get("path") or t["name"]) for t in manifest["tasks"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CampaignError(f"{directory / MANIFEST} is not a campaign manifest ({exc}); it needs "
                            '{"tasks": [{"name": ...}, ...]}') from exc
    starts = _start_scores(directory)
    rows: list[dict[str, Any]] = []
    metric: dict[str, Any] | None = None
    for name in tasks:
        paths = LabPaths(directory / name)
        row: dict[str, Any] = {"task": name, "start": starts.get(name), "state": "not started", "baseline": None,
                               "best": None, "best_experiment": None, "experiments": 0, "verdicts": {}}
        if paths.db.exists():
            try:
                store = Store.open(paths.db, readonly=True)
            except StoreError as exc:
                row["state"] = f"unreadable: {exc}"
                rows.append(row)
                continue
            try:
                st = lab_status(store, paths)
            finally:
                store.close()
            if st.get("lab"):
                metric = metric or st["metric"]
                best = st.get("best") or {}
                row.update(state=st["state"], baseline=(st.get("baseline") or {}).get("metric"),
                           experiments=st["experiments"], verdicts=st["verdicts"])
                if best.get("confirmed"):
                    row.update(best=best["metric"], best_experiment=best["experiment"])
        row["current"] = next((v for v in (row["best"], row["baseline"], row["start"]) if v is not None), None)
        rows.append(row)
    current = [r["current"] for r in rows if r["current"] is not None]
    started = [r["start"] for r in rows if r["start"] is not None]
    return {
        "campaign": directory.name, "directory": str(directory), "metric": metric, "tasks": len(rows),
        "labs": sum(1 for r in rows if r["state"] != "not started"),
        "improved_tasks": sum(1 for r in rows if r["best"] is not None),
        "mean_start": safe_mean(started),
        "mean_current": safe_mean(current),
        "rows": rows,
    }


def campaign_markdown(data: dict[str, Any]) -> str:
    metric = data["metric"]["name"] if data["metric"] else "metric"
    lines = [f"# Campaign {data['campaign']}", "",
             f"{data['tasks']} tasks, {data['labs']} with a lab, {data['improved_tasks']} with a confirmed "
             f"improvement. Mean {metric}: start {fmt(data['mean_start'], 4)}, now {fmt(data['mean_current'], 4)} "
             "(each task at its best confirmed value, else its measured baseline, else its starting score).", "",
             "| task | start | lab baseline | best confirmed | experiment | experiments | verdicts | state |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        verdicts = ", ".join(f"{k} {v}" for k, v in r["verdicts"].items()) or "–"
        lines.append(f"| {r['task']} | {fmt(r['start'], 4)} | {fmt(r['baseline'], 4)} | {fmt(r['best'], 4)} | "
                     f"{r['best_experiment'] or '–'} | {r['experiments']} | {verdicts} | {r['state']} |")
    return "\n".join(lines) + "\n"
