"""`labmind report`: a lab as report.md + PNG plots + a self-contained report.html.

The report is first built as a list of simple blocks (heading, paragraph, table, code, image) from the numbers
in `report_data.collect`; markdown and HTML are two renderings of the same blocks, so they cannot disagree.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import jinja2
from markupsafe import Markup

from labmind.figures import figure_text, fmt, row_figure
from labmind.observe.report_data import (
    Family,
    Improvement,
    ReportData,
    as_dict,
    is_failure,
    verdict_of,
)
from labmind.observe.report_plots import families_plot, progress_plot, short
from labmind.verdicts import MEANING, Verdict

DIFF_LINES = 80  # per improvement: enough for a focused change, short enough to read
DIFF_LINE_CHARS = 160
APPENDIX_ROWS = 200  # the full list beyond this is what `labmind export` is for


@dataclass(frozen=True)
class Heading:
    kind: ClassVar[str] = "heading"
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    kind: ClassVar[str] = "para"
    text: str


@dataclass(frozen=True)
class TableBlock:
    kind: ClassVar[str] = "table"
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Code:
    kind: ClassVar[str] = "code"
    lang: str
    text: str


@dataclass(frozen=True)
class Image:
    kind: ClassVar[str] = "image"
    alt: str
    file: str  # relative to the report folder


Block = Heading | Para | TableBlock | Code | Image


# -------------------------------------------------------------------------------------------- numbers


def signed(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:+.{digits}g}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


def ci(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"


# -------------------------------------------------------------------------------------------- sections


def headline(data: ReportData) -> list[Block]:
    b = data.baseline
    lines = [f"Task directory: {data.task_dir} · metric: {data.metric} ({data.goal}) · lab state: {data.state} · "
             f"generated {dt.datetime.fromtimestamp(data.generated_at).isoformat(timespec='seconds')}"]
    if b is None or b.metric is None:
        lines.append("Baseline: not measured yet.")
        return [Heading(1, f"labmind report: {data.lab}"), *(Para(t) for t in lines)]
    scale = f"; effects are judged on a {data.scale} scale" if data.scale else ""
    lines.append(f"Baseline: {data.metric} {row_figure(b).text()}, experiment {b.id}. "
                 f"Minimum effect: {data.min_effect_text}{scale}.")
    gain = data.gain()
    if data.improved and data.best is not None and gain is not None:
        best = data.best
        lines.append(f"Best: {data.metric} {row_figure(best).text()}, experiment {best.id} "
                     f"\"{short(best.idea.title, 80)}\".")
        lines.append(f"Gain vs baseline: {signed(gain[0])} ({pct(gain[1])}), p={fmt(data.best_p_value, 2)} "
                     "(its verification: one-sided, on fresh seeds, against its last verified point, on the judge's "
                     f"scale with the lab's pooled noise; README, How a gain is judged). Kept on branch {data.branch}.")
    else:
        lines.append(f"No confirmed improvement yet: the baseline is still the best ({len(data.experiments)} "
                     "candidate experiment(s) tried).")
    return [Heading(1, f"labmind report: {data.lab}"), *(Para(t) for t in lines)]


#: Rows of the verdict table that are not verdicts.
NOT_VERDICTS = {"in_progress": "proposed or running; no verdict yet",
                "failed_proposal": "the brain could not make the change (an error, or an agent gave it up); never run"}


def verdict_table(data: ReportData) -> list[Block]:
    rows = [[v, str(n), MEANING[Verdict(v)] if v in Verdict._value2member_map_ else NOT_VERDICTS.get(v, "")]
            for v, n in sorted(data.counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return [Heading(2, "Experiments by verdict"),
            Para(f"Candidate experiments: {len(data.experiments)}."),
            TableBlock(["verdict", "experiments", "meaning"], rows)]


def progress(data: ReportData, plot: str | None) -> list[Block]:
    if plot is None:
        return []
    return [Heading(2, "Progress"),
            Para("Each candidate experiment is a point (in the order proposed), coloured by verdict; crosses along "
                 "the bottom are experiments without a metric. The black step line is the best confirmed result "
                 "so far; the shaded band is the baseline mean ± 2 sd."),
            Image(f"progress of {data.metric}", plot)]


def clip_diff(diff: str, max_lines: int = DIFF_LINES, max_chars: int = DIFF_LINE_CHARS) -> str:
    """Keep a diff readable in a report: at most `max_lines` lines, long lines cut, and say what was cut."""
    lines = diff.splitlines()
    kept = [ln if len(ln) <= max_chars else ln[: max_chars - 1] + "…" for ln in lines[:max_lines]]
    if len(lines) > max_lines:
        kept.append(f"… {len(lines) - max_lines} more line(s)")
    return "\n".join(kept)


def improvement_blocks(data: ReportData) -> list[Block]:
    if not data.improvements:
        return [Heading(2, "Confirmed improvements"), Para("None yet.")]
    rows = [[str(i.exp.id), str(i.exp.line_id), str(i.exp.parent_id), fmt(i.exp.metric),
             ci(i.exp.ci_low, i.exp.ci_high), str(i.exp.n_runs), signed(i.delta_parent), pct(i.rel_parent),
             ci(*i.delta_ci) if i.delta_ci else "–", signed(i.delta_baseline), pct(i.rel_baseline),
             fmt(i.exp.p_value, 2), short(i.exp.idea.title, 60)] for i in data.improvements]
    out: list[Block] = [
        Heading(2, "Confirmed improvements"),
        Para("Δ parent is the change of the mean against the experiment it started from, with the 95% Welch "
             "interval of that difference from their runs (confirmation runs; the screening run is left out). "
             "p is the judge's one-sided test against the line's incumbent."),
        TableBlock(["exp", "line", "parent", data.metric, "95% CI", "n", "Δ parent", "rel", "Δ 95% CI",
                    "Δ baseline", "rel", "p", "idea"], rows),
    ]
    for imp in data.top:
        out += _one_improvement(imp)
    return out


def _one_improvement(imp: Improvement) -> list[Block]:
    exp = imp.exp
    blocks: list[Block] = [Heading(3, f"Experiment {exp.id}: {short(exp.idea.title, 100)}")]
    if exp.idea.hypothesis:
        blocks.append(Para(f"Hypothesis: {exp.idea.hypothesis}"))
    blocks.append(Para(f"Verdict: {exp.reason or exp.verdict}. Files: {', '.join(exp.changed_files) or '–'}; "
                       f"commit {exp.commit_sha or '–'}."))
    if exp.diff:
        blocks.append(Code("diff", clip_diff(exp.diff)))
    return blocks


def family_blocks(data: ReportData, plot: str | None) -> list[Block]:
    if not data.families:
        return []
    if data.family_kind == "knob":
        how = ("Family = a knob the experiment changed relative to its parent; an experiment that changed several "
               "knobs counts once under each, so effects of knobs changed together are confounded.")
    else:
        how = ("Family = the idea's `family` parameter when the brain gave one, else the first two words of its "
               "title, lowercased.")
    rows = []
    for f in data.families:
        rows.append([f.name, str(f.tried), str(f.verdicts.get("improved", 0)), str(f.verdicts.get("kept", 0)),
                     str(f.verdicts.get("not_improved", 0)), str(f.verdicts.get("inconclusive", 0)), str(_failures(f)),
                     str(f.verdicts.get("flagged", 0) + f.verdicts.get("rejected", 0)),
                     signed(f.best_delta), "–" if f.best_id is None else str(f.best_id)])
    blocks: list[Block] = [
        Heading(2, "What was tried"), Para(how + " Best Δ is the best change of the metric against the parent "
                                           "(flagged and rejected experiments excluded)."),
        TableBlock(["family", "tried", "improved", "kept (provisional)", "not improved", "inconclusive", "failed",
                    "flagged/rejected", "best Δ", "best exp"], rows)]
    if plot:
        blocks.append(Image("experiments by family", plot))
    return blocks


def importance_blocks(data: ReportData) -> list[Block]:
    """Knobs labs: how much each knob mattered, from optuna's PED-ANOVA over the measured experiments."""
    if data.family_kind != "knob":
        return []
    if not data.importance:
        return [Heading(2, "Knob importance"),
                Para(f"Too few measured experiments ({data.importance_trials}) to tell which knobs matter; "
                     "importance needs at least 5.")]
    rows = [[k.name, f"{k.importance:.0%}", k.tried, str(k.best)] for k in data.importance]
    return [Heading(2, "Knob importance"),
            Para(f"How much of the variation of {data.metric} each knob explains (optuna's PED-ANOVA over "
                 f"{data.importance_trials} measured experiments, screening values; shares sum to 100%). A point "
                 "estimate from few, correlated experiments: read it as a ranking, not a measurement."),
            TableBlock(["knob", "importance", "tried", "in the best experiment"], rows)]


