"""`labmind pack speedrun`: turn a modded-nanogpt checkout into a labmind task directory (a git repository).

The task holds upstream's train_gpt.py (with the edits of adapt.py) and its two Triton kernel files, all three
editable; labmind's harness and attention fallback, protected; the validation stream and (for the substitute
corpus) the tokenizer, protected; labmind.toml with the record protocol. Training shards live outside the
task, in a data root, because a task's files are checked out again for every run.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from labmind.packs import upstream
from labmind.packs.nanochat.data import SplitRule, builtin_corpus, describe, file_sha256, local_corpus
from labmind.packs.speedrun import adapt
from labmind.packs.speedrun.data import (
    BOS,
    DataError,
    staged_shards,
    substitute_shards,
    usable_val_tokens,
)

OWN_FILES = ("labmind_speedrun.py", "labmind_attn.py")
EDITABLE = ("train_gpt.py", "triton_kernels.py", "dc_triton_kernels.py")
#: The record's target on FineWeb (upstream's README).
FINEWEB_TARGET = 3.28
COMPARABILITY = ("Attention: train_gpt.py uses the hub's FA3 kernel when it loads at run time, and otherwise "
                 "labmind_attn's torch-native attention; timings from the two are NOT comparable. Losses and "
                 "targets on the substitute corpus are NOT comparable with FineWeb's 3.28, and one-GPU times "
                 "(gradient accumulation over 8 micro-steps) are not 8-GPU record times.")


class PackError(Exception):
    """The task cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class PackOptions:
    upstream: Path
    out: Path
    data: str  # "builtin", "local:PATH" or a folder of pre-staged FineWeb shards
    data_dir: Path
    target: float | None = None  # None: 3.28 for FineWeb shards; required for a substitute corpus
    name: str = "speedrun"
    gpus: int = 1
    iterations: tuple[int, int] = adapt.UPSTREAM_ITERATIONS
    val_tokens: int = adapt.UPSTREAM_VAL_TOKENS
    max_train_tokens: int = 200_000_000
    timeout: int = 2400
    untimed_allowance: int = 900
    baseline_runs: int = 3
    confirm_seeds: int = 10
    gate_level: float = 0.01
    fp8: bool = True
    any_commit: bool = False


@dataclass(frozen=True)
class PackResult:
    task_dir: Path
    commit: str
    data_root: Path
    data: dict[str, Any]
    upstream: dict[str, Any]
    target: float
    seconds: float


def check_upstream(path: Path, any_commit: bool) -> dict[str, Any]:
    """Digests (and git HEAD, when it is a checkout) of upstream's files; PackError for another version."""
    return upstream.check_upstream(path, adapt.PIN, any_commit, PackError)


def _own_file(name: str) -> str:
    return resources.files("labmind.packs.speedrun").joinpath("files", name).read_text(encoding="utf-8")


def _data(opts: PackOptions, task: Path, log: Callable[[str], None]) -> tuple[Path, dict[str, Any], float]:
    """(data root, data description, target)."""
    val_path = task / "data" / "val.bin"
    start = time.time()
    if opts.data in ("builtin",) or opts.data.startswith("local:"):
        if opts.target is None:
            raise PackError("a substitute corpus needs --target: its losses are not FineWeb's, so 3.28 means nothing "
                            "there (docs/packs/speedrun.md gives the losses measured with the builtin corpus)")
        split = SplitRule(5, 0, "")
        corpus = builtin_corpus(split) if opts.data == "builtin" else \
            local_corpus(Path(opts.data[len("local:"):]).expanduser(), split)
        root = opts.data_dir / f"{opts.data.split(':')[0]}-{corpus.digest()[:12]}"
        if root.exists():
            shutil.rmtree(root)
        info = substitute_shards(corpus, root, task / "tokenizer", val_path, max_train_tokens=opts.max_train_tokens)
        info["corpus"] = describe(corpus.stats)
        log(f"data: {opts.data}: {info['corpus']}; {info['train_tokens']:,} training tokens in "
            f"{len(info['train_shards'])} shard(s), vocab {info['vocab_size']} ({time.time() - start:.0f}s) -> {root}")
        return root, info, opts.target
    info = staged_shards(Path(opts.data).expanduser().resolve(), val_path)
    log(f"data: FineWeb shards at {info['root']}: {len(info['train_shards'])} training shard(s)")
    return Path(info["root"]), info, FINEWEB_TARGET if opts.target is None else opts.target


def _toml(opts: PackOptions, target: float) -> str:
    return f'''# labmind task: the NanoGPT speedrun ({adapt.UPSTREAM_REPO}@{adapt.UPSTREAM_COMMIT[:7]}), written by
# `labmind pack speedrun`. Metric: training seconds to the final validation, counted by labmind's harness.
[task]
name = "{opts.name}"
brief = "program.md"
editable = {json.dumps(list(EDITABLE))}
protected = ["labmind_speedrun.py", "labmind_attn.py", "pack.json", "data/*", "tokenizer/*"]

[run]
command = "torchrun --standalone --nproc_per_node={opts.gpus} train_gpt.py"
timeout = {opts.timeout}
gpus = {opts.gpus}
artifacts = ["labmind_result.json"]
env = {json.dumps(["LABMIND_ATTENTION", "NCCL_NVLS_ENABLE=0", "TORCH_SYMM_MEM_DISABLE_MULTICAST=1"]
                 + ([] if opts.fp8 else ["DISABLE_FP8=1"]))}
# Compilation takes minutes: what the baseline's runs compile is copied into every other run
compile_cache = ["TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"]

[metric]
name = "train_time_s"
goal = "minimize"
evaluate = "python labmind_speedrun.py --score labmind_result.json"
secondary = ["val_loss", "untimed_s", "steps", "reached_target"]
# compilation and warm-up stay untimed, within this bound (seconds from process start to the clock's start)
constraints = ["untimed_s <= {opts.untimed_allowance}"]
# the record rule: a run that misses the target is not kept; a claim needs the mean loss below it, one-sided
# t-test at gate_level over the candidate's fresh-seed runs
gate = "val_loss < {target:g}"
gate_level = {opts.gate_level:g}
scale = "log"

[noise]
baseline_runs = {opts.baseline_runs}
confirm_seeds = {opts.confirm_seeds}
seed_env = "SEED"
'''


