"""`labmind report` on a real tiny-lm lab: the numbers in report.md must be the store's numbers."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labmind.cli.main import app
from labmind.library.record import title_family
from labmind.observe.report import clip_diff, write_report
from labmind.observe.report_data import changed_knobs, collect, welch_interval
from labmind.paths import LabPaths
from labmind.store import Store
from labmind.store.lock import LabLock

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def copy_lab(src: Path, dst: Path) -> Path:
    """A private copy of a lab's store (sqlite backup: consistent even with a WAL), safe to modify."""
    (dst / ".labmind").mkdir(parents=True)
    with sqlite3.connect(LabPaths(src).db) as a, sqlite3.connect(LabPaths(dst).db) as b:
        a.backup(b)
    return dst


@pytest.fixture(scope="module")
def report_dir(tiny_lm_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = runner.invoke(app, ["report", str(tiny_lm_lab), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def read_md(path: Path) -> str:
    """report.md with markdown backslash escapes removed: the text a reader sees."""
    return re.sub(r"\\([\\<>\[\]`*_|])", r"\1", path.read_text())


def store_of(task: Path) -> Store:
    return Store.open(LabPaths(task).db, readonly=True)


def test_report_numbers_match_the_store(tiny_lm_lab: Path, report_dir: Path) -> None:
    md = read_md(report_dir / "report.md")
    store = store_of(tiny_lm_lab)
    try:
        rows = store.experiments()
        counts = store.counts_by_verdict()
        baseline = next(r for r in rows if r.kind == "baseline")
        improved = [r for r in rows if r.verdict == "improved"]
        candidates = [r for r in rows if r.kind == "candidate"]
    finally:
        store.close()
    # The baseline's spread is the sd of its runs; the best's the half-width of its mean's 95% CI.
    assert f"Baseline: val_bpb {baseline.metric:.6g} ± {baseline.metric_sd:.3g} (sd, n={baseline.n_runs})" in md
    assert "Minimum effect: any verified gain (min_effect auto)" in md
    assert f"Candidate experiments: {len(candidates)}." in md
    for verdict, n in counts.items():
        assert re.search(rf"^\| {verdict} \| {n} \|", md, re.M), verdict
    assert sum(counts.values()) == len(candidates)
    if improved:  # the tiny-lm knobs lab nearly always improves; the no-improvement case is tested below
        best = min(improved, key=lambda r: r.metric)
        half = (best.ci_high - best.ci_low) / 2
        assert f"Best: val_bpb {best.metric:.6g} ± {half:.3g} (95% CI, n={best.n_runs}), experiment {best.id}" in md
        assert f"| {best.metric:.6g} | [{best.ci_low:.6g}, {best.ci_high:.6g}] | {best.n_runs} |" in md
        rel = (best.metric - baseline.metric) / baseline.metric
        assert f"({rel * 100:+.1f}%)" in md
        assert f"p={best.p_value:.2g}" in md
        assert "```diff\n" in md and f"### Experiment {best.id}:" in md
    # The family table counts provisional (`kept`) steps in a column of their own.
    assert "| family | tried | improved | kept (provisional) | not improved | inconclusive |" in md
    # The all-experiments table has one row per candidate.
    appendix = md.split("## All experiments")[1]
    assert len(re.findall(r"^\| \d+ \|", appendix, re.M)) == len(candidates)
    summary = json.loads((report_dir / "report.json").read_text())
    assert summary["experiments"] == len(candidates)
    assert summary["baseline"]["metric"] == baseline.metric


def test_plots_are_pngs_and_html_embeds_them(report_dir: Path) -> None:
    pngs = sorted(report_dir.glob("*.png"))
    assert {p.name for p in pngs} == {"progress.png", "families.png"}
    html = (report_dir / "report.html").read_text()
    md = read_md(report_dir / "report.md")
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert f"]({png.name})" in md
    assert html.count("src='data:image/png;base64,") == len(pngs)
    assert "http://" not in html and "https://" not in html  # self-contained: no external assets


def test_default_out_is_inside_the_lab(tiny_lm_lab: Path, tmp_path: Path) -> None:
    task = copy_lab(tiny_lm_lab, tmp_path / "task")
    result = runner.invoke(app, ["report", str(task)])
    assert result.exit_code == 0, result.output
    assert (task / ".labmind" / "report" / "report.html").stat().st_size > 0


def test_missing_lab_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "no lab in" in result.output


def test_lab_without_improvement(tiny_lm_lab: Path, tmp_path: Path) -> None:
    task = copy_lab(tiny_lm_lab, tmp_path / "task")
    with sqlite3.connect(LabPaths(task).db) as db:
        db.execute("UPDATE experiments SET verdict = 'not_improved' WHERE verdict = 'improved'")
    files = _report(task, tmp_path / "out")
    md = read_md(files["markdown"])
    assert "No confirmed improvement yet" in md
    assert "## Confirmed improvements\n\nNone yet." in md
    assert json.loads(files["json"].read_text())["best"] is None


def test_lab_with_only_a_baseline(tiny_lm_lab: Path, tmp_path: Path) -> None:
    task = copy_lab(tiny_lm_lab, tmp_path / "task")
    with sqlite3.connect(LabPaths(task).db) as db:
        db.execute("DELETE FROM runs WHERE experiment_id IN (SELECT id FROM experiments WHERE kind = 'candidate')")
        db.execute("UPDATE lines SET incumbent_id = (SELECT id FROM experiments WHERE kind = 'baseline')")
        db.execute("DELETE FROM experiments WHERE kind = 'candidate'")
    files = _report(task, tmp_path / "out")
    md = read_md(files["markdown"])
    assert "Candidate experiments: 0." in md and "No confirmed improvement yet" in md
    assert files["progress"].read_bytes().startswith(PNG_MAGIC)
    assert "families" not in files


def test_report_while_the_lab_is_writing(tiny_lm_lab: Path, tmp_path: Path) -> None:
    """A running lab holds the lock and writes; the read-only report neither blocks nor sees uncommitted rows."""
    task = copy_lab(tiny_lm_lab, tmp_path / "task")
    paths = LabPaths(task)
    writer = Store.open(paths.db)
    try:
        with LabLock(paths.lock):
            before = len(collect_of(task).experiments)
            writer._conn.execute("BEGIN IMMEDIATE")  # a write in flight, as when the lab records a run
            line = writer.lines()[0]
            exp_id = writer.add_experiment(kind="candidate", line_id=line.id, parent_id=line.incumbent_id,
                                           brain="knobs", base_commit=None, status="testing")
            assert len(collect_of(task).experiments) == before
            writer._conn.execute("COMMIT")
            data = collect_of(task)
            assert data.state == "running"
            assert data.counts["in_progress"] == 1 and data.experiments[-1].id == exp_id
            files = write_report(data, tmp_path / "out")
            assert "| in_progress | 1 |" in read_md(files["markdown"])
    finally:
        writer.close()


def collect_of(task: Path):
    store = store_of(task)
    try:
        return collect(store, LabPaths(task))
    finally:
        store.close()


def _report(task: Path, out: Path) -> dict[str, Path]:
    return write_report(collect_of(task), out)


# ------------------------------------------------------------------------------------ small pieces


def test_clip_diff_says_what_was_cut() -> None:
    diff = "\n".join(f"+line {i}" for i in range(200))
    clipped = clip_diff(diff, max_lines=10, max_chars=6)
    assert clipped.splitlines()[0] == "+line…"
    assert clipped.splitlines()[-1] == "… 190 more line(s)"


def test_welch_interval_contains_the_difference() -> None:
    low, high = welch_interval([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    assert low < -1.0 < high
    assert welch_interval([1.0], [2.0, 2.1]) is None


def test_families(tiny_lm_lab: Path) -> None:
    data = collect_of(tiny_lm_lab)
    assert data.family_kind == "knob"
    by_id = {e.id: e for e in data.experiments}
    for exp in data.experiments:
        knobs = changed_knobs(exp, by_id.get(exp.parent_id or -1) or data.baseline)
        assert knobs or not exp.idea.title.startswith("set "), exp.idea.title
        for name in knobs:
            assert any(f.name == name for f in data.families)
    assert sum(f.tried for f in data.families) == sum(
        len(changed_knobs(e, by_id.get(e.parent_id or -1) or data.baseline)) for e in data.experiments)
    first = data.experiments[0]
    renamed = first.__class__(**{**first.__dict__, "idea": first.idea.__class__(title="Add RMSNorm, before attn")})
    assert title_family(renamed) == "add rmsnorm"



def test_flagged_rejected_and_crashed_are_reported(tiny_lm_lab: Path, tmp_path: Path) -> None:
    task = copy_lab(tiny_lm_lab, tmp_path / "task")
    with sqlite3.connect(LabPaths(task).db) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM experiments WHERE verdict = 'not_improved' ORDER BY id")]
        flagged, rejected, crashed = ids[:3]
        db.execute("UPDATE experiments SET verdict = 'flagged', flags = ?, reason = 'metric looked forged' "
                   "WHERE id = ?", (json.dumps(["self_reported_mismatch: 1.0 vs 2.0"]), flagged))
        db.execute("UPDATE experiments SET verdict = 'rejected', reason = 'changed prepare.py', metric = NULL "
                   "WHERE id = ?", (rejected,))
        db.execute("UPDATE experiments SET verdict = 'crashed', reason = 'exit code 1', metric = NULL WHERE id = ?",
                   (crashed,))
    data = collect_of(task)
    assert [e.id for e, _ in data.attention] == [flagged, rejected]
    md = read_md(write_report(data, tmp_path / "out")["markdown"])
    section = md.split("## Flagged and rejected")[1].split("## Cost")[0]
    assert f"| {flagged} | flagged | self_reported_mismatch: 1.0 vs 2.0 | metric looked forged |" in section
    assert f"| {rejected} | rejected | – | changed prepare.py |" in section
    assert f"| {crashed} |" not in section
    assert re.search(r"^\| crashed \| 1 \|", md, re.M)


def test_untrusted_text_is_inert_in_report_md(tiny_lm_lab: Path, tmp_path: Path) -> None:
    """Idea titles, hypotheses, reasons and flags come from a model and from run output: never markup in report.md."""
    task = copy_lab(tiny_lm_lab, tmp_path / "task")
    evil = "<script>alert(1)</script> [a](javascript:alert(2)) *b* _c_ `d` a|b \\"
    diff = "--- a/README.md\n+++ b/README.md\n+````python\n+print(1)\n+````\n+```\n"
    with sqlite3.connect(LabPaths(task).db) as db:
        (best,) = db.execute("SELECT id FROM experiments WHERE verdict = 'improved' ORDER BY metric LIMIT 1").fetchone()
        (other,) = db.execute("SELECT id FROM experiments WHERE verdict = 'not_improved' LIMIT 1").fetchone()
        idea = json.dumps({"title": evil, "hypothesis": evil, "params": {}})
        db.execute("UPDATE experiments SET idea_json = ?, diff = ?, reason = ? WHERE id = ?", (idea, diff, evil, best))
        db.execute("UPDATE experiments SET verdict = 'flagged', reason = ?, flags = ?, idea_json = ? WHERE id = ?",
                   (evil, json.dumps([f"metric_print: train.py:3: {evil}"]), idea, other))
    files = _report(task, tmp_path / "out")
    md = files["markdown"].read_text()
    assert "<script>" not in md and "</script>" not in md
    assert "[a](javascript:" not in md
    assert "\\<script\\>alert(1)\\</script\\>" in md and "\\[a\\](javascript:alert(2))" in md
    assert "\\*b\\*" in md and "\\_c\\_" in md and "\\`d\\`" in md
    assert "a\\|b" in md  # in table cells a pipe cannot end the cell
    # Each table row keeps its column count: no cell was split by an unescaped pipe.
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, re.M):
        counts = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(counts) == 1, table
    # The diff is verbatim, inside a fence longer than any backtick run in it.
    assert "`````diff\n" + diff.rstrip("\n") + "\n`````" in md
    # report.html escapes as HTML (and keeps the text as the reader should see it).
    page = files["html"].read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<a " not in page


def _knobs_exp(i: int, lr: float, width: int, metric: float, verdict: str = "not_improved") -> Any:
    from labmind.model import Idea
    from labmind.store.rows import ExperimentRow

    fields = {f: None for f in ExperimentRow.__dataclass_fields__}
    fields.update(id=i, kind="candidate", status="done", verdict=verdict, metric=metric, flags=[],
                  changed_files=[], directive={}, judgement={}, n_runs=1,
                  idea=Idea(title=f"set LR={lr}", params={"_brain": "knobs", "LR": lr, "WIDTH": width}))
    return ExperimentRow(**fields)


def test_knob_importance_ranks_the_knob_that_moves_the_metric() -> None:
    import math

    from labmind.observe.knob_analysis import knob_importance

    rows = [_knobs_exp(i, lr, w, (math.log10(lr) + 2) ** 2 + 0.001 * w)
            for i, (lr, w) in enumerate([(1e-4, 8), (1e-3, 32), (1e-2, 16), (3e-2, 8), (3e-4, 24), (0.1, 12),
                                         (3e-3, 20), (5e-3, 8)])]
    rows.append(_knobs_exp(99, 1e-2, 8, -5.0, verdict="flagged"))  # not measured honestly: left out
    importance, n = knob_importance(rows, sign=1.0)
    assert n == 8 and [k.name for k in importance] == ["LR", "WIDTH"]
    assert importance[0].importance > 0.5 and abs(sum(k.importance for k in importance) - 1) < 1e-9
    assert importance[0].best == 1e-2 and importance[0].tried == "0.0001 to 0.1"
    assert knob_importance(rows[:3], sign=1.0) == ([], 3)  # too few to say anything


def test_report_has_the_knob_importance_table(report_dir: Path) -> None:
    md = read_md(report_dir / "report.md")
    assert "## Knob importance" in md
    assert "PED-ANOVA" in md or "Too few measured experiments" in md


def test_the_renderers_are_templates_that_escape_everything(tmp_path: Path) -> None:
    from importlib.resources import files

    from labmind.observe.report import Code, Heading, Para, TableBlock, to_html, to_markdown

    assert (files("labmind.observe") / "templates" / "report.html.j2").is_file()
    blocks = [Heading(1, "lab <x>"), Para("a *b* <script>"), TableBlock(["a", "b|c"], [["1", "<i>"]]),
              Code("diff", "--- a\n+++ b\n-x\n+<y>\n```")]
    page = to_html(blocks, tmp_path, "t<")
    assert "<title>t&lt;</title>" in page and "<h1>lab &lt;x&gt;</h1>" in page and "<p>a *b* &lt;script&gt;</p>" in page
    assert "<td>&lt;i&gt;</td>" in page and '<span class="add">+&lt;y&gt;</span>' in page and "<script>" not in page
    md = to_markdown(blocks)
    assert md.startswith("# lab \\<x\\>\n\na \\*b\\* \\<script\\>\n\n| a | b\\|c |\n|---|---|\n| 1 | \\<i\\> |\n")
    assert "````diff\n--- a" in md and md.endswith("```\n````\n")  # the fence outgrows the diff's own


def test_the_progress_plot_uses_experiment_ids_like_the_dashboard(tiny_lm_lab: Path) -> None:
    from labmind.observe.report_data import running_best

    data = collect_of(tiny_lm_lab)
    steps = running_best(data)
    assert data.baseline is not None and steps[0] == (data.baseline.id, data.baseline.metric)
    assert [x for x, _ in steps[1:]] == [e.id for e in data.experiments]  # ids, not positions 1..n
