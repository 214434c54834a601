"""`labmind pack nanochat`: turn an autoresearch checkout into a labmind task directory (a git repository).

The task holds upstream's train.py and prepare.py copied from the user's checkout with the edits of adapt.py,
labmind's own files (attention fallback, model export, trusted evaluator, brief), the tokenizer, the hidden
evaluation tokens and labmind.toml. The training shards live outside, in a data root (default
~/.cache/labmind/nanochat/...), because a task's files are checked out again for every run.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from labmind.packs import upstream
from labmind.packs.nanochat import adapt
from labmind.packs.nanochat.data import (
    DataRoot,
    DataSpec,
    SplitRule,
    build_climbmix_root,
    build_corpus_root,
    builtin_corpus,
    describe,
    file_sha256,
    local_corpus,
    write_eval_documents,
)
from labmind.packs.nanochat.tokenize import RESULT_MARKER

#: labmind's files copied into every task (from labmind/packs/nanochat/files/).
OWN_FILES = ("labmind_attn.py", "labmind_export.py", "labmind_eval.py")
#: Upstream's evaluation size: at most this many validation targets are scored.
UPSTREAM_EVAL_TOKENS = 40 * 524288
DATA_FORMAT = "labmind-nanochat-data/1"
#: TOTAL_BATCH_SIZE values the knobs brain may try (each must be a multiple of DEVICE_BATCH_SIZE x seq_len).
TOTAL_BATCH_CHOICES = (2**17, 2**18, 2**19)
#: Measured on one H100 (docs/benchmarks.md): ~15 s imports, ~45 s compilation, ~5 s of untimed warm-up steps
#: and a few seconds to export; the rest is margin.
DEFAULT_STARTUP_ALLOWANCE = 120
COMPARABILITY = ("Attention: train.py uses the hub's FA3 kernel when it loads at run time, and otherwise "
                 "torch-native attention (SDPA + FlexAttention); numbers from the two are NOT comparable, and "
                 "numbers from the builtin or local data are not comparable with upstream's ClimbMix numbers.")


class PackError(Exception):
    """The task cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class PackOptions:
    upstream: Path
    out: Path
    data: DataSpec
    data_dir: Path
    name: str = "nanochat"
    time_budget: int = 300
    startup_allowance: int = DEFAULT_STARTUP_ALLOWANCE
    device_batch_size: int = adapt.DEFAULT_DEVICE_BATCH_SIZE
    eval_tokens: int = UPSTREAM_EVAL_TOKENS
    split: SplitRule = field(default_factory=SplitRule)
    max_doc_chars: int = 6000
    train_shards: int = 8
    climbmix_shards: int = 10
    climbmix_url: str | None = None
    baseline_runs: int = 3
    confirm_seeds: int = 3
    holdout_check: bool = True
    eager: bool = False
    any_commit: bool = False


@dataclass(frozen=True)
class PackResult:
    task_dir: Path
    commit: str
    data_root: Path
    manifest: dict[str, Any]
    upstream: dict[str, Any]
    seconds: float


def check_upstream(path: Path, any_commit: bool) -> dict[str, Any]:
    """Digests (and git HEAD, when it is a checkout) of upstream's files; PackError for another version."""
    return upstream.check_upstream(path, adapt.PIN, any_commit, PackError)


def _own_file(name: str) -> str:
    return resources.files("labmind.packs.nanochat").joinpath("files", name).read_text(encoding="utf-8")


def _check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackError(f"--out {out} exists and is not empty: give a new directory")


def _data_root(opts: PackOptions, eval_dir: Path, log: Callable[[str], None]) -> tuple[DataRoot, dict[str, Path]]:
    if opts.data.kind == "climbmix":
        log(f"data: downloading {opts.climbmix_shards} ClimbMix training shards and the validation shards")
        kwargs = {"base_url": opts.climbmix_url} if opts.climbmix_url else {}
        return build_climbmix_root(opts.data_dir, opts.climbmix_shards, eval_dir, **kwargs)
    start = time.time()
    if opts.data.kind == "builtin":
        corpus = builtin_corpus(opts.split, opts.max_doc_chars)
    else:
        assert opts.data.path is not None
        corpus = local_corpus(opts.data.path, opts.split, opts.max_doc_chars)
    shards = opts.train_shards
    if opts.data.kind == "local":  # about 100 M characters a shard, and the two upstream's tokenizer step needs
        shards = max(2, math.ceil(corpus.stats["train_characters"] / 100e6))
    root = build_corpus_root(opts.data, corpus, opts.data_dir, shards)
    log(f"data: {opts.data.label}: {describe(corpus.stats)} ({time.time() - start:.1f}s) -> {root.root}")
    return root, write_eval_documents(corpus, eval_dir)


