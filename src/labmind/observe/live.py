"""Reporters the lab talks to: a live rich view for people, plain lines or JSON lines for agents."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from labmind.figures import dict_figure, fmt
from labmind.lab.progress import progress_text
from labmind.lab.status import lab_status
from labmind.model import LineStatus
from labmind.terminal import printable

if TYPE_CHECKING:
    from labmind.lab.loop import Lab


class PlainReporter:
    """One line per event, for logs and for agents reading the output."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, kind: str, message: str) -> None:
        # Messages quote run output and brains' ideas: control sequences are shown, never obeyed.
        print(f"[{time.strftime('%H:%M:%S')}] {kind}: {printable(message)}", file=self.stream, flush=True)

    def tick(self, lab: Lab) -> None:
        if _progress_changed(self, lab):
            self.event("progress", progress_text(lab_status(lab.store, lab.paths)["progress"]))


def _progress_changed(reporter: Any, lab: Lab) -> bool:
    """Whether a verdict came in since the reporter last showed progress (and once at the start)."""
    key = (lab.stats.finished, sum(lab.stats.verdicts.values()))
    if getattr(reporter, "_shown", None) == key:
        return False
    reporter._shown = key
    return True


class JsonReporter:
    """One JSON object per event (`{"at", "kind", "message"}`)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def event(self, kind: str, message: str) -> None:
        print(json.dumps({"at": time.time(), "kind": kind, "message": message}), file=self.stream, flush=True)

    def tick(self, lab: Lab) -> None:
        if _progress_changed(self, lab):
            p = lab_status(lab.store, lab.paths)["progress"]
            print(json.dumps({"at": time.time(), "kind": "progress", "message": progress_text(p), "progress": p}),
                  file=self.stream, flush=True)


def _safe(text: str) -> str:
    return escape(printable(text))


def judged_text(status: dict[str, Any]) -> str:
    """The minimum effect as `[noise] min_effect` says it, and the judge's scale once the baseline chose it."""
    text = f"minimum effect: {status.get('min_effect_text') or fmt(status.get('min_effect'), 3)}"
    if status.get("scale"):
        text += f"; on a {status['scale']} scale"
    return text


def status_view(status: dict[str, Any], events: list[str], *, lines: bool = False) -> Group:
    """The lab at a glance; `lines`: with a table of the lines and their incumbents (`labmind status`)."""
    metric = status["metric"]["name"]
    head = Table.grid(padding=(0, 2))
    base, best = status.get("baseline"), status.get("best")
    head.add_row("lab", f"[bold]{status['lab']}[/] ({metric}, {status['metric']['goal']})")
    head.add_row("baseline", "measuring…" if not base else dict_figure(base, spread="sd").text())
    head.add_row("judged", judged_text(status))
    if best and best["confirmed"]:
        rel = f" {best['relative']:+.2%} vs baseline," if best.get("relative") is not None else ""
        p_value = [f"p={best['p_value']:.3g}"] if best.get("p_value") is not None else []
        head.add_row("best", f"[green]{dict_figure(best, extra=p_value).text()}[/]{rel} exp {best['experiment']}: "
                             f"{_safe(best['idea'])}; branch {_safe(best['branch'])}")
    else:
        head.add_row("best", "baseline (no confirmed improvement yet)")
    p = status.get("progress")
    if p:
        bar = ProgressBar(total=p["max_experiments"] or None, completed=p["finished"], width=24)
        head.add_row("progress", Columns([bar, progress_text(p)]))
    counts = ", ".join(f"{k} {v}" for k, v in status["verdicts"].items()) or "none yet"
    head.add_row("verdicts", f"{counts}  ({status['experiments']} experiments, {status['in_progress']} in progress)")
    llm = status.get("llm") or {}
    if llm.get("calls"):
        head.add_row("llm", f"{llm['calls']} calls, {llm['input_tokens'] + llm['output_tokens']:,} tokens, "
                            f"${llm['cost_usd']:.2f}" + (f" ({llm['cached']} re-used)" if llm.get("cached") else ""))
    steered = [ln for ln in status.get("lines", []) if ln.get("direction") or ln.get("status") != LineStatus.ACTIVE]
    for ln in steered:
        what = f"retired: {ln['note']}" if ln["status"] != LineStatus.ACTIVE else f"direction: {ln['direction']}"
        head.add_row(f"line {ln['id']}", _safe(what[:100]))
    parts: list[Any] = [Panel(head, title="labmind", border_style="blue")]
    if lines and status.get("lines"):
        table = Table("line", "incumbent", f"{metric} ± 95% CI", "status", "direction", box=None,
                      header_style="bold")
        for ln in status["lines"]:
            table.add_row(str(ln["id"]), f"exp {ln['incumbent']}", dict_figure(ln).text(), ln["status"],
                          _safe((ln.get("direction") or ln.get("note") or "")[:60]))
        parts.append(table)
    if status["running"]:  # no table at all when nothing runs (a bare header says nothing)
        slots = Table("slot", "run", "exp", "purpose", "time", "idea", box=None, header_style="bold")
        for r in status["running"]:
            slots.add_row(r["slot"] or "", str(r["run"]), str(r["experiment"]), r["purpose"],
                          f"{r['seconds']:.0f}s", _safe(r["idea"][:60]))
        parts.append(slots)
    if events:
        parts.append(Panel("\n".join(events), title="recent", border_style="dim"))
    return Group(*parts)


class LiveReporter:
    """A refreshing terminal panel: best so far, slots in use, recent events."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.events: deque[str] = deque(maxlen=8)
        self.live: Live | None = None
        self._last = 0.0

    def event(self, kind: str, message: str) -> None:
        self.events.append(f"[dim]{time.strftime('%H:%M:%S')}[/] {kind}: {_safe(message[:160])}")
        if kind in ("verdict", "incumbent", "noise", "stop", "warning") and self.live is None:
            self.console.print(f"{kind}: {_safe(message)}")

    def tick(self, lab: Lab) -> None:
        now = time.monotonic()
        if now - self._last < 0.25 and lab.tasks:  # throttle, but always draw the final state
            return
        self._last = now
        view = status_view(lab_status(lab.store, lab.paths), list(self.events))
        if self.live is None:
            self.live = Live(view, console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            self.live.update(view)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def make_reporter(mode: str) -> PlainReporter | JsonReporter | LiveReporter:
    if mode == "json":
        return JsonReporter()
    if mode == "plain" or not sys.stdout.isatty():
        return PlainReporter()
    return LiveReporter()
