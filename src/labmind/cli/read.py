"""Read-only verbs: `labmind status`, `log`, `show`, `diff`. Each has --json; none takes the writer lock."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from labmind.cli.common import JsonOpt, TaskDirArg, console, fail, print_json, read_store, safe
from labmind.figures import figure_text, fmt, row_figure
from labmind.findings import Finding
from labmind.lab.campaign import CampaignError, campaign_status, is_campaign
from labmind.lab.overlap import KIND as OVERLAP
from labmind.lab.overlap import parse_overlap
from labmind.lab.status import lab_status
from labmind.model import ExperimentKind
from labmind.observe.live import status_view
from labmind.store import ExperimentRow, Store, StoreError
from labmind.store.records import experiment_json, run_json
from labmind.task import Task
from labmind.terminal import printable
from labmind.verdicts import MEANING, Verdict

VERDICT_STYLE = {"improved": "green", "kept": "bright_green", "not_improved": "white", "inconclusive": "yellow",
                 "flagged": "magenta",
                 "rejected": "red", "crashed": "red", "timed_out": "red", "no_metric": "red", "bad_metric": "red",
                 "no_change": "dim"}


def status(task_dir: Path = TaskDirArg, json_out: bool = JsonOpt) -> None:
    """Best, baseline, counts by verdict, lines and what is running; for a campaign directory, every task."""
    if is_campaign(task_dir):
        try:
            campaign = campaign_status(task_dir)
        except CampaignError as exc:
            fail(str(exc))
        if json_out:
            print_json(campaign)
        else:
            campaign_view(campaign)
        return
    with read_store(task_dir) as (store, paths):
        data = lab_status(store, paths)
    if json_out:
        print_json(data)
        return
    console.print(status_view(data, [], lines=True))
    console.print(f"state: {data['state']}" + (f" (pid {data['pid']})" if data["pid"] else "")
                  + f", slot-hours {data['slot_hours']:.3f}")


def campaign_view(data: dict[str, Any]) -> None:
    metric = data["metric"]["name"] if data["metric"] else "metric"
    table = Table("task", "start", "lab baseline", "best confirmed", "exp", "experiments", "state",
                  header_style="bold", box=box.SIMPLE_HEAD,
                  title=f"campaign {data['campaign']}: {data['tasks']} tasks, {data['labs']} with a lab")
    for r in data["rows"]:
        table.add_row(safe(r["task"]), fmt(r["start"], 4), fmt(r["baseline"], 4), fmt(r["best"], 4),
                      str(r["best_experiment"] or "–"), str(r["experiments"]), safe(r["state"]))
    console.print(table)
    console.print(f"mean {metric}: start {fmt(data['mean_start'], 4)}, now {fmt(data['mean_current'], 4)}; "
                  f"{data['improved_tasks']} task(s) with a confirmed improvement. One task: "
                  f"`labmind status {data['directory']}/TASK`.")


def experiment_dict(exp: ExperimentRow, store: Store | None = None, *, with_diff: bool = False) -> dict[str, Any]:
    """An experiment as `labmind log/show --json` print it: the one record (`labmind.store.records`), and for
    `show` its runs and LLM spend."""
    out = experiment_json(exp)
    if with_diff:
        out["diff"] = exp.diff
    if store is not None:
        # Other runs that shared the machine with each run (None: not recorded, e.g. a run still going).
        alongside = {e.run_id: parse_overlap(e.message) for e in store.events_of(exp.id, OVERLAP)}
        out["runs"] = [{**run_json(r), "alongside": alongside.get(r.id)} for r in store.runs_of(exp.id)]
        calls = store.llm_calls(experiment_id=exp.id)
        out["llm"] = {"calls": len(calls), "input_tokens": sum(c["input_tokens"] for c in calls),
                      "output_tokens": sum(c["output_tokens"] for c in calls),
                      "cost_usd": sum(c["cost_usd"] or 0.0 for c in calls if c["status"] != "cached")}
    return out


def metric_text(exp: ExperimentRow) -> str:
    """A table cell under "metric ± 95% CI": the value and its CI half-width, every row alike (the baseline's
    too); the runs are in their own column."""
    return figure_text(exp.metric, exp.n_runs, ci=[exp.ci_low, exp.ci_high], short=True)


def judgement_text(exp: ExperimentRow, sign: float) -> str:
    """The judge's numbers in one line: the effect as the metric's change (relative on a log scale) with its CI,
    P(better), runs. `sign`: the task's (+1 when larger is better)."""
    from labmind.scale import Scale, effect_with_ci_text

    j = exp.judgement
    verify = j.get("verify") or {}
    scale = Scale(verify.get("scale") or j.get("scale") or "linear")
    parts = []
    if j.get("effect") is not None:
        parts.append(f"screening {effect_with_ci_text(scale, j['effect'], sign)} vs exp {j.get('reference')} "
                     f"on seed {j.get('seed')}")
    if verify:
        line = f"verification vs exp {verify.get('anchor')}: {verify.get('state')}"
        if verify.get("effect") is not None:
            effect = effect_with_ci_text(scale, verify["effect"], sign, verify.get("low"), verify.get("high"))
            line += (f", {effect}, P(better) {verify.get('p_improve', 0):.3f}, "
                     f"{verify.get('n_cand')} vs {verify.get('n_ref')} runs, "
                     f"{'paired' if verify.get('paired') else 'unpaired'}, claim level {verify.get('level', 0):.3g} "
                     "(spent over its looks)")
        parts.append(line)
    return "; ".join(parts)


