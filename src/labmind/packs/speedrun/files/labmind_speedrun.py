"""The speedrun pack's harness: the clock, the validation and the result of a run.

PROTECTED (written by `labmind pack speedrun`). train_gpt.py calls it where upstream kept its own clock and
validation loop; the record rules stay the same (compilation and warm-up untimed, the clock paused while the
validation loss is measured) but the parts that decide the score are labmind's:

- `Clock.initial(model)` right after the model is built (before compilation and warm-up) keeps a copy of its
  parameters; `Clock.start(model)` refuses to start unless the parameters are exactly those again, so warm-up
  steps must be undone as upstream does (training before the clock is not possible unnoticed). The seconds
  from process start to the clock's start are reported as `untimed_s`, which the task bounds.
- `validate(score, final=...)` feeds the validation tokens itself (the pinned stream in `data/val.bin`, a fixed
  number of tokens) to the candidate's `score(inputs, targets) -> per-token loss` and averages the losses
  itself. At the final validation two probes run first: changing the tokens after a position must not move the
  losses up to it (no peeking ahead), and random targets must score far worse than the true ones (the loss
  depends on the targets: a model that ignores or reads them is caught).
- `finish()` writes `labmind_result.json`; `python labmind_speedrun.py --score labmind_result.json` is the task's
  evaluator: it checks the record and prints `train_time_s`, `val_loss` and `untimed_s`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "pack.json").read_text())["harness"] if (HERE / "pack.json").is_file() else {}
RESULT = "labmind_result.json"
MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256
#: A run reaching the target must score random targets at least this many nats worse than the true ones.
TARGET_PROBE_NATS = 1.0


class RuleBroken(RuntimeError):
    """The run broke a rule of the task; the run fails and no result is written."""


def _process_start() -> float:
    """This process's start on the time.time() clock, from the kernel (Linux), else the harness's import."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + start
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()


def tokenizer_ranks() -> dict[bytes, int]:
    """The task's tokenizer as {token bytes: id}: `tokenizer/ranks.json` when the pack trained one for its
    substitute corpus, else GPT-2's from tiktoken (FineWeb shards; tiktoken needs its files cached offline)."""
    import base64

    path = HERE / "tokenizer" / "ranks.json"
    if path.is_file():
        return {base64.b64decode(k): int(v) for k, v in json.loads(path.read_text()).items()}
    import tiktoken

    return dict(tiktoken.get_encoding("gpt2")._mergeable_ranks)