def _tokenize(task: Path, eval_files: dict[str, Path], max_tokens: int, log: Callable[[str], None]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "labmind.packs.nanochat.tokenize", str(task), "--max-tokens", str(max_tokens)]
    argv += [f"--split={split}={path}" for split, path in sorted(eval_files.items())]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    result = next((json.loads(line[len(RESULT_MARKER):]) for line in reversed(proc.stdout.splitlines())
                   if line.startswith(RESULT_MARKER)), None)
    if proc.returncode != 0 or result is None:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise PackError(f"the tokenizer step failed (exit {proc.returncode}); it needs torch, pyarrow, rustbpe, "
                        f"tiktoken and requests in this Python ({sys.executable}):\n{tail}")
    trained = "trained" if result["tokenizer_trained"] else "reused"
    log(f"tokenizer: {trained}, vocab {result['vocab_size']} ({result['tokenizer_seconds']}s); " + ", ".join(
        f"{s} {i['tokens']:,} tokens" for s, i in sorted(result["splits"].items())))
    return result


def _render(template: str, **values: Any) -> str:
    return string.Template(_own_file(template)).substitute({k: str(v) for k, v in values.items()})


def _write_task_files(opts: PackOptions, task: Path, root: DataRoot, upstream: dict[str, Any],
                      has_holdout: bool) -> dict[str, Any]:
    """Adapted upstream files, labmind's files, the brief, labmind.toml, .gitignore and pack.json."""
    src = Path(upstream["path"])
    train_edits = adapt.train_edits(opts.device_batch_size)
    prepare_edits = adapt.prepare_edits(root.root, opts.time_budget)
    try:
        train = adapt.apply_edits((src / "train.py").read_text(encoding="utf-8"), train_edits, "train.py")
        prepare = adapt.apply_edits((src / "prepare.py").read_text(encoding="utf-8"), prepare_edits, "prepare.py")
    except adapt.AdaptError as exc:
        raise PackError(str(exc)) from exc
    (task / "train.py").write_text(train, encoding="utf-8")
    (task / "prepare.py").write_text(prepare, encoding="utf-8")
    for name in OWN_FILES:
        (task / name).write_text(_own_file(name), encoding="utf-8")
    seq_len = _constant(prepare, "MAX_SEQ_LEN")
    per_step = opts.device_batch_size * seq_len
    choices = [c for c in TOTAL_BATCH_CHOICES if c % per_step == 0]
    if not choices:
        raise PackError(f"--device-batch-size {opts.device_batch_size} x seq_len {seq_len} divides none of the "
                        f"batch sizes {TOTAL_BATCH_CHOICES}: use a power of two up to {2**19 // seq_len}")
    splits = ["val", "holdout"] if has_holdout else ["val"]
    common = {"upstream_repo": adapt.UPSTREAM_REPO, "upstream_commit": str(upstream["commit"])[:7],
              "time_budget": opts.time_budget, "allowance": opts.startup_allowance}
    (task / "program.md").write_text(_render("program.md", **common, data_label=opts.data.label, seq_len=seq_len),
                                     encoding="utf-8")
    holdout_line = 'holdout = "python labmind_eval.py model.pt2 --split holdout"' \
        if has_holdout and opts.holdout_check else ""
    # Without compilation a short run starts training at once; the fixed cost of compiling (~45 s on an H100)
    # would otherwise dwarf a budget of a few seconds.
    env = ['"LABMIND_ATTENTION"'] + (['"TORCH_COMPILE_DISABLE=1"'] if opts.eager else [])
    (task / "labmind.toml").write_text(_render(
        "labmind.toml.tmpl", **common, name=opts.name, data_root=root.root,
        timeout=opts.time_budget + opts.startup_allowance, hide=", ".join(f'"data/{s}.bin"' for s in splits),
        holdout_line=holdout_line, env=", ".join(env), total_batch_choices=", ".join(map(str, choices)),
        baseline_runs=opts.baseline_runs, confirm_seeds=opts.confirm_seeds),
        encoding="utf-8")
    (task / ".gitignore").write_text("model.pt2\nmodel.pt2.tmp\n__pycache__/\n*.pyc\n", encoding="utf-8")
    pack = {
        "pack": "nanochat",
        "upstream": {k: v for k, v in upstream.items() if k != "path"},
        "edits": {"train.py": [{"name": e.name, "why": e.why} for e in train_edits],
                  "prepare.py": [{"name": e.name, "why": e.why} for e in prepare_edits]},
        "options": {"data": opts.data.label, "time_budget": opts.time_budget,
                    "startup_allowance": opts.startup_allowance, "device_batch_size": opts.device_batch_size,
                    "eval_tokens": opts.eval_tokens, "split": asdict(opts.split), "max_doc_chars": opts.max_doc_chars,
                    "holdout_check": opts.holdout_check, "eager": opts.eager},
        "comparability": COMPARABILITY,
    }
    (task / "pack.json").write_text(json.dumps(pack, indent=2) + "\n", encoding="utf-8")
    return pack