def _brief(opts: PackOptions, target: float) -> str:
    return _own_file("program.md").replace("$target", f"{target:g}").replace(
        "$commit", adapt.UPSTREAM_COMMIT[:7]).replace("$gpus", str(opts.gpus))


def build_task(opts: PackOptions, log: Callable[[str], None] = lambda _: None) -> PackResult:
    """Make the task directory `opts.out`; PackError says what went wrong and how to fix it."""
    start = time.time()
    if opts.gpus not in (1, 2, 4, 8):
        raise PackError(f"--gpus must divide 8 (upstream's gradient accumulation is 8 // world size), got {opts.gpus}")
    if min(opts.iterations) < 0 or opts.iterations[0] < 3:
        raise PackError("--iterations needs at least 3 scheduled steps (three training stages)")
    upstream = check_upstream(opts.upstream, opts.any_commit)
    text = (Path(upstream["path"]) / "train_gpt.py").read_text(encoding="utf-8")
    try:  # every anchor is checked before minutes go into the data
        adapt.apply_edits(text, adapt.train_edits(adapt.EditPlan("", 1, opts.iterations)), "train_gpt.py")
        batch = adapt.val_batch_size(text)
    except adapt.AdaptError as exc:
        raise PackError(str(exc)) from exc
    out = opts.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackError(f"--out {out} exists and is not empty: give a new directory")
    task = out.resolve()
    created = not task.exists()
    try:
        (task / "data").mkdir(parents=True, exist_ok=True)
        root, info, target = _data(opts, task, log)
        src = Path(upstream["path"])
        val_tokens = usable_val_tokens(info["val_tokens_available"], batch, opts.val_tokens)
        if val_tokens < opts.val_tokens:
            log(f"validation: the stream holds {info['val_tokens_available']:,} tokens; {val_tokens:,} are scored "
                f"(upstream scores {opts.val_tokens:,})")
        plan = adapt.EditPlan(str(root), val_tokens, opts.iterations)
        edits = adapt.train_edits(plan)
        (task / "train_gpt.py").write_text(adapt.apply_edits(text, edits, "train_gpt.py"), encoding="utf-8")
        for name in EDITABLE[1:]:
            shutil.copyfile(src / name, task / name)
        for name in OWN_FILES:
            (task / name).write_text(_own_file(name), encoding="utf-8")
        (task / "program.md").write_text(_brief(opts, target), encoding="utf-8")
        (task / "labmind.toml").write_text(_toml(opts, target), encoding="utf-8")
        (task / ".gitignore").write_text("labmind_result.json\nlogs/\n__pycache__/\n*.pyc\n", encoding="utf-8")
        digests = {p.relative_to(task).as_posix(): file_sha256(p)
                   for p in sorted((task / "data").glob("*")) + sorted((task / "tokenizer").glob("*"))}
        pack = {
            "pack": "speedrun",
            "upstream": {k: v for k, v in upstream.items() if k != "path"},
            "edits": {"train_gpt.py": [{"name": e.name, "why": e.why} for e in edits]},
            "harness": {"val_tokens": val_tokens, "val_file": "data/val.bin", "target": target,
                        "vocab_size": 50257, "bos": BOS},
            "data": {"source": opts.data, "root": str(root), **{k: v for k, v in info.items() if k != "root"},
                     "sha256": digests},
            "options": {"gpus": opts.gpus, "iterations": list(opts.iterations), "timeout": opts.timeout,
                        "untimed_allowance": opts.untimed_allowance, "confirm_seeds": opts.confirm_seeds,
                        "gate_level": opts.gate_level, "max_train_tokens": opts.max_train_tokens,
                        "fp8": opts.fp8},
            "comparability": COMPARABILITY,
        }
        (task / "pack.json").write_text(json.dumps(pack, indent=2) + "\n", encoding="utf-8")
        commit = _commit(task)
    except (adapt.AdaptError, DataError) as exc:
        if created:
            shutil.rmtree(task, ignore_errors=True)
        raise PackError(str(exc)) from exc
    except BaseException:
        if created:
            shutil.rmtree(task, ignore_errors=True)
        raise
    _validate(task)
    return PackResult(task, commit, root, info, upstream, target, time.time() - start)


def _commit(task: Path) -> str:
    from labmind.workspace import git as gitops

    try:
        gitops.init_repo(task)
        gitops.git(task, "commit", "-q", "--amend", "--no-verify", "-m",
                   f"speedrun task from {adapt.UPSTREAM_REPO}@{adapt.UPSTREAM_COMMIT[:7]} (labmind pack speedrun)")
        return gitops.git(task, "rev-parse", "HEAD").strip()
    except gitops.GitError as exc:
        raise PackError(f"cannot make {task} a git repository: {exc}") from exc


def _validate(task: Path) -> None:
    from labmind.task import TaskError, load_task

    try:
        load_task(task)
    except TaskError as exc:  # a bug in the pack, not the user's doing
        raise PackError(f"the written labmind.toml does not load: {exc}") from exc
