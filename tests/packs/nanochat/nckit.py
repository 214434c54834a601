"""Helpers for the nanochat pack's tests: the pack's own files as modules, a tiny task built from the
stand-in upstream (fake_upstream/, labmind's code in upstream's shape), and small models."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

torch = pytest.importorskip("torch", reason="the nanochat pack's tests need torch: pip install 'labmind[nanochat]'")

HERE = Path(__file__).resolve().parent
FAKE_UPSTREAM = HERE / "fake_upstream"
FILES = Path(__file__).resolve().parents[3] / "src" / "labmind" / "packs" / "nanochat" / "files"
#: This interpreter (its venv has torch); labmind's sandbox binds its prefix back even under /tmp.
PY = sys.executable


def load_file(path: Path, name: str) -> ModuleType:
    """A module from a file, registered under `name` (labmind_export finds labmind_attn through sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pack_module(name: str) -> ModuleType:
    """labmind_attn, labmind_export or labmind_eval, from the pack's source tree. The attention module is
    loaded with LABMIND_ATTENTION=native: the tests never try the hub kernel."""
    if name in sys.modules:
        return sys.modules[name]
    before = os.environ.get("LABMIND_ATTENTION")
    os.environ["LABMIND_ATTENTION"] = "native"
    try:
        return load_file(FILES / f"{name}.py", name)
    finally:
        if before is None:
            del os.environ["LABMIND_ATTENTION"]
        else:
            os.environ["LABMIND_ATTENTION"] = before


def write_stories(directory: Path, count: int = 120, seed: int = 0, per_story: tuple[int, int] = (5, 30)) -> Path:
    """`count` small English-like text files: a corpus a CPU tokenizes and trains on in seconds."""
    rng = random.Random(seed)
    words = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "fast", "slow", "red", "blue", "big", "small",
             "and", "then", "it", "was", "very", "happy", "sad", "tree", "house", "bird", "sang", "under", "over"]
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + "."
                 for _ in range(rng.randint(*per_story))]
        (directory / f"story_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return directory


def pack(upstream: Path, data: str, out: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`labmind pack nanochat ...` in a subprocess, as a user runs it."""
    code = "import sys; from labmind.cli.pack import pack_app; sys.argv[0] = 'labmind pack'; pack_app()"
    argv = [PY, "-c", code, "nanochat", "--upstream", str(upstream), "--data", data, "--out", str(out),
            "--data-dir", str(data_dir), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def run_in(task: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 300
           ) -> subprocess.CompletedProcess[str]:
    """A command of the task (python train.py, python labmind_eval.py ...) in the task directory."""
    full_env = {**os.environ, "LABMIND_ATTENTION": "native", **(env or {})}
    return subprocess.run([PY, *argv], cwd=task, capture_output=True, text=True, timeout=timeout, env=full_env,
                          check=False)


def metric(output: str, name: str = "val_bpb") -> float:
    values = [float(line.split(":", 1)[1]) for line in output.splitlines() if line.startswith(f"{name}:")]
    assert values, f"no {name} line in:\n{output}"
    return values[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(task: Path) -> dict:
    return json.loads((task / "data" / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------ tiny models

nn = torch.nn
F = torch.nn.functional
MODES = ("honest", "liar", "peek", "bidirectional", "cross_row", "stateful", "nan")


class TinyLM(nn.Module):
    """One attention layer and an MLP over token + position embeddings. `mode` turns it into a cheat:
    liar        forward(x, y) returns a made-up loss of 0 (what upstream's evaluate_bpb sums);
    peek        raises the logit of the *next* input token, the answer, at each position;
    bidirectional  attends to later positions as well;
    cross_row   mixes every row of the batch into every other (rows are neighbouring windows of the text);
    stateful    remembers what it saw in a buffer, across calls;
    nan         produces NaN logits (a diverged run)."""

    def __init__(self, vocab_size: int, seq_len: int, dim: int = 32, mode: str = "honest", seed: int = 0):
        super().__init__()
        assert mode in MODES
        torch.manual_seed(seed)
        self.mode = mode
        self.wte = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(0.1 * torch.randn(seq_len, dim))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, vocab_size)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean"):
        T = idx.size(1)
        x = self.wte(idx) + self.pos[:T]
        if self.mode == "cross_row":
            x = x + x.mean(dim=0, keepdim=True)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = x + F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None],
                                               is_causal=self.mode != "bidirectional")[:, 0]
        x = x + self.mlp(x)
        logits = self.head(x)
        if self.mode == "peek":
            logits = logits + 10 * F.one_hot(torch.roll(idx, -1, dims=1), logits.size(-1)).float()
        if self.mode == "stateful":
            self.seen.add_(idx.float().mean())
            logits = logits + self.seen
        if self.mode == "nan":
            logits = logits * float("nan")
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)
            return torch.zeros_like(loss) if self.mode == "liar" else loss
        return logits


def make_eval_task(root: Path, *, vocab_size: int = 48, seq_len: int = 16, tokens: int = 700, seed: int = 0,
                   bos: int | None = None) -> Path:
    """A task directory with what labmind_eval.py reads: data/manifest.json, data/val.bin, data/holdout.bin,
    tokenizer/token_bytes.pt (special tokens: the last four ids, byte length 0)."""
    import numpy as np

    gen = np.random.default_rng(seed)
    bos = vocab_size - 4 if bos is None else bos
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "tokenizer").mkdir(exist_ok=True)
    token_bytes = torch.tensor([int(gen.integers(1, 5)) for _ in range(vocab_size)], dtype=torch.int32)
    token_bytes[vocab_size - 4:] = 0
    torch.save(token_bytes, root / "tokenizer" / "token_bytes.pt")
    (root / "tokenizer" / "tokenizer.pkl").write_bytes(b"stand-in")
    splits = {}
    for split in ("val", "holdout"):
        stream = gen.integers(0, vocab_size - 4, size=tokens).astype("<u2")
        stream[:: max(1, tokens // 9)] = bos  # documents start with BOS
        stream.tofile(root / "data" / f"{split}.bin")
        splits[split] = {"file": f"{split}.bin", "dtype": "uint16", "tokens": tokens,
                         "sha256": sha256(root / "data" / f"{split}.bin")}
    (root / "data" / "manifest.json").write_text(json.dumps({
        "format": "labmind-nanochat-data/1", "seq_len": seq_len, "vocab_size": vocab_size, "bos_token_id": bos,
        "splits": splits,
        "tokenizer": {"token_bytes_sha256": sha256(root / "tokenizer" / "token_bytes.pt"),
                      "tokenizer_sha256": sha256(root / "tokenizer" / "tokenizer.pkl")},
        "train": {"dir": str(root / "no-train-shards"), "shards": {}}}))
    return root


def independent_bpb(model: nn.Module, stream: torch.Tensor, token_bytes: torch.Tensor, seq_len: int) -> float:
    """val_bpb computed the plain way, one window at a time, for comparison with the evaluator."""
    import math

    nats, nbytes = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(stream) - 1, seq_len):
            x = stream[start:start + seq_len]
            y = stream[start + 1:start + seq_len + 1]
            x = x[:len(y)]
            logits = model(x[None]).float()[0]
            ce = F.cross_entropy(logits, y, reduction="none").double()
            sizes = token_bytes[y].long()
            nats += float((ce * (sizes > 0)).sum())
            nbytes += int(sizes.sum())
    return nats / (math.log(2) * nbytes)


def upstream_style_bpb(model: nn.Module, stream: torch.Tensor, token_bytes: torch.Tensor, seq_len: int) -> float:
    """What upstream's evaluate_bpb does: it sums the loss the candidate's forward(x, y) returns."""
    import math

    nats, nbytes = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(stream) - seq_len - 1, seq_len):
            x = stream[start:start + seq_len][None]
            y = stream[start + 1:start + seq_len + 1][None]
            loss = model(x, y, reduction="none").view(-1)
            sizes = token_bytes[y.view(-1)].long()
            nats += float((loss * (sizes > 0)).sum())
            nbytes += int(sizes.sum())
    return nats / (math.log(2) * nbytes)