def training_data(root: str) -> str:
    """The pack's training-shard folder, checked when train_gpt.py's Hyperparameters are defined, at import:
    upstream's loader finds a missing folder only at the first training step, after minutes of compilation
    and warm-up. Under labmind's sandbox a run sees neither /tmp nor the home directory (only ~/.cache and
    the tools' folders, read-only), so shards packed there are missing to the run."""
    shards = sorted((Path(root) / "data" / "fineweb10B").glob("fineweb_train_*.bin"))
    if not shards:
        raise FileNotFoundError(
            f"no training shards (data/fineweb10B/fineweb_train_*.bin) under {root}: they were moved or deleted, "
            "or the run cannot see that folder (labmind's sandbox hides /tmp and the home directory except "
            "~/.cache). Pack again with --data-dir in a folder runs see (the default ~/.cache/labmind/speedrun)")
    return root


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Clock:
    """Training time as the record counts it: started after warm-up, paused for validation."""

    def __init__(self) -> None:
        self.snapshot: list[Any] | None = None
        self.started_at: float | None = None
        self.running_since: float | None = None
        self.elapsed_s = 0.0
        self.untimed_s: float | None = None
        self.stopped = False

    def initial(self, model: Any) -> None:
        if self.started_at is not None:
            raise RuleBroken("Clock.initial() after the clock started")
        self.snapshot = [p.detach().clone() for p in model.parameters()]

    def start(self, model: Any) -> None:
        import torch

        if self.snapshot is None:
            raise RuleBroken("Clock.start() without Clock.initial(model) right after the model was built")
        if self.started_at is not None:
            raise RuleBroken("the clock was started twice")
        params = list(model.parameters())
        if len(params) != len(self.snapshot) or not all(
                p.shape == s.shape and torch.equal(p.detach(), s) for p, s in zip(params, self.snapshot, strict=False)):
            raise RuleBroken("the model's parameters at the clock's start differ from those it was built with: "
                             "work done before the clock (warm-up steps that were not undone) would go untimed")
        self.snapshot = None  # free the copy before training
        _sync()
        now = time.perf_counter()
        self.untimed_s = time.time() - _process_start()
        self.started_at = self.running_since = now

    def pause(self) -> None:
        if self.running_since is None:
            raise RuleBroken("Clock.pause() while the clock is not running")
        _sync()
        self.elapsed_s += time.perf_counter() - self.running_since
        self.running_since = None

    def resume(self) -> None:
        if self.started_at is None or self.running_since is not None or self.stopped:
            raise RuleBroken("Clock.resume() while the clock is not paused")
        _sync()
        self.running_since = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds so far (no synchronisation: for logging)."""
        live = time.perf_counter() - self.running_since if self.running_since is not None else 0.0
        return self.elapsed_s + live


clock = Clock()
_validations: list[dict[str, Any]] = []


def _val_tokens() -> Any:
    import numpy as np

    path = HERE / CONFIG.get("val_file", "data/val.bin")
    header = np.fromfile(path, dtype=np.int32, count=HEADER_INTS)
    if header.size < 3 or header[0] != MAGIC or header[1] != VERSION:
        raise RuleBroken(f"{path} is not a token shard (magic {MAGIC}, version {VERSION})")
    tokens = np.fromfile(path, dtype=np.uint16, offset=HEADER_INTS * 4)
    if tokens.size != int(header[2]):
        raise RuleBroken(f"{path}: the header claims {int(header[2])} tokens, the file holds {tokens.size}")
    return tokens


def windows(window: int) -> list[tuple[int, int]]:
    """(start, end) token offsets of this rank's validation windows: the fixed `val_tokens` cut into windows of
    `window` inputs (+1 for the last target), ranks interleaved as upstream's loader does."""
    rank, world = _rank_world()
    total = int(CONFIG.get("val_tokens", 0))
    if total <= 0 or total % (window * world):
        raise RuleBroken(f"val_tokens {total} is not a positive multiple of {window} x {world} ranks")
    return [(s, s + window + 1) for s in range(rank * window, total, window * world)]


