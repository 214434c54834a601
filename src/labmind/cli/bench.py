"""`labmind bench`: scheduler, judge, screening, dashboard, transfer, watchdog."""

from __future__ import annotations

import typer
from rich.table import Table

from labmind.cli.common import console, fail, print_json
from labmind.lab import LabError

bench_app = typer.Typer(help="Benchmarks that ship with labmind.", no_args_is_help=True)


@bench_app.command("scheduler")
def scheduler(
    slots: str = typer.Option("4", help="Slots (S); with --executor ray a list such as 4,8,16."),
    run_s: float = typer.Option(2.0, "--run", min=0.01, help="Seconds per run (R): 60 s scaled down."),
    brain_s: float = typer.Option(None, "--brain", min=0.0, help="Seconds per proposal (L); default R/2."),
    experiments: int = typer.Option(None, min=1, help="Experiments per mode (default 40; with --executor ray, "
                                                      "4 per slot)."),
    sandbox: str = typer.Option("none", help="Sandbox for the simulated runs (none measures scheduling only)."),
    executor: str = typer.Option("local", help="local: labmind vs a sequential loop; ray: local vs a Ray cluster "
                                               "at each slot count (docs/ray.md)."),
    ray_address: str = typer.Option(None, help="--executor ray: the cluster (default: auto)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Slot duty cycle and experiments/hour: labmind's scheduler vs a sequential propose-then-run loop, or
    (--executor ray) the local executor vs a Ray cluster at several slot counts."""
    from labmind.bench.scheduler import run_bench, run_scale_bench

    try:
        counts = [int(x) for x in slots.split(",") if x.strip()]
    except ValueError:
        fail(f"--slots expects a number or a list such as 4,8,16, got {slots!r}")
    if not counts or min(counts) < 1:
        fail("--slots must be at least 1")
    if executor not in ("local", "ray"):
        fail(f"--executor must be local or ray, got {executor!r}")
    brain = run_s / 2 if brain_s is None else brain_s
    try:
        if executor == "ray":
            results = run_scale_bench(slot_counts=counts, run_s=run_s, brain_s=brain,
                                      experiments_per_slot=experiments or 4, sandbox=sandbox, ray_address=ray_address)
        else:
            if len(counts) > 1:
                fail("a list of slot counts needs --executor ray; give one number")
            results = run_bench(slots=counts[0], run_s=run_s, brain_s=brain, experiments=experiments or 40,
                                sandbox=sandbox)
    except LabError as exc:
        fail(str(exc))
    if json_out:
        print_json([r.__dict__ for r in results])
        return
    table = Table("mode", "executor", "S", "R (s)", "L (s)", "experiments", "window (s)", "slot duty cycle",
                  "experiments/hour", "overhead/run (s)", "lab CPU/run (s)", header_style="bold")
    for r in results:
        table.add_row(r.mode, r.executor, str(r.slots), f"{r.run_s:g}", f"{r.brain_s:g}", str(r.experiments),
                      f"{r.window_s:.1f}", f"{r.duty_cycle:.3f}", f"{r.experiments_per_hour:.0f}",
                      f"{r.overhead_s:.3f}", f"{r.cpu_per_run_s:.3f}")
    console.print(table)


def _regimes(text: str, reps: int, experiments: int) -> list[str]:
    """The regimes named in `--regimes` (of `labmind.bench.judge`), after checking them and the bench's sizes."""
    from labmind.bench.judge import REGIMES

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in REGIMES]
    if unknown:
        fail(f"unknown regime(s) {', '.join(unknown)}; choose from {', '.join(REGIMES)}")
    if reps < 2 or experiments < 5:
        fail("--reps must be at least 2 (for a CI) and --experiments at least 5")
    return names


@bench_app.command("judge")
def judge(
    regimes: str = typer.Option(",".join(["small", "medium", "large", "speed", "heavy", "correlated"]), "--regimes",
                                help="Comma-separated regimes (small, medium, large, speed, heavy, correlated)."),
    reps: int = typer.Option(12, help="Repetitions per regime (each a fresh lab and idea stream)."),
    experiments: int = typer.Option(60, help="Experiments per labmind lab; the other rules get as many runs."),
    first_rep: int = typer.Option(0, "--first-rep", help="Repetition to start from (another set of streams)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """True progress per run: labmind's judge vs a single-run ratchet and labmind's previous rule, on simulated
    tasks whose true effects are known (the real lab loop runs labmind's side)."""
    from labmind.bench.judge import REGIMES, run_regime

    names = _regimes(regimes, reps, experiments)
    results = []
    for name in names:
        result = run_regime(REGIMES[name], reps=reps, experiments=experiments, first_rep=first_rep)
        results.append(result)
        if not json_out:
            console.print(f"[bold]{name}[/]: {result.about}")
    if json_out:
        print_json([{"regime": r.regime, "about": r.about, **{rule: r.summary(rule) for rule in r.outcomes}}
                    for r in results])
        return
    table = Table("regime", "rule", "true gain of its result (± 95% CI)", "reached", "n", "runs", "claims",
                  "false claims", "false share", "runs/verdict", header_style="bold")
    for r in results:
        for rule in r.outcomes:
            s = r.summary(rule)
            table.add_row(r.regime, rule, f"{s['gain']:.3f} ± {s['ci']:.3f} (95% CI, n={s['n']})",
                          f"{s['reached']:.3f}", str(s["n"]), f"{s['runs']:.1f}",
                          f"{s['claims']:.2f}", f"{s['false_claims']:.2f}", f"{100 * s['false_share']:.1f}%",
                          f"{s['runs_per_verdict']:.2f}")
    console.print(table)
    console.print("true gain: in noise sd (linear regimes) or in log units of speed-up (speed, heavy: e^gain ×); "
                  "reached: labmind's best line head, provisional steps included; claims and false claims per lab")


@bench_app.command("screening")
def screening(
    regimes: str = typer.Option(",".join(["small", "medium", "large", "speed", "heavy", "correlated"]), "--regimes",
                                help="Comma-separated regimes of `labmind bench judge`."),
    reps: int = typer.Option(300, help="Repetitions per regime (idea streams; no lab runs, so many are cheap)."),
    experiments: int = typer.Option(60, help="Ideas screened per lab."),
    claim_runs: int = typer.Option(5, "--claim-runs", min=0,
                                   help="Runs a verified claim costs beyond the ratchet's (`bench judge` measured "
                                        "about 5 at 60 experiments); the reference ratchet gets them as screens."),
    first_rep: int = typer.Option(0, "--first-rep", help="Repetition to start from (another set of streams)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Could any screening rule beat the ratchet at equal runs once a claim is paid for? Replays `bench judge`'s
    idea streams (no lab) under margin rules (best margin picked with hindsight), two-stage screens and the
    perfect ceiling, against the ratchet given the claim's runs as well."""
    from labmind.bench.screening import REGIMES, run_screening

    names = _regimes(regimes, reps, experiments)
    results = [run_screening(REGIMES[n], reps=reps, experiments=experiments, claim_runs=claim_runs,
                             first_rep=first_rep) for n in names]
    if json_out:
        print_json([{"regime": r.regime, "runs": r.runs, "screen_runs": r.screen_runs,
                     "oracle_margin": r.oracle_margin(), "rules": {rule: r.summary(rule) for rule in r.gains}}
                    for r in results])
        return
    table = Table("regime", "rule", "runs", "true gain (± 95% CI)", "vs ratchet", "minus ratchet (paired 95% CI)",
                  header_style="bold")
    for r in results:
        best = r.oracle_margin()
        for rule in r.gains:
            s = r.summary(rule)
            label = f"{rule} (oracle)" if rule == f"margin {best:+.1f}" else rule
            table.add_row(r.regime, label, str(r.runs if rule == "ratchet" else r.screen_runs),
                          f"{s['gain']:.3f} ± {s['ci']:.3f} (95% CI, n={s['n']})", f"{s['vs_ratchet']:.3f}",
                          f"{s['minus_ratchet']:+.3f} ± {s['minus_ratchet_ci']:.3f}")
    console.print(table)
    console.print("true gain: in noise sd (linear regimes) or log units of speed-up (speed, heavy); every rule "
                  "but the ratchet gets the runs left once a claim is paid for; (oracle): the margin picked "
                  "with hindsight")


@bench_app.command("dashboard")
def dashboard(
    experiments: int = typer.Option(100_000, min=10, help="Candidates in the synthetic lab."),
    repeat: int = typer.Option(5, min=1, help="Timed requests per URL (after one warm-up); the median is shown."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """How fast `labmind ui` answers on a big lab: a synthetic store (real schema) served on a loopback port,
    every page and API timed over HTTP."""
    import tempfile
    from pathlib import Path

    from labmind.bench.dashboard import run_bench

    with tempfile.TemporaryDirectory(prefix="labmind-dashboard-bench-") as tmp:
        built, figures = run_bench(Path(tmp), experiments, repeat)
    if json_out:
        print_json({"experiments": experiments, "build_s": built, "figures": [f.__dict__ for f in figures]})
        return
    console.print(f"a {experiments:,}-experiment lab, built in {built:.1f}s; median of {repeat} requests each")
    table = Table("request", "what", "median (ms)", "max (ms)", "bytes", header_style="bold")
    for f in figures:
        table.add_row(f.url, f.about, f"{f.median_ms:.1f}", f"{f.max_ms:.1f}", f"{f.bytes:,}")
    console.print(table)


@bench_app.command("transfer")
def transfer(
    tasks: int = typer.Option(4, min=2, help="Tasks in the family's campaign (task 1 starts with an empty library)."),
    experiments: int = typer.Option(12, min=2, help="Experiments per task (the same budget in both arms)."),
    reps: int = typer.Option(6, help="Repetitions (each a fresh family draw and brain seed)."),
    first_rep: int = typer.Option(0, "--first-rep", help="Repetition to start from (another set of families)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Library on vs off: a campaign over a family of CPU tasks with known true values, run twice with the same
    budget and seeds (knobs brain, real lab loop); true gain, experiments to a real improvement, insight hits."""
    from labmind.bench.transfer import run_bench

    if reps < 2:
        fail("--reps must be at least 2 (for a CI)")

    def progress(rep: int, on: list, off: list) -> None:
        if not json_out:
            console.print(f"rep {rep}: true gain per task, on "
                          + " ".join(f"{t.gain:.3f}" for t in on) + " | off " + " ".join(f"{t.gain:.3f}" for t in off))

    result = run_bench(tasks=tasks, experiments=experiments, reps=reps, first_rep=first_rep, progress=progress)
    summary = result.summary()
    if json_out:
        print_json(summary)
        return

    def iv(d: dict) -> str:
        half = d["half"]
        return f"{d['mean']:.3g}" + (f" ± {half:.2g}" if half == half else "") + f" (95% CI, n={d['n']})"

    table = Table("task", "measure", "library on", "library off", "on − off (paired)", header_style="bold")
    names = {"gain": "true gain (log)", "first_real": "experiments to a real improvement",
             "reached": "share reaching one"}
    for row in summary["per_task"]:
        for what, label in names.items():
            table.add_row(str(row["task"]), label, iv(row[what]["on"]), iv(row[what]["off"]), iv(row[what]["diff"]))
    later = summary["later_tasks"]
    for what, label in names.items():
        table.add_row(f"2..{tasks}", label, iv(later[what]["on"]), iv(later[what]["off"]), iv(later[what]["diff"]))
    console.print(table)
    rate = later["hit_rate"]
    console.print(f"library on: {later['applied']} warm starts applied an insight, {later['applied_hits']} ended "
                  f"improved" + (f" (hit rate {rate:.0%})" if rate is not None else "")
                  + f"; {later['insights_recorded']:.1f} insights recorded per campaign. Experiments to a real "
                  f"improvement: the first candidate 10% below the baseline in true loss ({experiments + 1} = never).")


@bench_app.command("watchdog")
def watchdog_bench(
    gib: float = typer.Option(4.0, min=0.05, help="GiB the target process holds resident."),
    seconds: float = typer.Option(10.0, min=0.5, help="Seconds of timed cycles per variant."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """What the fallback limit enforcement (no cgroup) costs the run it watches: a process holding GIB GiB
    maps, touches and unmaps 8 MiB again and again, unchecked, checked by labmind's watchdog, and checked by
    reading its PSS every time (the watchdog's old way); its cycle times and each check's cost."""
    from labmind.bench.watchdog import INTERVAL_S, run_bench

    try:
        figures = run_bench(gib, seconds)
    except RuntimeError as exc:
        fail(str(exc))
    if json_out:
        print_json([f.__dict__ for f in figures])
        return
    console.print(f"a process holding {figures[0].held_gib:.2f} GiB, {seconds:g} s of map/touch/unmap cycles "
                  f"(8 MiB) per variant; checks every {INTERVAL_S:g} s")
    table = Table("checked by", "cycles", "p50 (ms)", "p99 (ms)", "max (ms)", "checks", "one check (ms, mean)",
                  header_style="bold")
    for f in figures:
        table.add_row(f.variant, f"{f.cycles:,}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", f"{f.max_ms:.1f}",
                      str(f.checks), "—" if f.checks == 0 else f"{f.check_ms:.2f}")
    console.print(table)
