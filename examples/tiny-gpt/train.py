"""Train the tiny-gpt character model.  EDITABLE: this is the file agents improve.

A small GPT (model.py, protected) learns to predict the next character of the training text. It
trains for a fixed number of steps with AdamW and bf16 autocast on one GPU (CPU when none is
visible), then saves ckpt.pt = {"config": ..., "model": state_dict, "vocab": ...} for evaluate.py,
which computes the score itself. Randomness comes from the SEED environment variable;
TINY_GPT_STEPS overrides STEPS (for smoke tests).
"""

from __future__ import annotations

import math
import os
import time

import data
import torch
from model import GPT, GPTConfig

# ---- settings (the knobs) -------------------------------------------------------------------------
LEARNING_RATE = 1e-4     # peak learning rate
WEIGHT_DECAY = 0.0       # AdamW weight decay on matrices (not on biases, norms)
BETA1 = 0.9
BETA2 = 0.999
LR_SCHEDULE = "constant" # "constant" or "cosine" (decay to 10% of the peak)
WARMUP_STEPS = 0         # linear warmup steps
STEPS = 1500             # optimisation steps
BATCH_SIZE = 64          # sequences per step
BLOCK_SIZE = 128         # sequence length (and the model's context)
N_LAYER = 4
N_HEAD = 4
N_EMBD = 256
DROPOUT = 0.0
GRAD_CLIP = 1.0          # clip the global gradient norm (0 = off)
INIT_STD = 0.02
OUTPUT = "ckpt.pt"
# ---------------------------------------------------------------------------------------------------

SEED = int(os.environ.get("SEED", "0"))


def lr_at(step: int, steps: int) -> float:
    if WARMUP_STEPS and step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    if LR_SCHEDULE == "cosine":
        t = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
        return LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    return LEARNING_RATE


def main() -> None:
    t0 = time.time()
    steps = int(os.environ.get("TINY_GPT_STEPS", STEPS))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')} "
          f"LABMIND_GPUS={os.environ.get('LABMIND_GPUS', '<unset>')}")
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        # The UUID and PCI bus show which physical GPU this run got (labmind gives each slot its own).
        print(f"device: cuda ({props.name}, {torch.cuda.device_count()} visible, uuid {props.uuid}, "
              f"pci {props.pci_bus_id:02x}:{props.pci_device_id:02x})")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        print("device: cpu (no GPU visible)")
    torch.manual_seed(SEED)
    gen = torch.Generator(device=device).manual_seed(SEED)

    ids = torch.tensor(data.train_ids(), dtype=torch.long, device=device)
    cfg = GPTConfig(vocab_size=len(data.vocab()), block_size=BLOCK_SIZE, n_layer=N_LAYER, n_head=N_HEAD,
                    n_embd=N_EMBD, dropout=DROPOUT)
    model = GPT(cfg).to(device)
    model.init_weights(INIT_STD)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE, betas=(BETA1, BETA2), fused=device == "cuda",
    )
    offsets = torch.arange(BLOCK_SIZE + 1, device=device)
    print(f"model: {model.num_params()} parameters, {steps} steps of {BATCH_SIZE}x{BLOCK_SIZE} tokens")

    model.train()
    for step in range(steps):
        starts = torch.randint(0, len(ids) - BLOCK_SIZE - 1, (BATCH_SIZE,), device=device, generator=gen)
        chunk = ids[starts[:, None] + offsets]
        x, y = chunk[:, :-1], chunk[:, 1:]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if GRAD_CLIP:
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step:5d}  train_loss {loss.item():.4f}  lr {lr_at(step, steps):.2e}  {time.time() - t0:.1f}s",
                  flush=True)

    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "vocab": data.vocab()}, OUTPUT)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    print(f"saved {OUTPUT}; seed {SEED}; {time.time() - t0:.1f}s; peak_vram_mb {peak:.0f}")


if __name__ == "__main__":
    main()
