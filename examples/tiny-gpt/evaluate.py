"""Trusted evaluator of tiny-gpt.  PROTECTED: agents must not change this file.

    python evaluate.py ckpt.pt

Rebuilds the model from model.py with the checkpoint's config, loads its weights (strictly: every
tensor must match), runs it on the held-out validation text and prints

    val_bpb: <bits per UTF-8 byte of the validation text>
    params: <number of parameters>

val_bpb = (sum over validation characters of -ln p(char | preceding text)) / (ln 2 * bytes), with
the cross-entropy computed here from the logits in float32/float64, never taken from training code.
Windows of block_size characters slide by half a block and only their last half is scored, so
every validation character is predicted from at least block_size/2 real preceding characters.

Exit status: 0 on success; 1 when the score is not finite (prints "val_bpb: nan"); 2 when the
checkpoint is missing, unreadable or does not fit the model (no metric line is printed).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import data
import torch
from model import GPT, GPTConfig

MAX_PARAMS = 200_000_000


class CheckpointError(Exception):
    pass


def load(path: Path, device: str) -> GPT:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (did train.py finish and save it?)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {type(exc).__name__}: {exc}") from exc
    if not isinstance(ckpt, dict) or not {"config", "model"} <= set(ckpt):
        raise CheckpointError(f"{path} must hold a dict with 'config' and 'model' (and 'vocab')")
    if ckpt.get("vocab", data.vocab()) != data.vocab():
        raise CheckpointError("the checkpoint's vocab differs from data.vocab(); train with data.py's encoding")
    conf = ckpt["config"]
    if not isinstance(conf, dict):
        raise CheckpointError(f"config must be a dict, got {type(conf).__name__}")
    try:
        cfg = GPTConfig(**conf)
        if cfg.vocab_size != len(data.vocab()):
            raise ValueError(f"vocab_size is {cfg.vocab_size} but the vocabulary has {len(data.vocab())} characters")
        model = GPT(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"bad config in {path}: {exc}") from exc
    if model.num_params() > MAX_PARAMS:
        raise CheckpointError(f"model has {model.num_params()} parameters, more than the limit of {MAX_PARAMS}")
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"weights in {path} do not fit the model: {exc}") from exc
    return model.to(device).eval()


@torch.no_grad()
def nats_on_validation(model: GPT, device: str, batch: int = 64) -> float:
    """Total -ln p over every validation character, each scored exactly once."""
    T = model.cfg.block_size
    stride = max(1, T // 2)
    ids, start = data.val_ids_with_context(T)
    ids = torch.tensor(ids, dtype=torch.long, device=device)
    n = len(ids)
    # Window i scores positions [p, e) with p = start + i*stride, e = min(p + stride, n); its input is
    # the T characters before e, ids[e-T-1 : e-1], whose last e-p predictions are those positions.
    spans = [(p, min(p + stride, n)) for p in range(start, n, stride)]
    total = torch.zeros((), dtype=torch.float64, device=device)
    scored = 0
    for i in range(0, len(spans), batch):
        group = spans[i:i + batch]
        x = torch.stack([ids[e - T - 1:e - 1] for _, e in group])
        logp = torch.log_softmax(model(x).float(), dim=-1)
        for row, (p, e) in enumerate(group):
            k = e - p
            target = ids[p:e]
            total -= logp[row, T - k:].gather(1, target[:, None]).double().sum()
            scored += k
    if scored != n - start:
        raise RuntimeError(f"internal error: scored {scored} of {n - start} characters")
    return float(total)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python evaluate.py ckpt.pt", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # full float32 matmuls: the score must not depend on TF32 settings
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    print(f"evaluate.py: device {device}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}",
          file=sys.stderr)
    try:
        model = load(Path(argv[0]), device)
        nats = nats_on_validation(model, device)
    except (CheckpointError, data.DataError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    bpb = nats / (math.log(2) * len(data.val_text().encode("utf-8")))
    if not math.isfinite(bpb):
        print("val_bpb: nan")
        print(f"params: {model.num_params()}")
        print("evaluate.py: error: the loss is not finite (did training diverge?)", file=sys.stderr)
        return 1
    print(f"val_bpb: {bpb:.6f}")
    print(f"params: {model.num_params()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