def _losses(score: Any, inputs: Any, targets: Any) -> Any:
    import torch

    out = score(inputs, targets)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(targets.shape):
        raise RuleBroken(f"score() must return one loss per target ({tuple(targets.shape)}), got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return out.detach().float()


def probe(score: Any, inputs: Any, targets: Any, vocab: int, bos: int) -> dict[str, float]:
    """The two probes on one window; RuleBroken when the model sees ahead or its loss ignores the targets."""
    import torch

    gen = torch.Generator().manual_seed(1234)
    base = _losses(score, inputs, targets)
    again = _losses(score, inputs, targets)
    jitter = float((base - again).abs().max())
    allowed = max(1e-3, 4 * jitter)
    n = targets.numel()
    moved = 0.0
    for cut in (n // 3, 2 * n // 3):
        changed = inputs.clone()
        noise = torch.randint(0, vocab, (n - cut - 1,), generator=gen, dtype=changed.dtype)
        changed[cut + 1:] = torch.where(noise == bos, noise.new_tensor(0), noise)
        after = _losses(score, changed, targets)
        moved = max(moved, float((after[:cut + 1] - base[:cut + 1]).abs().max()))
    if moved > allowed:
        raise RuleBroken(f"causality probe: changing the tokens after a position moved the losses up to it by "
                         f"{moved:.3g} (allowed {allowed:.3g}): the model sees tokens it is asked to predict")
    wrong = torch.randint(0, vocab, targets.shape, generator=gen, dtype=targets.dtype)
    random_loss = float(_losses(score, inputs, wrong).mean())
    return {"jitter": jitter, "moved": moved, "true_loss": float(base.mean()), "random_target_loss": random_loss}


def validate(score: Any, *, window: int, final: bool) -> float:
    """The mean validation loss over the fixed validation tokens, all ranks together. `score(inputs, targets)`
    gets CPU tensors (int32 inputs, int64 targets of `window` tokens) and returns the per-token loss."""
    import torch
    import torch.distributed as dist

    tokens = _val_tokens()
    spans = windows(window)
    if spans[-1][1] > tokens.size:
        raise RuleBroken(f"the validation stream holds {tokens.size} tokens, fewer than val_tokens + 1")
    _rank, world = _rank_world()
    vocab, bos = int(CONFIG.get("vocab_size", 50257)), int(CONFIG.get("bos", 50256))
    probes = None
    total = torch.zeros((), dtype=torch.float64, device="cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        for i, (a, b) in enumerate(spans):
            buf = torch.from_numpy(tokens[a:b].astype("int64"))
            inputs, targets = buf[:-1].to(torch.int32), buf[1:].clone()
            if final and i == 0:
                probes = probe(score, inputs, targets, vocab, bos)
            total += _losses(score, inputs, targets).mean().to(total)
    total /= len(spans)
    if world > 1:
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        total /= world
    loss = float(total)
    record = {"final": final, "val_loss": loss, "tokens": len(spans) * window * world,
              "train_time_s": clock.elapsed_s}
    if probes is not None:
        record["probes"] = probes
    _validations.append(record)
    return loss


def finish(steps: int) -> None:
    """Stop the clock for good and write the run's result (rank 0)."""
    rank, _ = _rank_world()
    if clock.running_since is not None:
        clock.pause()
    clock.stopped = True
    if rank != 0:
        return
    finals = [v for v in _validations if v["final"]]
    result = {"format": "labmind-speedrun-result/1", "train_time_s": clock.elapsed_s, "untimed_s": clock.untimed_s,
              "steps": steps, "validations": _validations, "final": finals[-1] if finals else None}
    Path(RESULT).write_text(json.dumps(result, indent=1))
    print(f"labmind: clock {clock.elapsed_s:.3f}s over {steps} steps, untimed {clock.untimed_s or 0:.1f}s; "
          f"wrote {RESULT} for the evaluator", flush=True)


# ---------------------------------------------------------------------------------- the evaluator


def score_result(path: Path, config: dict[str, Any]) -> tuple[int, list[str]]:
    """(exit status, metric lines) for a run's result: 0 scored, 1 not finite, 2 rejected."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return 2, [f"rejected: no readable result ({exc})"]
    final = result.get("final")
    if not isinstance(final, dict):
        return 2, ["rejected: the run never ran the final validation (validation skipped)"]
    if final.get("tokens") != config["val_tokens"]:
        return 2, [f"rejected: the final validation scored {final.get('tokens')} tokens, not {config['val_tokens']}"]
    probes = final.get("probes") or {}
    loss, seconds, untimed = final.get("val_loss"), result.get("train_time_s"), result.get("untimed_s")
    if not all(isinstance(x, (int, float)) for x in (loss, seconds, untimed)):
        return 2, ["rejected: the result lacks its loss, time or untimed seconds"]
    if not math.isfinite(loss):
        return 1, [f"val_loss: {loss}"]
    target = float(config["target"])
    if loss <= target and probes.get("random_target_loss", -math.inf) < probes.get("true_loss", 0) + TARGET_PROBE_NATS:
        return 2, [f"rejected: random targets scored {probes.get('random_target_loss')} vs "
                   f"{probes.get('true_loss')} for the true ones: the loss does not depend on the targets"]
    if abs(final.get("train_time_s", -1) - seconds) > 1e-6:
        return 2, ["rejected: the clock ran after the final validation"]
    return 0, [f"val_loss: {loss:.6f}", f"untimed_s: {untimed:.3f}", f"steps: {result.get('steps')}",
               f"reached_target: {int(loss <= target)}", f"train_time_s: {seconds:.6f}"]


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--score":
        print("usage: python labmind_speedrun.py --score labmind_result.json", file=sys.stderr)
        return 2
    status, lines = score_result(Path(argv[1]), CONFIG)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
