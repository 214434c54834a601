"""Trusted evaluator of tiny-lm.  PROTECTED: agents must not change this file.

    python evaluate.py model.npz

Loads the model that train.py saved, runs the forward pass itself on the held-out validation text
and prints

    val_bpb: <bits per UTF-8 byte of the validation text>
    params: <number of parameters>

val_bpb = (sum over validation characters of -ln p(char | previous CONTEXT chars)) / (ln 2 * bytes).

The model file (.npz, no pickles) describes an MLP over a window of character embeddings:

    emb      (V, E)          one embedding per vocabulary character (V must equal the data's vocab)
    context  ()              integer: how many previous characters the model sees
    W0, b0 ... W{k-1}, b{k-1}  hidden layers: h = act(h @ Wi + bi), the first takes the
                             concatenated embeddings (context * E inputs), oldest character first
    Wout, bout               output layer to V logits
    activation ()            optional string, "tanh" (default) or "relu"
    vocab    ()              optional string; when present it must equal data.vocab()

Exit status: 0 on success; 1 when the score is not finite (prints "val_bpb: nan"); 2 when the model
file is missing, unreadable or malformed (no metric line is printed).
"""

from __future__ import annotations

import math
import re
import sys
import zipfile
from pathlib import Path

import data
import numpy as np

MAX_PARAMS = 20_000_000
MAX_CONTEXT = 256
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


class ModelError(Exception):
    pass


def load_model(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist (did train.py finish and save it?)")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not an .npz file (save it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"cannot read {path} as an .npz file: {exc}") from exc

    def need(key: str) -> np.ndarray:
        if key not in arrays:
            raise ModelError(f"{path} has no array {key!r} (found: {', '.join(sorted(arrays)) or 'none'})")
        return arrays[key]

    def matrix(key: str, ndim: int) -> np.ndarray:
        a = need(key)
        if a.ndim != ndim or a.dtype.kind not in "fiu":
            raise ModelError(f"{key} must be a {ndim}-d numeric array, got shape {a.shape} dtype {a.dtype}")
        return a.astype(np.float64)

    vocab = data.vocab()
    emb = matrix("emb", 2)
    if emb.shape[0] != len(vocab):
        raise ModelError(f"emb has {emb.shape[0]} rows but the vocabulary has {len(vocab)} characters")
    if "vocab" in arrays and str(arrays["vocab"]) != vocab:
        raise ModelError("the model's vocab differs from data.vocab(); train with data.py's encoding")
    ctx = need("context")
    if ctx.shape != () or ctx.dtype.kind not in "iu" or not 1 <= int(ctx) <= MAX_CONTEXT:
        raise ModelError(f"context must be an integer scalar in 1..{MAX_CONTEXT}, got {ctx!r}")
    context = int(ctx)
    act = str(arrays["activation"]) if "activation" in arrays else "tanh"
    if act not in ACTIVATIONS:
        raise ModelError(f"activation must be one of {sorted(ACTIVATIONS)}, got {act!r}")

    hidden_keys = sorted((k for k in arrays if re.fullmatch(r"W\d+", k)), key=lambda k: int(k[1:]))
    if [int(k[1:]) for k in hidden_keys] != list(range(len(hidden_keys))):
        raise ModelError(f"hidden layers must be numbered W0, W1, ... without gaps, got {hidden_keys}")
    layers, width = [], context * emb.shape[1]
    for k in [*hidden_keys, "Wout"]:
        W = matrix(k, 2)
        b = matrix("b" + k[1:] if k != "Wout" else "bout", 1)
        if W.shape[0] != width or b.shape != (W.shape[1],):
            raise ModelError(f"{k} has shape {W.shape} with bias {b.shape}; expected ({width}, n) and (n,)")
        layers.append((W, b))
        width = W.shape[1]
    if width != len(vocab):
        raise ModelError(f"Wout gives {width} logits but the vocabulary has {len(vocab)} characters")
    params = emb.size + sum(W.size + b.size for W, b in layers)
    if params > MAX_PARAMS:
        raise ModelError(f"model has {params} parameters, more than the limit of {MAX_PARAMS}")
    return {"emb": emb, "context": context, "layers": layers, "act": ACTIVATIONS[act], "params": params}


def nats_on_validation(model: dict, chunk: int = 4096) -> float:
    """Total -ln p over every validation character, computed in float64."""
    C, emb, act, layers = model["context"], model["emb"], model["act"], model["layers"]
    ids, start = data.val_ids_with_context(C)
    n = len(ids) - start
    windows = np.lib.stride_tricks.sliding_window_view(ids, C)  # windows[i] = ids[i:i+C]
    total = 0.0
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        x = emb[windows[lo:hi]].reshape(hi - lo, -1)  # context of target ids[start+i] is ids[i:i+C]
        for W, b in layers[:-1]:
            x = act(x @ W + b)
        W, b = layers[-1]
        logits = x @ W + b
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        target = ids[start + lo:start + hi]
        total += float((lse - logits[np.arange(hi - lo), target]).sum())
    return total


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python evaluate.py model.npz", file=sys.stderr)
        return 2
    try:
        model = load_model(Path(argv[0]))
        nats = nats_on_validation(model)
    except (ModelError, data.DataError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    n_bytes = len(data.val_text().encode("utf-8"))
    bpb = nats / (math.log(2) * n_bytes)
    if not math.isfinite(bpb):
        print("val_bpb: nan")
        print(f"params: {model['params']}")
        print("evaluate.py: error: the loss is not finite (did training diverge?)", file=sys.stderr)
        return 1
    print(f"val_bpb: {bpb:.6f}")
    print(f"params: {model['params']}")
    return 0


if __name__ == "__main__":
    with np.errstate(over="ignore", invalid="ignore"):
        sys.exit(main(sys.argv[1:]))
