"""Train the tiny-lm character model (numpy only).  EDITABLE: this is the file agents improve.

The model is an MLP over a window of character embeddings: the previous CONTEXT characters are
embedded (EMBED numbers each), concatenated, passed through LAYERS hidden layers of HIDDEN units and
mapped to logits over the vocabulary. Training minimises cross-entropy on the training split with
hand-written backprop and AdamW (or SGD with momentum), then saves model.npz for evaluate.py, which
computes the score itself. Randomness (init and batch order) comes from the SEED environment variable.
"""

from __future__ import annotations

import math
import os
import time

import data
import numpy as np

# ---- settings (the knobs) -------------------------------------------------------------------------
LEARNING_RATE = 3e-4     # peak learning rate
OPTIMIZER = "adam"       # "adam" (AdamW) or "sgd" (SGD with momentum)
MOMENTUM = 0.9           # SGD momentum, or Adam's beta1
WEIGHT_DECAY = 0.0       # decoupled weight decay on weight matrices
LR_SCHEDULE = "constant" # "constant" or "cosine" (decay to 10% of the peak)
WARMUP_STEPS = 0         # linear warmup steps
STEPS = 4000             # optimisation steps
BATCH_SIZE = 128         # examples per step
CONTEXT = 6              # characters the model sees
EMBED = 12               # embedding size per character
HIDDEN = 192             # units per hidden layer
LAYERS = 1               # hidden layers
ACTIVATION = "tanh"      # "tanh" or "relu"
INIT_SCALE = 1.0         # multiplier on the hidden layers' 1/sqrt(fan_in) init
GRAD_CLIP = 1.0          # clip the global gradient norm (0 = off)
MAX_SECONDS = 60.0       # safety stop for training time
OUTPUT = "model.npz"
# ---------------------------------------------------------------------------------------------------

SEED = int(os.environ.get("SEED", "0"))


def init_params(rng: np.random.Generator, vocab_size: int) -> dict[str, np.ndarray]:
    p = {"emb": rng.standard_normal((vocab_size, EMBED)).astype(np.float32)}
    width = CONTEXT * EMBED
    for i in range(LAYERS):
        p[f"W{i}"] = (rng.standard_normal((width, HIDDEN)) * INIT_SCALE / math.sqrt(width)).astype(np.float32)
        p[f"b{i}"] = np.zeros(HIDDEN, np.float32)
        width = HIDDEN
    p["Wout"] = (rng.standard_normal((width, vocab_size)) * 0.01).astype(np.float32)
    p["bout"] = np.zeros(vocab_size, np.float32)
    return p


def act(x: np.ndarray) -> np.ndarray:
    return np.tanh(x) if ACTIVATION == "tanh" else np.maximum(x, 0.0)


def act_grad(y: np.ndarray) -> np.ndarray:
    """Derivative of the activation, from its output."""
    return 1.0 - y * y if ACTIVATION == "tanh" else (y > 0).astype(y.dtype)


def loss_and_grads(p: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[float, dict]:
    B, V = len(Y), p["emb"].shape[0]
    x = p["emb"][X].reshape(B, -1)
    hs = [x]
    for i in range(LAYERS):
        hs.append(act(hs[-1] @ p[f"W{i}"] + p[f"b{i}"]))
    logits = hs[-1] @ p["Wout"] + p["bout"]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs = e / e.sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(B), Y] + 1e-12).mean())

    g = {}
    d = probs
    d[np.arange(B), Y] -= 1.0
    d /= B
    g["Wout"] = hs[-1].T @ d
    g["bout"] = d.sum(axis=0)
    d = d @ p["Wout"].T
    for i in reversed(range(LAYERS)):
        d = d * act_grad(hs[i + 1])
        g[f"W{i}"] = hs[i].T @ d
        g[f"b{i}"] = d.sum(axis=0)
        d = d @ p[f"W{i}"].T
    onehot = np.zeros((X.size, V), np.float32)
    onehot[np.arange(X.size), X.ravel()] = 1.0
    g["emb"] = onehot.T @ d.reshape(X.size, EMBED)
    return loss, g


def lr_at(step: int) -> float:
    if WARMUP_STEPS and step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    if LR_SCHEDULE == "cosine":
        t = (step - WARMUP_STEPS) / max(1, STEPS - WARMUP_STEPS)
        return LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    return LEARNING_RATE


def main() -> None:
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    ids = data.train_ids()
    V = len(data.vocab())
    p = init_params(rng, V)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    beta2, eps = 0.999, 1e-8
    offsets = np.arange(CONTEXT)
    smooth = None
    for step in range(STEPS):
        if time.time() - t0 > MAX_SECONDS:
            print(f"stopping early at step {step}: MAX_SECONDS={MAX_SECONDS} reached")
            break
        pos = rng.integers(CONTEXT, len(ids), size=BATCH_SIZE)
        X, Y = ids[pos[:, None] - CONTEXT + offsets], ids[pos]
        loss, g = loss_and_grads(p, X, Y)
        if not math.isfinite(loss):
            print(f"step {step}: loss is {loss}, stopping")
            break
        if GRAD_CLIP:
            norm = math.sqrt(sum(float((v * v).sum()) for v in g.values()))
            if norm > GRAD_CLIP:
                for v in g.values():
                    v *= GRAD_CLIP / norm
        lr = lr_at(step)
        for k in p:
            if WEIGHT_DECAY and k.startswith("W"):
                p[k] *= 1.0 - lr * WEIGHT_DECAY
            if OPTIMIZER == "adam":
                m[k] = MOMENTUM * m[k] + (1 - MOMENTUM) * g[k]
                s[k] = beta2 * s[k] + (1 - beta2) * g[k] * g[k]
                mhat = m[k] / (1 - MOMENTUM ** (step + 1))
                shat = s[k] / (1 - beta2 ** (step + 1))
                p[k] -= lr * mhat / (np.sqrt(shat) + eps)
            else:
                m[k] = MOMENTUM * m[k] + g[k]
                p[k] -= lr * m[k]
        smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
        if step % 500 == 0 or step == STEPS - 1:
            print(f"step {step:5d}  train_loss {smooth:.4f}  lr {lr:.2e}  {time.time() - t0:.1f}s")
    np.savez(OUTPUT, **p, context=np.int64(CONTEXT), activation=np.str_(ACTIVATION), vocab=np.str_(data.vocab()))
    n_params = sum(v.size for v in p.values())
    print(f"saved {OUTPUT}: {n_params} parameters, seed {SEED}, {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