def _constant(source: str, name: str) -> int:
    match = re.search(rf"^{name} = (\d+)", source, re.MULTILINE)
    if match is None:
        raise PackError(f"prepare.py defines no {name} = <integer>")
    return int(match.group(1))


def _manifest(task: Path, root: DataRoot, tokenized: dict[str, Any], opts: PackOptions) -> dict[str, Any]:
    manifest = {
        "format": DATA_FORMAT,
        "source": opts.data.label,
        "seq_len": tokenized["seq_len"],
        "vocab_size": tokenized["vocab_size"],
        "bos_token_id": tokenized["bos_token_id"],
        "eval_tokens": opts.eval_tokens,
        "splits": tokenized["splits"],
        "tokenizer": {"tokenizer_sha256": file_sha256(task / "tokenizer" / "tokenizer.pkl"),
                      "token_bytes_sha256": file_sha256(task / "tokenizer" / "token_bytes.pt")},
        "train": {"dir": str(root.data_dir), "shards": root.shards, "docs_sha256": root.info.get("docs_sha256"),
                  "stats": root.info.get("stats", {})},
    }
    (task / "data" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _commit(task: Path, upstream: dict[str, Any]) -> str:
    from labmind.workspace import git as gitops

    try:
        commit = gitops.init_repo(task)
        gitops.git(task, "commit", "-q", "--amend", "--no-verify", "-m",
                   f"nanochat task from {adapt.UPSTREAM_REPO}@{str(upstream['commit'])[:7]} (labmind pack nanochat)")
        return gitops.git(task, "rev-parse", "HEAD").strip() or commit
    except gitops.GitError as exc:
        raise PackError(f"cannot make {task} a git repository: {exc}") from exc


def build_task(opts: PackOptions, log: Callable[[str], None] = lambda _: None) -> PackResult:
    """Make the task directory `opts.out`; PackError says what went wrong and how to fix it."""
    start = time.time()
    if opts.time_budget < 1 or opts.startup_allowance < 1 or opts.device_batch_size < 1 or opts.eval_tokens < 1:
        raise PackError("--time-budget, --startup-allowance, --device-batch-size and --eval-tokens must be positive")
    upstream = check_upstream(opts.upstream, opts.any_commit)
    _check_out_dir(opts.out)
    task = opts.out.resolve()
    eval_dir = Path(tempfile.mkdtemp(prefix="labmind-nanochat-eval-"))
    created = not task.exists()
    try:
        root, eval_files = _data_root(opts, eval_dir, log)
        (task / "data").mkdir(parents=True, exist_ok=True)
        (task / "tokenizer").mkdir(exist_ok=True)
        cached = root.root / "tokenizer"
        if (cached / "tokenizer.pkl").is_file() and (cached / "token_bytes.pt").is_file():
            for name in ("tokenizer.pkl", "token_bytes.pt"):  # the tokenizer of this exact corpus, trained before
                shutil.copyfile(cached / name, task / "tokenizer" / name)
        _write_task_files(opts, task, root, upstream, has_holdout="holdout" in eval_files)
        tokenized = _tokenize(task, eval_files, opts.eval_tokens + 1, log)
        if not cached.exists():
            cached.mkdir()
            for name in ("tokenizer.pkl", "token_bytes.pt"):
                shutil.copyfile(task / "tokenizer" / name, cached / name)
        manifest = _manifest(task, root, tokenized, opts)
        commit = _commit(task, upstream)
    except BaseException:
        if created:
            shutil.rmtree(task, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(eval_dir, ignore_errors=True)  # the evaluation documents exist only inside the task now
    _validate(task)
    return PackResult(task, commit, root.root, manifest, upstream, time.time() - start)


def _validate(task: Path) -> None:
    from labmind.task import TaskError, load_task

    try:
        load_task(task)
    except TaskError as exc:  # a bug in the pack, not the user's doing
        raise PackError(f"the written labmind.toml does not load: {exc}") from exc
