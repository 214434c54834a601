"""The tiny-gpt model: a small decoder-only transformer over characters.  PROTECTED.

train.py builds the model from here and evaluate.py rebuilds it from the checkpoint's config, so the
architecture that is scored is always this one; training code can choose the sizes (GPTConfig) and
the weights, nothing else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Allowed ranges of the integer sizes (the evaluator refuses checkpoints outside them).
LIMITS = {"block_size": (8, 2048), "n_layer": (1, 48), "n_head": (1, 64), "n_embd": (8, 4096), "mlp_ratio": (1, 16)}


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 256   # longest context the model sees
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    mlp_ratio: int = 4
    dropout: float = 0.0    # used in training only; evaluation runs in eval() mode

    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            want = (int, float) if f.name == "dropout" else (int,)
            if isinstance(v, bool) or not isinstance(v, want):
                raise ValueError(f"config {f.name} must be {want[-1].__name__}, got {v!r}")
        for name, (lo, hi) in LIMITS.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"config {name} must be in {lo}..{hi}, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied input and output embeddings

    def init_weights(self, std: float = 0.02) -> None:
        """GPT-2 style initialisation; residual projections scaled down by depth."""
        for name, p in self.named_parameters():
            if p.dim() == 2:
                scale = std / math.sqrt(2 * self.cfg.n_layer) if name.endswith(("proj.weight", "mlp.2.weight")) else std
                nn.init.normal_(p, 0.0, scale)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); position t sees ids[:, :t+1]."""
        T = idx.shape[1]
        if self.cfg.block_size < T:
            raise ValueError(f"sequence length {T} exceeds block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))
