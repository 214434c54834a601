"""Saves the trained model for labmind's evaluator.  PROTECTED (written by `labmind pack nanochat`).

train.py ends with `labmind_export.save(model, seq_len=MAX_SEQ_LEN, vocab_size=vocab_size)`. The model is
exported with torch.export into a graph of ATen operations from input ids (B, T) to logits (B, T, V), with
its weights. None of train.py's Python code travels with it, so the evaluator (labmind_eval.py) runs the
candidate's model without running the candidate's code, never hands it the targets, and computes the loss
itself.

The file is a zip written here rather than torch's own .pt2 archive, because torch.export.load unpickles
what it reads: labmind_eval.py checks the graph (program.json, plain JSON) before anything is deserialized,
and loads the tensors with torch.load(weights_only=True). Members:
  labmind.json   format, batch, seq_len, vocab_size, parameter count, attention backend, torch version
  program.json   the serialized graph (torch._export.serde)
  weights.pt     parameters and persistent buffers      (tensors only)
  constants.pt   lifted constants and other buffers      (tensors only)
  inputs.pt      the example input the graph was traced with
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import zipfile
from typing import Any

import torch
from torch import nn

FORMAT = "labmind-nanochat-model/1"
#: Rows per forward pass in the evaluator: the graph is traced with this static batch.
EVAL_BATCH = 8


class IdsToLogits(nn.Module):
    """The evaluator's view of a model: input ids in, float32 logits out. Autocast (bf16 on CUDA, as
    upstream's evaluation used) is recorded inside the graph, so the evaluator runs the same arithmetic."""

    def __init__(self, model: nn.Module, autocast: bool):
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.autocast:
            with torch.autocast(device_type=idx.device.type, dtype=torch.bfloat16):
                logits = self.model(idx)
        else:
            logits = self.model(idx)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"model(idx) must return the logits tensor, got {type(logits).__name__}")
        return logits.float()


def _unwrap(model: nn.Module) -> nn.Module:
    """The module under torch.compile's wrapper (export traces the Python model, not the compiled one)."""
    return getattr(model, "_orig_mod", model)


def export(model: nn.Module, seq_len: int, batch: int = EVAL_BATCH, autocast: bool | None = None) -> Any:
    """The ExportedProgram of `model` (ids -> logits) at a static (batch, seq_len) input shape."""
    inner = _unwrap(model)
    inner.eval()
    param = next(inner.parameters())
    if autocast is None:
        autocast = param.device.type == "cuda"
    example = torch.zeros((batch, seq_len), dtype=torch.long, device=param.device)
    attn = sys.modules.get("labmind_attn")
    # The attention module routes every call through torch-native SDPA while exporting: the hub FA3 kernel and
    # compiled FlexAttention cannot be serialized, and the evaluator must not need either.
    guard = attn.exporting() if attn is not None else contextlib.nullcontext()
    with guard, torch.no_grad():
        return torch.export.export(IdsToLogits(inner, autocast), (example,), strict=False)


def save(model: nn.Module, *, seq_len: int, vocab_size: int, path: str = "model.pt2", batch: int = EVAL_BATCH,
         autocast: bool | None = None) -> dict[str, Any]:
    """Export `model` and write it to `path` in the format labmind_eval.py reads; returns the metadata."""
    from torch._export.serde.serialize import serialize

    start = time.time()
    program = export(model, seq_len, batch, autocast)
    artifact = serialize(program)
    attn = sys.modules.get("labmind_attn")
    meta = {
        "format": FORMAT,
        "batch": batch,
        "seq_len": seq_len,
        "vocab_size": vocab_size,
        "params": sum(p.numel() for p in _unwrap(model).parameters()),
        "attention": getattr(attn, "BACKEND", "unknown"),
        "torch": torch.__version__,
    }
    tmp = f"{path}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("labmind.json", json.dumps(meta, indent=2))
        zf.writestr("program.json", artifact.exported_program)
        zf.writestr("weights.pt", artifact.state_dict)
        zf.writestr("constants.pt", artifact.constants)
        zf.writestr("inputs.pt", artifact.example_inputs)
    os.replace(tmp, path)  # a crash mid-write never leaves a half file under the artifact's name
    size_mb = os.path.getsize(path) / 1e6
    print(f"labmind_export: saved {path} ({size_mb:.1f} MB, batch {batch} x {seq_len}) in {time.time() - start:.1f}s")
    return meta
