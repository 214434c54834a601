"""Plain-text renderings of the agent tools' answers, for people and for agents reading tool output.

`how` picks the next-step instructions: "cli" names `labmind agent ...` commands, "mcp" names the MCP tools.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labmind.figures import Spread, bar_text, dict_figure, fmt, metric_text
from labmind.findings import Finding
from labmind.model import ExperimentKind

_TAIL_LINES = 15
_HISTORY_SHOWN = 20


def _spread(p: dict[str, Any] | None, baseline: dict[str, Any] | None) -> Spread:
    """The baseline's spread is its sd, wherever it shows up (as a line's incumbent, as the best so far)."""
    return "sd" if p and baseline and p.get("id", p.get("experiment")) == baseline.get("id") else "ci"


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "no limit"
    minutes = (epoch - time.time()) / 60
    return f"{time.strftime('%H:%M:%S', time.localtime(epoch))} (in {minutes:.0f} min)"


def _dir_arg(task_dir: str) -> str:
    """The task directory as a command argument: left out when it is the current directory."""
    try:
        same = Path(task_dir).resolve() == Path.cwd().resolve()
    except OSError:
        same = False
    return "" if same else f" {task_dir}"


def _past_line(p: dict[str, Any]) -> str:
    idea = p.get("idea") or {}
    who = f" [{p['agent']}]" if p.get("agent") else ""
    text = f"- #{p['id']}{who} {idea.get('title', '')!r}: {p.get('verdict') or 'pending'}, {metric_text(p)}."
    return text + (f" Why: {p['reason']}" if p.get("reason") else "")


def _tail(text: str) -> list[str]:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()][-_TAIL_LINES:]
    return ["    | " + ln for ln in lines]


# ------------------------------------------------------------------------------------------------- next


def render_offer(d: dict[str, Any], how: str = "cli") -> str:
    task, metric = d["task"], d["metric"]
    exp, line = d["experiment"], d["line"]
    out = [
        f"Experiment {exp} on line {line} is yours (agent {d['agent']}, token {d['token']}); "
        f"submit by {_clock(d['submit_by'])}.",
        "",
        f"Worktree (edit here):  {d['worktree']}",
        f"Editable files:        {', '.join(d['editable_files']) or '(none match)'}   "
        f"(globs: {', '.join(task['editable'])})",
        f"Protected files:       {', '.join(task['protected']) or 'none'}   (never change these)",
        f"Run command:           {task['command']}",
        f"Goal:                  {metric['goal']} {metric['name']}; {_bar(d)}",
        "",
        *_state_lines(d),
    ]
    stale = _stale_parent(d)
    if stale:
        out[1:1] = ["", stale]  # right under the first line: an agent must not miss it
    if d.get("direction"):
        out += ["", f"Line {line}'s direction: {d['direction']}"]
    if d.get("directive"):
        asked = d["directive"]
        text = "; ".join(f"{k}: {v}" for k, v in asked.items()) if isinstance(asked, dict) else str(asked)
        out += ["", f"The lab asks for this experiment: {text}"]
    if task.get("brief", "").strip():
        out += ["", "Research brief:", task["brief"].strip()]
    history = d["history"][-_HISTORY_SHOWN:]
    trimmed = f", the last {_HISTORY_SHOWN}" if len(d["history"]) > len(history) else ""
    out += ["", f"Line {line} so far (oldest first{trimmed}):"]
    out += [_past_line(p) for p in history] or ["- nothing yet: this is the line's first experiment"]
    if d["near_misses"]:
        out += ["", "Near misses worth revisiting:", *(_past_line(p) for p in d["near_misses"])]
    if d["recent_failures"]:
        out += ["", "Recent failures in the lab (avoid repeating them):"]
        for p in d["recent_failures"]:
            out.append(_past_line(p))
            out += _tail(p.get("log_tail", ""))
    if d.get("insights"):
        out += ["", "From your other labs (insight library; they may or may not transfer):"]
        out += [f"- #{i['id']} [{'DEAD END' if i['kind'] == 'dead_end' else 'insight'}, {i['status']}, from "
                f"{i['task']} ({i['family']})] {i['title']}" for i in d["insights"]]
    if d.get("also_holding"):
        out += ["", "You also hold, unsubmitted: " + ", ".join(f"exp {i}" for i in d["also_holding"])]
    out += ["", "What to do now:", *_offer_steps(d, how)]
    return "\n".join(out) + "\n"


def _bar(d: dict[str, Any]) -> str:
    if d["min_effect"] is None:
        return ("the lab is still measuring the baseline's noise, which sets the minimum effect a change must "
                "show (`labmind agent status` shows it once measured).")
    text = d.get("min_effect_text") or fmt(d["min_effect"], 4)
    return bar_text(text, d.get("min_effect_kind") == "auto", f"line {d['line']}'s incumbent") + "."


def _state_lines(d: dict[str, Any]) -> list[str]:
    rows = [
        ("Parent (the code in the worktree)", d["parent"]),
        (f"Line {d['line']} incumbent", d["incumbent"]),
        ("Best in the lab", d["best"]),
        ("Baseline", d["baseline"]),
    ]
    width = max(len(label) for label, _ in rows) + 2
    # These are the baseline and confirmed experiments: without a metric they are still being measured.
    return [f"{label + ':':<{width}}#{p['id']} {p['idea']['title']!r}, "
            + (metric_text(p, _spread(p, d["baseline"])) if p.get("metric") is not None else "being measured")
            for label, p in rows]


def catch_up_command(d: dict[str, Any]) -> str:
    """The command that puts the line's incumbent's editable files into the offer's worktree."""
    files = " ".join(d["task"]["editable"])
    return (f"git -C {d['worktree']} checkout refs/labmind/{d['task']['name']}/exp/{d['incumbent']['id']} "
            f"-- {files}")