def _failures(f: Family) -> int:
    return sum(n for v, n in f.verdicts.items() if is_failure(v))


def attention_blocks(data: ReportData) -> list[Block]:
    if not data.attention:
        return [Heading(2, "Flagged and rejected"), Para("No experiment was flagged or rejected.")]
    rows = [[str(e.id), verdict_of(e), "; ".join(f.text() for f in flags) or "–", e.reason or e.error or "–"]
            for e, flags in data.attention]
    return [Heading(2, "Flagged and rejected"),
            Para("Flagged experiments are never promoted; a person should look at them (`labmind show ID`)."),
            TableBlock(["exp", "verdict", "flags", "reason"], rows)]


def library_blocks(data: ReportData) -> list[Block]:
    """The insights this lab recorded in the library, and the library insights its experiments applied."""
    cites = data.library
    if cites is None:
        return []
    blocks: list[Block] = [Heading(2, "Insight library"), Para(f"Library: {cites.library}.")]
    if cites.recorded:
        rows = [[f"#{i.id}", i.kind.value, i.status.value, short(i.title, 80), i.effect.text() if i.effect else "–",
                 ", ".join(map(str, i.provenance.experiments))] for i in cites.recorded]
        blocks += [Para("Recorded by this lab (from verified gains and dead ends):"),
                   TableBlock(["insight", "kind", "status", "title", "effect (95% CI, n)", "experiments"], rows)]
    else:
        blocks.append(Para("This lab has recorded no insight yet (only verified gains and dead ends are recorded)."))
    if cites.applied:
        rows = [[str(a.experiment_id), f"#{a.insight_id}", a.insight.task if a.insight else "–",
                 short(a.insight.title, 70) if a.insight else "(not in this library)", a.verdict or "in progress"]
                for a in cites.applied]
        hits = sum(1 for a in cites.applied if a.verdict == Verdict.IMPROVED)
        judged = sum(1 for a in cites.applied if a.verdict and a.verdict != Verdict.KEPT)
        blocks += [Para(f"Applied from the library: {len(cites.applied)} experiment(s); {hits} of {judged} judged "
                        "ended `improved`."),
                   TableBlock(["exp", "insight", "from task", "insight title", "verdict"], rows)]
    return blocks


