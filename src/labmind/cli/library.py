"""`labmind library list|search|show|retract|validate|export|import`: the user's insight library."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from labmind.cli.common import console, fail, print_json, safe
from labmind.library import Insight, Kind, Library, LibraryError, Status, default_path
from labmind.library.store import ENV, OFF

library_app = typer.Typer(help="The insight library: lessons with evidence, shared by all your labs.",
                          no_args_is_help=True)

LibraryOpt = typer.Option(None, "--library", help=f"The library file (default: ${ENV}, else "
                                                  "~/.local/share/labmind/library.db).")


def _path(spec: Path | None) -> Path:
    if spec is not None:
        return spec.expanduser().resolve()
    path = default_path()
    if str(path) == OFF:
        fail(f"${ENV} is 'off', so there is no library to read; pass --library PATH")
    return path


def _open(spec: Path | None, *, write: bool = False) -> Library:
    try:
        return Library(_path(spec), readonly=not write)
    except LibraryError as exc:
        fail(str(exc))


def _row(ins: Insight) -> dict[str, object]:
    return ins.to_dict()


def _table(items: list[Insight], extra: dict[int, str] | None = None) -> Table:
    table = Table("id", "kind", "status", "family", "task", "title", "effect", "applied (improved)",
                  *(["why"] if extra else []), header_style="bold")
    for ins in items:
        record = f"{ins.applications} ({ins.hits})" if ins.applications else "–"
        effect = ins.effect.text() if ins.effect else "–"
        table.add_row(str(ins.id), ins.kind.value, ins.status.value, safe(ins.family), safe(ins.task), safe(ins.title),
                      safe(effect), record, *([safe(extra.get(ins.id or -1, ""))] if extra else []))
    return table


@library_app.command("list")
def list_(
    library: Path = LibraryOpt,
    status: str = typer.Option(None, help="proposed | validated | retracted (default: all)."),
    kind: str = typer.Option(None, help="insight | dead_end | guard (default: all)."),
    family: str = typer.Option(None, help="Only this task family, e.g. training/llm."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Every insight and dead end, oldest first."""
    try:
        st = Status(status) if status else None
        kd = Kind(kind) if kind else None
    except ValueError as exc:
        fail(f"{exc}; --status takes proposed, validated or retracted and --kind insight, dead_end or guard")
    lib = _open(library)
    try:
        items = lib.all(status=st, kind=kd, family=family)
    finally:
        lib.close()
    if json_out:
        print_json([_row(i) for i in items])
        return
    if not items:
        console.print(f"no insights in {lib.path} yet: they are recorded when a lab verifies an improvement or finds "
                      "a dead end")
        return
    console.print(_table(items))


