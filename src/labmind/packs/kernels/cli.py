"""`labmind pack kernels`: build tasks from upstream checkouts, calibrate them on the GPU, run a campaign.

    labmind pack kernels --upstream SOL_CHECKOUT [--kernelbench KB_CHECKOUT] --out DIR
    labmind pack kernels calibrate DIR        # on the GPU: peaks, bounds.json per task, baseline scores
    labmind pack kernels campaign DIR --budget 30m [--brain knobs]
    labmind pack kernels scores DIR [--json]

Also runnable as `python -m labmind.packs.kernels.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from labmind.cli.common import console, fail, print_json

kernels_app = typer.Typer(help="SOL-ExecBench and KernelBench problems as labmind tasks (docs/packs/kernels.md).",
                          invoke_without_command=True)

DEFAULT_SOL = ["data/benchmark/*/*", "examples/triton/*", "examples/cuda_cpp/*", "examples/pytorch/*"]


@kernels_app.callback()
def create(
    ctx: typer.Context,
    upstream: Path = typer.Option(None, help="A SOL-ExecBench checkout (commit 8d2237d), data downloaded into it."),
    problems: list[str] = typer.Option(None, "--problems",
                                       help="Globs of SOL problem directories, relative to --upstream."),
    kernelbench: Path = typer.Option(None, help="A KernelBench checkout."),
    kb_problems: list[str] = typer.Option(None, "--kb-problems",
                                          help="Globs relative to KernelBench/, e.g. 'level1/19_*'."),
    out: Path = typer.Option(None, help="Directory for the tasks and campaign.json (must not hold them yet)."),
) -> None:
    """Write one task (its own git repository) per problem, and the campaign manifest."""
    if ctx.invoked_subcommand is not None:
        return
    from labmind.packs.kernels import build

    if out is None or (upstream is None and kernelbench is None):
        fail("give --out DIR and at least one of --upstream PATH (SOL-ExecBench) or --kernelbench PATH, e.g. "
             "labmind pack kernels --upstream .upstream/SOL-ExecBench --out kernels-campaign")
    tasks = []
    out.mkdir(parents=True, exist_ok=True)
    if upstream is not None:
        if not (upstream / "src" / "sol_execbench").is_dir():
            fail(f"{upstream} is not a SOL-ExecBench checkout (no src/sol_execbench): clone NVIDIA/SOL-ExecBench "
                 f"and check out {build.SOL_COMMIT}")
        dirs = build.find_sol_problems(upstream, problems or DEFAULT_SOL)
        if not dirs:
            fail(f"no problem directories under {upstream} match {problems or DEFAULT_SOL}: download the data "
                 "with the upstream scripts/download_data.sh, or pass --problems 'examples/triton/*'")
        tasks += [build.build_sol_task(d, upstream, out) for d in dirs]
    if kernelbench is not None:
        files = build.find_kernelbench_problems(kernelbench, kb_problems or ["level1/*", "level2/*"])
        if not files:
            fail(f"no KernelBench problems under {kernelbench}/KernelBench match {kb_problems}")
        tasks += [build.build_kernelbench_task(f, kernelbench, out) for f in files]
    manifest = build.write_manifest(out, tasks)
    console.print(f"{len(tasks)} tasks in {out}; manifest {manifest}")
    console.print(f"next, on the GPU: labmind pack kernels calibrate {out}")


@kernels_app.command()
def calibrate(
    root: Path = typer.Argument(..., help="A directory written by `labmind pack kernels --out`."),
    only: list[str] = typer.Option(None, "--only", help="Task names to calibrate (default: all)."),
    repeats: int = typer.Option(3, min=1, help="Calibrations per task: bounds from their median, the starting "
                                               "score as a mean with its 95% CI."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Measure this GPU's peaks once, write each task's bounds.json, and score the starting solutions."""
    from labmind.packs.kernels.calibrate import calibrate_all

    if not (root / "campaign.json").exists():
        fail(f"{root}/campaign.json is missing: create the tasks first with labmind pack kernels --out {root}")
    results = calibrate_all(root, only=only or None, log=console.print, repeats=repeats)
    if json_out:
        print_json(results)


@kernels_app.command()
def campaign(
    root: Path = typer.Argument(..., help="A calibrated directory from `labmind pack kernels`."),
    budget: str = typer.Option("30m", help="Total wall-clock budget, e.g. 90s, 30m, 2h."),
    brain: str = typer.Option("knobs", help="Brain for every lab (as `labmind run --brain`)."),
    sandbox: str = typer.Option("auto", help="Sandbox for every lab: auto, bwrap or none."),
    min_share: str = typer.Option("60s", help="Problems whose budget share would be smaller are not run."),
    max_experiments: int = typer.Option(None, help="Cap on experiments per lab."),
    only: list[str] = typer.Option(None, "--only", help="Task-name globs to include, e.g. 'kb-*'."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run labs over the tasks under one budget, most time to the problems with the most headroom."""
    from labmind.packs.kernels.campaign import report, run_campaign
    from labmind.task.model import parse_duration

    if not (root / "baseline.json").exists():
        fail(f"{root}/baseline.json is missing: run labmind pack kernels calibrate {root} on the GPU first")
    try:
        budget_s, min_s = parse_duration(budget), parse_duration(min_share)
    except ValueError as exc:
        fail(f"{exc}: use e.g. --budget 30m --min-share 60s")
    rows = run_campaign(root, budget_s, brain=brain, sandbox=sandbox, min_share_s=min_s,
                        max_experiments=max_experiments, only=only or None, log=console.print)
    gpu = json.loads((root / "peaks.json").read_text())["gpu"]
    text, summary = report(rows, gpu)
    (root / "campaign.md").write_text(text)
    (root / "campaign_result.json").write_text(json.dumps(summary, indent=2) + "\n")
    if json_out:
        print_json(summary)
    else:
        console.print(text, markup=False)


@kernels_app.command()
def scores(root: Path = typer.Argument(...), json_out: bool = typer.Option(False, "--json")) -> None:
    """The latest campaign table (or the calibration's baseline scores when no campaign ran yet)."""
    for name in ("campaign_result.json", "baseline.json"):
        if (root / name).exists():
            data = json.loads((root / name).read_text())
            if json_out:
                print_json(data)
            elif name == "campaign_result.json":
                console.print((root / "campaign.md").read_text(), markup=False)
            else:
                from labmind.packs.kernels.calibrate import score_text

                for task, row in data.items():
                    if "error" in row:
                        console.print(f"{task}: not calibrated: {row['error']}", markup=False)
                        continue
                    console.print(f"{task}: SOL score {score_text(row)}, speedup {row['speedup']:.3f}, "
                                  f"passed {row['passed']:.2f}", markup=False)
            return
    fail(f"no scores in {root} yet: run labmind pack kernels calibrate {root}")


if __name__ == "__main__":
    kernels_app()