def cost_blocks(data: ReportData) -> list[Block]:
    c = data.cost
    rows = [["slot time (all runs)", hours(c.slot_seconds)]]
    rows += [[f"  {purpose} runs", hours(s)] for purpose, s in sorted(c.slot_seconds_by_purpose.items())]
    rows += [["finished runs", str(c.runs)], ["brain time", f"{c.brain_seconds:.1f} s"],
             ["wall time (first experiment to last)", hours(c.wall_seconds)]]
    return [Heading(2, "Cost"), TableBlock(["", ""], rows)]


def appendix(data: ReportData) -> list[Block]:
    exps = data.experiments[-APPENDIX_ROWS:]
    rows = [[str(e.id), str(e.line_id), str(e.parent_id), verdict_of(e),
             figure_text(e.metric, e.n_runs, ci=[e.ci_low, e.ci_high], short=True), str(e.n_runs),
             ",".join(f.rule for f in e.flags), short(e.idea.title or e.error or "", 70)] for e in exps]
    note = "" if len(exps) == len(data.experiments) else (
        f" (the last {len(exps)} of {len(data.experiments)}; `labmind export` gives them all)")
    return [Heading(2, "All experiments"), Para("One row per candidate" + note + "."),
            TableBlock(["exp", "line", "parent", "verdict", f"{data.metric} ± 95% CI", "n", "flags", "idea"], rows)]


