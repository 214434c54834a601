"""`labmind pack nanochat --upstream PATH [--data builtin|local:PATH|climbmix] [--out DIR] [--time-budget S]`."""

from __future__ import annotations

from pathlib import Path

import typer

from labmind.cli.common import console, fail, print_json

DEFAULT_DATA_DIR = Path("~/.cache/labmind/nanochat")


def nanochat(
    upstream: Path = typer.Option(..., help="A karpathy/autoresearch checkout at commit 228791f."),
    data: str = typer.Option("builtin", help="builtin (this Python's site-packages sources, offline), "
                                             "local:PATH (text or parquet files) or climbmix (upstream's, online)."),
    out: Path = typer.Option(Path("nanochat"), help="The task directory to create (new or empty)."),
    time_budget: int = typer.Option(300, help="Training seconds per run (prepare.py's TIME_BUDGET)."),
    startup_allowance: int = typer.Option(120, help="Seconds on top of the budget before labmind kills a run "
                                                    "(start-up, compilation, warm-up steps, saving)."),
    device_batch_size: int = typer.Option(64, help="train.py's DEVICE_BATCH_SIZE (upstream: 128, which needs "
                                                   "more than 80 GB with the torch-native attention)."),
    eval_tokens: int = typer.Option(40 * 524288, help="At most this many validation tokens are scored "
                                                      "(upstream's EVAL_TOKENS)."),
    val_percent: int = typer.Option(5, help="builtin/local: share of files (by path hash) for validation."),
    holdout_percent: int = typer.Option(5, help="builtin/local: share of files held out (0: no held-out check)."),
    split_salt: str = typer.Option("", help="builtin/local: a secret prefix for the split hash, so the split "
                                            "cannot be predicted from the file names."),
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, help="Where the training shards go (outside the task)."),
    climbmix_shards: int = typer.Option(10, help="climbmix: training shards to download."),
    name: str = typer.Option("nanochat", help="The task's name (and branch labmind/<name>)."),
    baseline_runs: int = typer.Option(3, help="Baseline runs that measure the noise."),
    confirm_seeds: int = typer.Option(3, help="Fresh-seed runs that confirm a candidate."),
    holdout_check: bool = typer.Option(True, help="Score baseline and confirmation runs on the held-out split "
                                                  "too (labmind's holdout_gap check)."),
    eager: bool = typer.Option(False, "--eager", help="Run train.py without torch.compile (TORCH_COMPILE_DISABLE=1):"
                                                     " for budgets of seconds, where compiling would dominate."),
    any_commit: bool = typer.Option(False, "--any-commit", help="Try the edits on an upstream other than 228791f "
                                                               "(they still must match exactly)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Make a labmind task from karpathy/autoresearch: train.py editable, val_bpb from labmind's evaluator."""
    from labmind.packs.nanochat.build import COMPARABILITY, PackError, PackOptions, build_task
    from labmind.packs.nanochat.data import DataSourceError, DataSpec, SplitRule

    if val_percent < 1 or holdout_percent < 0 or val_percent + holdout_percent >= 100:
        fail("--val-percent must be positive, --holdout-percent 0 or more, and together below 100")
    try:
        spec = DataSpec.parse(data)
        opts = PackOptions(
            upstream=upstream.expanduser().resolve(), out=out.expanduser(), data=spec,
            data_dir=data_dir.expanduser().resolve(), name=name, time_budget=time_budget,
            startup_allowance=startup_allowance, device_batch_size=device_batch_size, eval_tokens=eval_tokens,
            split=SplitRule(val_percent, holdout_percent, split_salt), climbmix_shards=climbmix_shards,
            baseline_runs=baseline_runs, confirm_seeds=confirm_seeds, holdout_check=holdout_check, eager=eager,
            any_commit=any_commit)
        result = build_task(opts, log=(lambda _: None) if json_out else (lambda m: console.print(m, highlight=False)))
    except (PackError, DataSourceError) as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"the nanochat pack needs {exc.name} in this Python: pip install 'labmind[nanochat]'")
    if json_out:
        print_json({"task_dir": str(result.task_dir), "commit": result.commit, "data_root": str(result.data_root),
                    "upstream": result.upstream, "manifest": result.manifest, "seconds": round(result.seconds, 1),
                    "comparability": COMPARABILITY})
        return
    val = result.manifest["splits"]["val"]
    pinned = "" if result.upstream["matches_pinned"] else " (NOT the pinned commit: --any-commit)"
    console.print(f"task: {result.task_dir} (commit {result.commit[:10]}), upstream {result.upstream['repo']}@"
                  f"{str(result.upstream['commit'])[:7]}{pinned}, {result.seconds:.0f}s", highlight=False)
    console.print(f"metric: val_bpb over {val['tokens'] - 1:,} validation targets, scored by labmind_eval.py",
                  highlight=False)
    console.print(f"[yellow]note:[/] {COMPARABILITY}", highlight=False)
    console.print(f"next: labmind check {result.task_dir}   then   labmind run {result.task_dir} --gpus 0",
                  highlight=False)