#: The narrowest the idea column of `log` gets: a knob setting such as LEARNING_RATE=0.002553 fits on a line.
IDEA_MIN = 24


def log(task_dir: Path = TaskDirArg, limit: int = typer.Option(None, min=1, help="Show only the last N experiments."),
        line: int = typer.Option(None, help="Only this line's experiments."),
        wide: bool = typer.Option(False, "--wide", help="One line per experiment, however wide (ideas in full)."),
        json_out: bool = JsonOpt) -> None:
    """One row per experiment: id, line, parent, verdict, metric ± 95% CI half-width, runs, flags, idea."""
    with read_store(task_dir) as (store, _):
        rows = store.experiments(line_id=line, limit=limit, newest_first=limit is not None)
        rows.sort(key=lambda r: r.id)
        if json_out:
            print_json([experiment_dict(r) for r in rows])
            return
        metric = store.lab().name if store.lab() else ""
    table = Table(header_style="bold", title=f"{metric}: {len(rows)} experiment(s)", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    flagged = any(r.flags for r in rows)  # an always-empty flags column took the idea's room
    for name in ("exp", "line", "parent", "verdict", "metric ± 95% CI", "n", *(("flags",) if flagged else ())):
        table.add_column(name, no_wrap=True)
    # The idea takes what the other columns leave, at least IDEA_MIN characters, and wraps at its spaces (a
    # clipped "set LEARNIN…" said nothing; a 10-character column cut every setting in three);
    # --wide keeps every row on one line, for wide terminals and for grep.
    table.add_column("idea", no_wrap=wide, overflow="fold", min_width=None if wide else IDEA_MIN)
    for r in rows:
        verdict = r.verdict or ("baseline" if r.kind == ExperimentKind.BASELINE else r.status)
        style = VERDICT_STYLE.get(verdict, "cyan")
        flags = (safe(",".join(f.rule for f in r.flags)),) if flagged else ()
        table.add_row(str(r.id), "–" if r.line_id is None else str(r.line_id),
                      "–" if r.parent_id is None else str(r.parent_id), f"[{style}]{verdict}[/]", metric_text(r),
                      str(r.n_runs), *flags, safe(" ".join((r.idea.title or r.error or "").split())))
    if wide:
        Console(width=100_000).print(table, crop=False)
    else:
        console.print(table)


def _experiment(store: Store, exp: int) -> ExperimentRow:
    try:
        return store.experiment(exp)
    except StoreError as e:
        fail(str(e))


def show(exp: int = typer.Argument(..., help="Experiment id (see `labmind log`)."), task_dir: Path = TaskDirArg,
         json_out: bool = JsonOpt) -> None:
    """Everything about one experiment: idea, verdict and why, runs, flags, changed files."""
    with read_store(task_dir) as (store, _):
        row = _experiment(store, exp)
        data = experiment_dict(row, store, with_diff=True)
        sign = Task.model_validate_json(store.lab().task_json).sign
    if json_out:
        print_json(data)
        return
    verdict = row.verdict or ("baseline" if row.kind == ExperimentKind.BASELINE else row.status)
    console.print(f"[bold]experiment {row.id}[/] ({row.kind}, line {row.line_id}, parent {row.parent_id}) "
                  f"[{VERDICT_STYLE.get(verdict, 'cyan')}]{verdict}[/]")
    if row.verdict in {v.value for v in Verdict}:
        console.print(f"  meaning: {MEANING[Verdict(row.verdict)]}")
    console.print(f"  why:     {safe(row.reason or row.error or '–')}")
    console.print(f"  idea:    {safe(row.idea.title)}")
    for label, text in (("hypothesis", row.idea.hypothesis), ("rationale", row.idea.rationale),
                        ("expected", row.idea.expected_effect)):
        if text:
            console.print(f"  {label}: {safe(text)}")
    p = [f"p={row.p_value:.3g}"] if row.p_value is not None else []
    console.print(f"  metric:  {row_figure(row, extra=p).text()}", highlight=False)
    judged = judgement_text(row, sign)
    if judged:
        console.print(f"  judge:   {judged}")
    if row.directive:
        console.print(f"  asked:   {row.directive.get('kind')} (of exp "
                      f"{row.directive.get('of', row.directive.get('with'))})")
    if row.analysis:
        console.print(f"  lesson:  {safe(row.analysis)}")
    if data["llm"]["calls"]:
        llm = data["llm"]
        console.print(f"  llm:     {llm['calls']} calls, {llm['input_tokens']} in / {llm['output_tokens']} out "
                      f"tokens, ${llm['cost_usd']:.4f}; `labmind calls --experiment {row.id}`")
    if row.flags:
        console.print(f"  flags:   {safe('; '.join(f.text() for f in row.flags))}")
    console.print(f"  files:   {safe(', '.join(row.changed_files)) or '–'}   commit {row.commit_sha or '–'}")
    table = Table("run", "purpose", "seed", "slot", "outcome", "metric", "seconds", "flags", "log",
                  header_style="bold")
    for r in data["runs"]:
        table.add_row(str(r["id"]), r["purpose"], str(r["seed"]), r["slot"] or "", r["outcome"] or r["status"],
                      fmt(r["metric"]), f"{r['seconds']:.1f}",
                      safe(",".join(Finding.from_json(f).text() for f in r["flags"])), safe(r["log"] or ""))
    console.print(table)
    console.print(f"diff: `labmind diff {row.id}`")


def diff(exp: int = typer.Argument(..., help="Experiment id."), task_dir: Path = TaskDirArg,
         json_out: bool = JsonOpt) -> None:
    """The experiment's code change, as computed by labmind with git."""
    with read_store(task_dir) as (store, _):
        row = _experiment(store, exp)
    if json_out:
        print_json({"id": row.id, "base_commit": row.base_commit, "commit": row.commit_sha, "diff": row.diff or ""})
        return
    text = row.diff or f"(experiment {row.id} has no diff)\n"
    # On a terminal, control sequences in the change are shown, not obeyed; piped, the diff stays applicable.
    sys.stdout.write(printable(text) if sys.stdout.isatty() else text)


def calls(task_dir: Path = TaskDirArg,
          experiment: int = typer.Option(None, help="Only this experiment's calls."),
          full: bool = typer.Option(False, "--full", help="Print each call's prompt and response (truncated as "
                                                          "stored)."),
          json_out: bool = JsonOpt) -> None:
    """The lab's LLM calls: role, model, tokens, dollars, latency; totals by role."""
    with read_store(task_dir) as (store, _):
        rows = store.llm_calls(experiment_id=experiment)
        totals = store.llm_totals()
    if json_out:
        print_json({"calls": rows, "totals": totals})
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, title=f"{len(rows)} LLM call(s)")
    for name in ("id", "exp", "role", "model", "status", "in", "out", "cost $", "seconds"):
        table.add_column(name, no_wrap=True)
    for c in rows:
        cost = "–" if c["cost_usd"] is None else f"{c['cost_usd']:.4f}"
        table.add_row(str(c["id"]), "–" if c["experiment_id"] is None else str(c["experiment_id"]), c["role"],
                      safe(c["model"]), c["status"], str(c["input_tokens"]), str(c["output_tokens"]), cost,
                      f"{c['latency_s']:.1f}")
    console.print(table)
    if full:
        for c in rows:
            console.print(f"[bold]call {c['id']}[/] ({c['role']}, {safe(c['model'])}, {c['status']})")
            console.print(safe(c["prompt"]), highlight=False)
            console.print("[bold]→[/] " + safe(c["response"] or c["error"] or ""), highlight=False)
    t = totals["total"]
    unpriced = f", {t['unpriced']} without a known price" if t["unpriced"] else ""
    console.print(f"total: {t['calls']} calls ({t['cached']} re-used from the store, {t['errors']} failed), "
                  f"{t['input_tokens']} input + {t['output_tokens']} output tokens, ${t['cost_usd']:.4f}{unpriced}")