def build(data: ReportData, plots: dict[str, str]) -> list[Block]:
    return [*headline(data), *progress(data, plots.get("progress")), *verdict_table(data),
            *improvement_blocks(data), *family_blocks(data, plots.get("families")), *importance_blocks(data),
            *attention_blocks(data), *library_blocks(data), *cost_blocks(data), *appendix(data)]


# -------------------------------------------------------------------------------------------- renderers


#: Characters that start markdown (or inline HTML) constructs; text from ideas and the store is escaped, not trusted.
_MD_SPECIAL = re.compile(r"([\\<>\[\]`*_])")


def md_text(text: str) -> str:
    """Plain text as inert markdown: one line, with link, HTML, code and emphasis characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _md_cell(text: str) -> str:
    return md_text(text).replace("|", "\\|") or " "


def _fence(text: str) -> str:
    """A code fence longer than the longest run of backticks inside, so no line of the text can close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _templates(*, html_out: bool) -> jinja2.Environment:
    """The report's templates (observe/templates): HTML autoescaped, so no stored text can become markup;
    markdown through filters that escape every construct."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("labmind.observe", "templates"), autoescape=html_out,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(md=md_text, md_cell=_md_cell, fence=_fence, diff_html=_diff_html)
    return env


def to_markdown(blocks: list[Block]) -> str:
    """Every text (headings, paragraphs, cells, alt text) is plain text: report.md renders it, never interprets it.
    A code fence is longer than any run of backticks in its text (a diff of a markdown file has fences too)."""
    return _templates(html_out=False).get_template("report.md.j2").render(blocks=blocks).rstrip("\n") + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left}th{background:#f4f4f4}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow-x:auto;
font-size:13px}.add{color:#1a7f37}.del{color:#cf222e}.hunk{color:#6f42c1}"""


def _diff_html(text: str) -> Markup:
    cls = {"+": "add", "-": "del", "@": "hunk"}
    lines = []
    for ln in text.splitlines():
        kind = None if ln.startswith(("+++", "---")) else cls.get(ln[:1])
        lines.append(f'<span class="{kind}">{html.escape(ln)}</span>' if kind else html.escape(ln))
    return Markup("\n".join(lines))  # every line escaped above


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """One file with everything inline: images become base64 data URIs so the report can be mailed as is."""
    env = _templates(html_out=True)
    env.filters["png_base64"] = lambda file: base64.b64encode((folder / file).read_bytes()).decode("ascii")
    return env.get_template("report.html.j2").render(blocks=blocks, title=title, css=Markup(_CSS))


# -------------------------------------------------------------------------------------------- entry point


def write_report(data: ReportData, out: Path) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNG plots into `out`; return what was written."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    plots: dict[str, str] = {}
    if data.experiments or data.baseline is not None:
        files["progress"] = progress_plot(data, out / "progress.png")
        plots["progress"] = "progress.png"
    if data.families:
        files["families"] = families_plot(data, out / "families.png")
        plots["families"] = "families.png"
    blocks = build(data, plots)
    files["markdown"] = out / "report.md"
    files["markdown"].write_text(to_markdown(blocks), encoding="utf-8")
    files["html"] = out / "report.html"
    files["html"].write_text(to_html(blocks, out, f"labmind report: {data.lab}"), encoding="utf-8")
    files["json"] = out / "report.json"
    files["json"].write_text(json.dumps(as_dict(data), indent=2) + "\n", encoding="utf-8")
    return files
