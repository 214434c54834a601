"""The report's PNG plots (matplotlib, Agg backend: no display needed, safe in threads of a headless server)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: reports are written on headless machines

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from labmind.observe.report_data import ReportData, running_best, verdict_of

#: Verdict colours, shared by both plots (and close to the CLI's colours).
COLORS = {
    "improved": "#2ca02c", "kept": "#98df8a", "not_improved": "#8c8c8c", "inconclusive": "#e6a800",
    "flagged": "#c030c0", "rejected": "#d62728", "crashed": "#d62728", "timed_out": "#ff7f0e", "no_metric": "#a05a2c",
    "bad_metric": "#a05a2c", "no_change": "#c8c8c8", "in_progress": "#1f77b4", "failed_proposal": "#555555",
}
LABEL_CHARS = 28


def short(text: str, width: int = LABEL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def progress_plot(data: ReportData, path: Path) -> Path:
    """Every candidate as a point at its experiment id (as in `labmind log` and the dashboard), coloured by
    verdict; running best as a step line; baseline band."""
    fig, ax = plt.subplots(figsize=(10, 5))
    exps = data.experiments
    with_metric = [(e.id, e) for e in exps if e.metric is not None]
    ys = [e.metric for _, e in with_metric]
    b = data.baseline
    if b is not None and b.metric is not None:
        ys.append(b.metric)
        sd = b.metric_sd or 0.0
        ax.axhspan(b.metric - 2 * sd, b.metric + 2 * sd, color="#1f77b4", alpha=0.12,
                   label=f"baseline ± 2 sd (n={b.n_runs})")
        ax.axhline(b.metric, color="#1f77b4", lw=0.8, ls="--")
    for verdict in sorted({verdict_of(e) for _, e in with_metric}):
        pts = [(i, e.metric) for i, e in with_metric if verdict_of(e) == verdict]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=28, color=COLORS.get(verdict, "#333333"),
                   label=f"{verdict} ({len(pts)})", zorder=3, edgecolors="white", linewidths=0.5)
    _plot_missing(ax, exps, ys)
    steps = running_best(data)
    if steps:
        ax.step([s[0] for s in steps], [s[1] for s in steps], where="post", color="black", lw=1.4,
                label="running best", zorder=2)
    for i, e in with_metric:
        if e.verdict == "improved":
            ax.annotate(f"#{e.id} {short(e.idea.title)}", (i, e.metric), textcoords="offset points", xytext=(6, 6),
                        fontsize=7, color="#1a6e1a")
    ax.set_xlabel("experiment id")
    ax.set_ylabel(f"{data.metric} ({'lower' if data.goal == 'minimize' else 'higher'} is better)")
    ax.set_title(f"{data.lab}: {len(exps)} experiment(s)")
    first = data.baseline.id if data.baseline is not None else min((e.id for e in exps), default=1)
    ax.set_xlim(first - 0.5, max([first, *(e.id for e in exps)]) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _plot_missing(ax: plt.Axes, exps: list, ys: list[float]) -> None:
    """Experiments without a metric (crashes, rejections) as crosses along the bottom edge: absent from the
    y-scale, but the reader still sees that a slot was spent on them."""
    missing = [(e.id, e) for e in exps if e.metric is None and e.verdict is not None]
    if not missing or not ys:
        return
    low, high = min(ys), max(ys)
    y = low - 0.05 * ((high - low) or abs(low) or 1.0)
    for verdict in sorted({verdict_of(e) for _, e in missing}):
        xs = [i for i, e in missing if verdict_of(e) == verdict]
        ax.scatter(xs, [y] * len(xs), marker="x", color=COLORS.get(verdict, "#333333"),
                   label=f"{verdict}, no metric ({len(xs)})", zorder=3)


def families_plot(data: ReportData, path: Path, limit: int = 15) -> Path:
    """A stacked bar per idea family: how many experiments it got and how they ended."""
    fams = data.families[:limit]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.35 * max(1, len(fams))))
    names = [short(f.name, 36) for f in fams][::-1]
    verdicts = sorted({v for f in fams for v in f.verdicts}, key=lambda v: list(COLORS).index(v) if v in COLORS
                      else len(COLORS))
    left = [0] * len(fams)
    for verdict in verdicts:
        counts = [f.verdicts.get(verdict, 0) for f in fams][::-1]
        ax.barh(names, counts, left=left, color=COLORS.get(verdict, "#333333"), label=verdict)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.set_xlabel("experiments")
    ax.set_title(f"what was tried, by {'changed knob' if data.family_kind == 'knob' else 'idea family'}")
    if verdicts:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