def is_stale(d: dict[str, Any]) -> bool:
    """The line's incumbent moved after the offer was made from it: the worktree holds older code than what
    the change will be judged against."""
    offered = d.get("offered_incumbent")
    return offered is not None and offered == d["parent"]["id"] and d["incumbent"]["id"] != offered


def _stale_parent(d: dict[str, Any]) -> str | None:
    if not is_stale(d):
        return None
    inc = d["incumbent"]
    state = f", {inc['verdict']}" if inc.get("verdict") else ""
    return (f"STALE PARENT: this offer was made from line {d['line']}'s incumbent #{d['parent']['id']}; the "
            f"incumbent is now #{inc['id']}{state}, and your change is judged against #{inc['id']}. Build on it "
            f"first: {catch_up_command(d)}")


def _offer_steps(d: dict[str, Any], how: str) -> list[str]:
    exp, worktree = d["experiment"], d["worktree"]
    steps = []
    parent, incumbent = d["parent"], d["incumbent"]
    if parent["id"] != incumbent["id"] and (incumbent.get("verdict") == "improved" or is_stale(d)):
        # The offer was made while the incumbent's own runs were going: its code is not in this worktree.
        steps.append(
            f"0. This worktree holds #{parent['id']}'s code, but line {d['line']}'s incumbent is now "
            f"#{incumbent['id']}, and your change is judged against #{incumbent['id']}. To build on it, first run: "
            f"{catch_up_command(d)}")
    steps += [
        f"1. Edit only {', '.join(d['task']['editable'])} in {worktree}: one focused change that tests one "
        "hypothesis. Do not commit; labmind computes the diff itself.",
        f"2. A quick check is fine (cd {worktree} && {d['task']['command']}), but delete any file it leaves that "
        "git does not ignore: a new file outside the editable ones gets the experiment rejected.",
    ]
    if how == "mcp":
        steps += [
            f"3. Call submit_experiment(experiment={exp}, title=..., hypothesis=..., rationale=..., "
            "expected_effect=...), or submit_experiment(experiment=..., abandon=\"why\") to give it up.",
            f"4. Call results(experiment={exp}, wait_seconds=45) until it has a verdict, then next_experiment again.",
        ]
    else:
        where = _dir_arg(d["task_dir"])
        steps += [
            f"3. labmind agent submit {exp}{where} --token {d['token']} --title \"...\" --hypothesis \"...\" "
            "--rationale \"...\" --expected-effect \"...\"",
            f"   (or give it up: labmind agent submit {exp}{where} --token {d['token']} --abandon \"why\")",
            f"4. labmind agent results {exp}{where} --wait 600, then labmind agent next{where} "
            f"--line {d['line']} for the next one.",
        ]
    return steps


# ----------------------------------------------------------------------------------------------- submit


def render_submitted(d: dict[str, Any], how: str = "cli") -> str:
    exp = d["experiment"]
    if d["status"] == "abandoned":
        head = f"Experiment {exp} abandoned: {d['abandon']}. The lab records it as a failed proposal."
    else:
        head = (f"Experiment {exp} submitted: {d['title']!r}, changing {', '.join(d['changed_files'])}. labmind now "
                "commits the worktree, checks the change and runs it.")
    abandoned = d["status"] == "abandoned"  # no verdict will come: only more work is next
    if how == "mcp":
        nxt = ("Next: next_experiment for more work." if abandoned else
               f"Next: results(experiment={exp}, wait_seconds=45) for its verdict; next_experiment for more work.")
    else:
        where = _dir_arg(d["task_dir"])
        more = f"labmind agent next{where} --line {d['line']} for more work."
        nxt = (f"Next: {more}" if abandoned else
               f"Next: labmind agent results {exp}{where} --wait 600 for its verdict; {more}")
    return f"{head}\n{nxt}\n"


