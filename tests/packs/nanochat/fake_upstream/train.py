"""A small stand-in for autoresearch's train.py, written for labmind's tests: a two-layer GPT that calls
`fa3.flash_attn_func` like upstream and holds every line the nanochat pack edits, trained on the CPU for
TIME_BUDGET seconds. It is labmind's code, not upstream's."""

import os  # noqa: F401  (the pack's seed edit reads os.environ, as upstream's train.py imports os)
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from kernels import get_kernel

fa3 = get_kernel("stand-in/not-loaded")

from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, evaluate_bpb, make_dataloader  # noqa: E402


class Block(nn.Module):
    def __init__(self, dim, heads, window):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(F.rms_norm(x, (C,))).view(B, T, 3, self.heads, C // self.heads).unbind(2)
        y = fa3.flash_attn_func(q, k, v, causal=True, window_size=(self.window, 0))
        x = x + self.proj(y.reshape(B, T, C))
        return x + self.mlp(F.rms_norm(x, (C,)))


class GPT(nn.Module):
    def __init__(self, vocab_size, dim=64, heads=2, seq_len=MAX_SEQ_LEN):
        super().__init__()
        self.window_sizes = [(seq_len // 2, 0), (seq_len, 0)]
        self.wte = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(seq_len, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, w) for w, _ in self.window_sizes])
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def init_weights(self):
        nn.init.normal_(self.wte.weight, std=0.5)

    def forward(self, idx, targets=None, reduction="mean"):
        x = self.wte(idx) + self.pos[: idx.size(1)]
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(F.rms_norm(x, (x.size(-1),))).float()
        if targets is not None:
            return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)
        return logits


TOTAL_BATCH_SIZE = 2**19 # tokens per optimizer step (unused at this size)
LEARNING_RATE = 0.003
DEPTH = 2
DEVICE_BATCH_SIZE = 128  # per-device batch size
ROWS = 16

torch.manual_seed(42)
torch.cuda.manual_seed(42)
device = torch.device("cpu")
tokenizer = Tokenizer.from_directory()
vocab_size = tokenizer.get_vocab_size()
model = GPT(vocab_size)
model.init_weights()
optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
loader = make_dataloader(tokenizer, ROWS, MAX_SEQ_LEN, "train")

total_training_time, step = 0.0, 0
while total_training_time < TIME_BUDGET:
    t0 = time.time()
    x, y, epoch = next(loader)
    loss = model(x, y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    total_training_time += time.time() - t0
    step += 1

# Final eval
model.eval()
with torch.no_grad():
    val_bpb = evaluate_bpb(model, tokenizer, DEVICE_BATCH_SIZE)

print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {total_training_time:.1f}")
print(f"num_steps:        {step}")
print(f"peak_vram_mb:     {0.0:.1f}")
print(f"depth:            {DEPTH}")