@library_app.command("search")
def search(
    query: str = typer.Argument(..., help="Words to look for (title, body, task, family, tags, diff)."),
    library: Path = LibraryOpt,
    family: str = typer.Option(None, help="Rank this task family first (and include its insights)."),
    limit: int = typer.Option(10, min=1, max=200),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The live insights most relevant to QUERY (BM25; same family first; retracted ones never)."""
    lib = _open(library)
    try:
        hits = lib.search(query, family=family, limit=limit)
    finally:
        lib.close()
    if json_out:
        print_json([{**_row(h.insight), "score": h.score, "why": h.why} for h in hits])
        return
    if not hits:
        console.print("no live insight matches")
        return
    console.print(_table([h.insight for h in hits], {h.insight.id or -1: h.why for h in hits}))


@library_app.command("show")
def show(
    insight_id: int = typer.Argument(..., help="The insight's id (see `labmind library list`)."),
    library: Path = LibraryOpt,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """One insight in full: what it says, its effect, provenance, diff excerpt and applications."""
    lib = _open(library)
    try:
        ins = lib.get(insight_id)
        apps = lib.applications_of(insight_id)
    except LibraryError as exc:
        fail(str(exc))
    finally:
        lib.close()
    if json_out:
        print_json({**_row(ins), "application_log": apps})
        return
    p = ins.provenance
    console.print(f"[bold]#{ins.id}[/] {safe(ins.title)}", highlight=False)
    console.print(f"kind      {ins.kind.value}\nstatus    {ins.status.value}"
                  + (f" ({safe(ins.status_reason)})" if ins.status_reason else ""), highlight=False)
    console.print(f"task      {safe(ins.task)} (family {safe(ins.family)}); tags: {safe(', '.join(ins.tags)) or '–'}",
                  highlight=False)
    if ins.effect:
        p_text = f", p={ins.effect.p_value:.3g}" if ins.effect.p_value is not None else ""
        console.print(f"effect    {safe(ins.effect.text())}{p_text}", highlight=False)
    if ins.evidence:
        console.print("evidence  " + ", ".join(f"{n} {v}" for v, n in ins.evidence.items()), highlight=False)
    for k in ins.knobs:
        console.print(f"knob      {k.name}: {k.before!r} → {k.after!r} ({k.direction}"
                      + (f", ×{k.factor:.3g}" if k.factor else "") + ")", highlight=False)
    console.print(f"from      lab {safe(p.lab)} at {safe(p.lab_dir)}, experiments "
                  f"{', '.join(map(str, p.experiments))}" + (f", commit {p.commit[:12]}" if p.commit else "")
                  + (f", brain {safe(p.brain)}" if p.brain else ""), highlight=False)
    rate = f"{ins.hits} of {ins.applications} improved" if ins.applications else "not applied elsewhere yet"
    console.print(f"applied   {rate}", highlight=False)
    for a in apps:
        console.print(f"          {a['outcome']}: exp {a['experiment_id']} in {safe(str(a['lab_dir']))} "
                      f"({a['verdict']})", highlight=False)
    console.print("\n" + safe(ins.body), highlight=False)
    if ins.diff_excerpt:
        console.print("\n[bold]diff excerpt[/]\n" + safe(ins.diff_excerpt), highlight=False)


def _set_status(insight_id: int, library: Path | None, status: Status, reason: str) -> None:
    lib = _open(library, write=True)
    try:
        ins = lib.set_status(insight_id, status, reason)
    except LibraryError as exc:
        fail(str(exc))
    finally:
        lib.close()
    console.print(f"insight #{ins.id} is now {ins.status.value}: {safe(ins.title)}", highlight=False)


@library_app.command("retract")
def retract(
    insight_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why it is wrong (kept with the insight)."),
    library: Path = LibraryOpt,
) -> None:
    """Withdraw an insight: it stays on record but is never offered to a brain again."""
    _set_status(insight_id, library, Status.RETRACTED, f"retracted by a person: {reason}")


@library_app.command("validate")
def validate(
    insight_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="What confirmed it."),
    library: Path = LibraryOpt,
) -> None:
    """Mark an insight validated by a person (brains see validated insights first)."""
    _set_status(insight_id, library, Status.VALIDATED, f"validated by a person: {reason}")


@library_app.command("export")
def export(
    library: Path = LibraryOpt,
    out: Path = typer.Option(None, "--out", help="File to write (default: stdout)."),
    include_retracted: bool = typer.Option(True, "--include-retracted/--live-only"),
) -> None:
    """Every insight as JSONL (one object per line), for sharing with another team's library."""
    lib = _open(library)
    try:
        items = lib.all(include_retracted=include_retracted)
    finally:
        lib.close()
    text = "".join(json.dumps(_row(i), sort_keys=True, default=str) + "\n" for i in items)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {len(items)} insight(s) to {out}")


@library_app.command("import")
def import_(
    source: Path = typer.Argument(..., help="A JSONL file from `labmind library export` (- for stdin)."),
    library: Path = LibraryOpt,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Add insights from JSONL. Ones already present (same key) are skipped; every line is checked first."""
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text()
    except OSError as exc:
        fail(f"cannot read {source}: {exc}")
    items: list[Insight] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(Insight.from_dict(json.loads(line)))
        except (ValueError, TypeError, AttributeError) as exc:
            fail(f"{source} line {n}: not an insight ({exc}); export one with `labmind library export`")
    lib = _open(library, write=True)
    added = 0
    try:
        for ins in items:
            added += lib.import_insight(ins)[1]
    finally:
        lib.close()
    if json_out:
        print_json({"read": len(items), "added": added, "skipped": len(items) - added, "library": str(lib.path)})
        return
    console.print(f"imported {added} insight(s) into {lib.path}; {len(items) - added} already there")