# ---------------------------------------------------------------------------------------------- results


def record_text(r: dict[str, Any]) -> str:
    idea = r["idea"]
    who = f", agent {r['agent']}" if r.get("agent") else ""
    head = f"exp {r['id']} (line {r['line']}, parent {r['parent']}{who}) {idea.get('title', '')!r}: "
    if r["verdict"]:
        # No delta against the parent here: the verdict compares with the line's incumbent, which `why` names.
        text = head + f"{r['verdict']}, {metric_text(r)}.\n    why: {r['reason'] or r['meaning'] or '–'}"
        if r["flags"]:
            text += "\n    flags: " + "; ".join(Finding.from_json(f).text() for f in r["flags"])
        return text
    if r["state"] in ("failed", "withdrawn"):
        return head + f"{r['state']}: {r['error'] or 'no reason recorded'}"
    return head + f"{r['state']} (no verdict yet)"


def render_results(d: dict[str, Any]) -> str:
    if not d["experiments"]:
        return (f"agent {d['agent']} has no experiments in this lab yet; claim one with `labmind agent next` "
                "(or the next_experiment tool).\n")
    return "\n".join(record_text(r) for r in d["experiments"]) + "\n"


# ---------------------------------------------------------------------------------------------- history


def render_history(d: dict[str, Any]) -> str:
    metric = d["metric"]
    effect = d.get("min_effect_text") or fmt(d["min_effect"], 4)
    out = [f"{metric['goal']} {metric['name']}; minimum effect: {effect}"]
    if d["baseline"]:
        out.append(f"baseline #{d['baseline']['id']}: {metric_text(d['baseline'], 'sd')}")
    for ln in d["lines"]:
        inc = ln["incumbent"]
        out += ["", f"line {ln['id']} ({ln['status']}), incumbent "
                    + (f"#{inc['id']} {inc['idea']!r}: {metric_text(inc, _spread(inc, d['baseline']))}"
                       if inc else "none")]
        out += [record_text(r) for r in ln["experiments"]] or ["(no experiments yet)"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------- status


def render_status(d: dict[str, Any]) -> str:
    metric = d["metric"]
    out = [f"lab {d['lab']} in {d['task_dir']}: {d['state']}" + (f" (pid {d['pid']})" if d["pid"] else "")
           + f", brain {d['brain']}, {d['experiments']} experiment(s)"
           + (f" of {d['max_experiments']}" if d.get("max_experiments") is not None else "")]
    if d["baseline"]:
        effect = d.get("min_effect_text") or fmt(d.get("min_effect"), 4)
        out.append(f"baseline {metric['name']} {metric_text(d['baseline'], 'sd')}; minimum effect: {effect}")
    best = d["best"]
    if best and best.get("confirmed"):
        out.append(f"best     exp {best['experiment']} {best['idea']!r}: {metric_text(best)}, "
                   f"{best['relative']:+.2%} vs baseline")
    else:
        out.append("best     no confirmed improvement yet")
    if d["verdicts"]:
        out.append("verdicts " + ", ".join(f"{k} {v}" for k, v in d["verdicts"].items()))
    for ln in d["lines"]:
        figure = dict_figure(ln, spread="sd" if ln.get("kind") == ExperimentKind.BASELINE else "ci").text()
        out.append(f"line {ln['id']}: incumbent #{ln['incumbent']}, {metric['name']} {figure}")
    for run in d["running"]:
        out.append(f"running: run {run['run']} of exp {run['experiment']} ({run['purpose']}) on {run['slot']}, "
                   f"{run['seconds']:.0f} s")
    if d["offers"]:
        for o in d["offers"]:
            who = f" by {o['agent']}, submit by {_clock(o['submit_by'])}" if o["agent"] else ""
            out.append(f"offer: exp {o['experiment']} (line {o['line']}) {o['status']}{who}")
    elif d["state"] == "running":
        out.append("offers: none open right now")
    return "\n".join(out) + "\n"


def render_started(d: dict[str, Any]) -> str:
    state = "running" if d["state"] == "running" else "starting (it has not taken its lock yet)"
    return (f"lab {state} in {d['task_dir']}: pid {d['pid']}, brain {d['brain']}, log {d['log']}.\n"
            "Next: claim work with `labmind agent next --wait 120` (or next_experiment); "
            "`labmind agent status` shows offers and runs; `labmind stop` ends the lab.\n")
