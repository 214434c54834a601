"""`labmind pack speedrun --upstream PATH [--data builtin|local:PATH|SHARDS] [--out DIR] [--target LOSS]`."""

from __future__ import annotations

from pathlib import Path

import typer

from labmind.cli.common import console, fail, print_json

DEFAULT_DATA_DIR = Path("~/.cache/labmind/speedrun")


def speedrun(
    upstream: Path = typer.Option(..., help="A KellerJordan/modded-nanogpt checkout at commit f411b3d."),
    data: str = typer.Option("builtin", help="builtin (this Python's site-packages sources, offline), local:PATH "
                                             "(text or parquet files), or a folder of FineWeb shards in upstream's "
                                             "layout (PATH/data/fineweb10B/fineweb_{train,val}_*.bin)."),
    out: Path = typer.Option(Path("speedrun"), help="The task directory to create (new or empty)."),
    target: float = typer.Option(None, help="The target mean validation loss. Default 3.28 for FineWeb shards; "
                                            "required for a substitute corpus (its losses are not FineWeb's)."),
    gpus: int = typer.Option(1, help="GPUs per run (1, 2, 4 or 8; fewer accumulate gradients as upstream does)."),
    iterations: int = typer.Option(1270, help="Scheduled training steps (upstream 1270): fewer make the "
                                              "fixed-step proxy tier."),
    extension: int = typer.Option(15, help="Steps after the schedule at the final settings (upstream 15)."),
    val_tokens: int = typer.Option(10485760, help="Validation tokens scored (upstream's 10485760; capped at what "
                                                  "the stream holds, in whole validation batches)."),
    max_train_tokens: int = typer.Option(200_000_000, help="Substitute corpus: at most this many training tokens."),
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, help="Where the substitute's training shards go."),
    timeout: int = typer.Option(2400, help="Seconds before labmind kills a run (compilation included)."),
    untimed_allowance: int = typer.Option(900, help="Most seconds from process start to the clock's start."),
    confirm_seeds: int = typer.Option(10, help="Fresh-seed runs a claim may use (record practice 10-18)."),
    baseline_runs: int = typer.Option(3, help="Baseline runs that measure the noise."),
    gate_level: float = typer.Option(0.01, help="The loss gate's one-sided t-test level (record rule 0.01)."),
    fp8: bool = typer.Option(True, "--fp8/--no-fp8", help="--no-fp8 sets upstream's DISABLE_FP8=1 for runs (bf16 "
                                                          "MLP and head): on torch 2.11 + CUDA 13 the FP8 MLP matmul "
                                                          "failed on an H100 (docs/packs/speedrun.md)."),
    name: str = typer.Option("speedrun", help="The task's name (and branch labmind/<name>)."),
    any_commit: bool = typer.Option(False, "--any-commit", help="Try the edits on an upstream other than f411b3d "
                                                               "(they still must match exactly)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Make a labmind task from modded-nanogpt: time to a target loss, the record's protocol."""
    from labmind.execute.sandbox import hidden_from_runs
    from labmind.packs.speedrun.build import COMPARABILITY, PackError, PackOptions, build_task

    try:
        opts = PackOptions(
            upstream=upstream.expanduser().resolve(), out=out.expanduser(), data=data,
            data_dir=data_dir.expanduser().resolve(), target=target, name=name, gpus=gpus,
            iterations=(iterations, extension), val_tokens=val_tokens, max_train_tokens=max_train_tokens,
            timeout=timeout, untimed_allowance=untimed_allowance, baseline_runs=baseline_runs,
            confirm_seeds=confirm_seeds, gate_level=gate_level, fp8=fp8, any_commit=any_commit)
        result = build_task(opts, log=(lambda _: None) if json_out else (lambda m: console.print(m, highlight=False)))
    except PackError as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"the speedrun pack needs {exc.name} in this Python: pip install 'labmind[nanochat]'")
    if json_out:
        print_json({"task_dir": str(result.task_dir), "commit": result.commit, "data_root": str(result.data_root),
                    "upstream": result.upstream, "target": result.target, "seconds": round(result.seconds, 1),
                    "comparability": COMPARABILITY})
        return
    pinned = "" if result.upstream["matches_pinned"] else " (NOT the pinned commit: --any-commit)"
    console.print(f"task: {result.task_dir} (commit {result.commit[:10]}), upstream {result.upstream['repo']}@"
                  f"{str(result.upstream['commit'])[:7]}{pinned}, {result.seconds:.0f}s", highlight=False)
    console.print(f"metric: train_time_s with val_loss < {result.target:g} (gate: one-sided t-test at "
                  f"{gate_level:g} over up to {confirm_seeds} fresh-seed runs)", highlight=False)
    console.print(f"[yellow]note:[/] {COMPARABILITY}", highlight=False)
    hidden = hidden_from_runs(result.data_root)
    if hidden:
        console.print(f"[yellow]warning:[/] the training shards are outside the task and {hidden}: runs under "
                      "the bubblewrap sandbox will not find them: pack again with --data-dir where runs see it, "
                      "e.g. the default ~/.cache/labmind/speedrun", highlight=False)
    console.print(f"next: labmind check {result.task_dir}   then   labmind run {result.task_dir} --gpus 0",
                  highlight=False)
