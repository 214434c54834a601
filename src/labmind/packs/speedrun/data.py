"""The speedrun pack's data: upstream's token shard format, from pre-staged FineWeb shards or a substitute corpus.

Upstream's shards (`fineweb_train_NNNNNN.bin`, `fineweb_val_NNNNNN.bin`) are a header of 256 int32 (magic
20240520, version 1, token count) followed by uint16 tokens, every document starting with token 50256 (GPT-2's
end-of-text, upstream's BOS). `--data PATH` uses such shards as they are. The substitute (`--data builtin`,
or `local:PATH`) is the nanochat pack's offline corpus (Python sources under site-packages, or the user's text)
tokenized by a byte-level BPE that labmind trains on the training split (rustbpe), written in the same format
with the same BOS id, so upstream's loader and model (vocabulary 50257) run unchanged. Its losses are not
comparable to FineWeb's: the target is calibrated for it (docs/packs/speedrun.md).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from labmind.packs.nanochat.data import Corpus

MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256
BOS = 50256
#: The substitute tokenizer's vocabulary: below upstream's BOS id, so every id fits the model's 50257.
SUBSTITUTE_VOCAB = 16384
#: Tokenizer training reads at most this many characters of training text (rustbpe, a few cores).
TOKENIZER_CHARS = 40_000_000


class DataError(Exception):
    """Data that cannot be used; the message says what is wrong."""


def write_shard(path: Path, tokens: np.ndarray) -> None:
    """Upstream's shard format."""
    if tokens.size and int(tokens.max()) >= 2**16:
        raise DataError(f"{path.name}: token ids must fit uint16")
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[:3] = (MAGIC, VERSION, tokens.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(np.uint16).tobytes())


def read_shard(path: Path) -> np.ndarray:
    header = np.fromfile(path, dtype=np.int32, count=HEADER_INTS)
    if header.size < 3 or header[0] != MAGIC or header[1] != VERSION:
        raise DataError(f"{path} is not an upstream token shard (magic {MAGIC}, version {VERSION})")
    tokens = np.fromfile(path, dtype=np.uint16, offset=HEADER_INTS * 4)
    if tokens.size != int(header[2]):
        raise DataError(f"{path}: the header claims {int(header[2])} tokens, the file holds {tokens.size}")
    return tokens


class Tokenizer:
    """A byte-level BPE trained by rustbpe, encoding through tiktoken; ids < SUBSTITUTE_VOCAB."""

    def __init__(self, ranks: dict[bytes, int], pattern: str) -> None:
        import tiktoken

        self.ranks, self.pattern = ranks, pattern
        self.enc = tiktoken.Encoding("labmind-speedrun", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})

    @classmethod
    def train(cls, texts: list[str], vocab_size: int = SUBSTITUTE_VOCAB) -> Tokenizer:
        import rustbpe

        def sample() -> Any:
            seen = 0
            for text in texts:
                if seen >= TOKENIZER_CHARS:
                    return
                seen += len(text)
                yield text

        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(sample(), vocab_size)
        return cls({bytes(k): int(v) for k, v in tok.get_mergeable_ranks()}, tok.get_pattern())

    def documents(self, texts: list[str]) -> np.ndarray:
        """The documents as one stream, BOS before each."""
        parts = []
        for ids in self.enc.encode_ordinary_batch(texts):
            parts.append(np.asarray([BOS, *ids], dtype=np.uint16))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "ranks.json"
        path.write_text(json.dumps({base64.b64encode(k).decode(): v for k, v in self.ranks.items()}))
        (directory / "pattern.txt").write_text(self.pattern)
        return path


def substitute_shards(corpus: Corpus, root: Path, tokenizer_dir: Path, val_path: Path, *, max_train_tokens: int,
                      shard_tokens: int = 10_000_000) -> dict[str, Any]:
    """Train the tokenizer on the training documents, write training shards under `root` in upstream's layout
    and the validation stream to `val_path`; returns counts."""
    train_docs, val_docs = corpus.documents["train"], corpus.documents["val"]
    if not train_docs or not val_docs:
        raise DataError("the corpus needs documents in both the training and the validation split")
    tok = Tokenizer.train(train_docs)
    tok.save(tokenizer_dir)
    train = tok.documents(train_docs)[:max_train_tokens]
    shard_dir = root / "data" / "fineweb10B"
    names = []
    for i, start in enumerate(range(0, train.size, shard_tokens)):
        name = f"fineweb_train_{i + 1:06d}.bin"
        write_shard(shard_dir / name, train[start:start + shard_tokens])
        names.append(name)
    val = tok.documents(val_docs)
    write_shard(val_path, val)
    return {"train_tokens": int(train.size), "train_shards": names, "val_tokens_available": int(val.size),
            "vocab_size": len(tok.ranks)}


def staged_shards(path: Path, val_path: Path) -> dict[str, Any]:
    """Pre-staged upstream shards: `path` is the folder that holds data/fineweb10B/ (upstream's DATA_PATH) or
    that folder itself. The first validation shard becomes the task's stream."""
    folder = path if path.name == "fineweb10B" else path / "data" / "fineweb10B"
    train = sorted(folder.glob("fineweb_train_*.bin"))
    val = sorted(folder.glob("fineweb_val_*.bin"))
    if not train or not val or folder.parent.name != "data":
        raise DataError(f"--data {path}: expected fineweb_train_*.bin and fineweb_val_*.bin in PATH/data/fineweb10B/ "
                        "(the layout upstream's data/cached_fineweb10B.py writes)")
    tokens = read_shard(val[0])
    write_shard(val_path, tokens)
    return {"train_shards": [p.name for p in train], "val_tokens_available": int(tokens.size),
            "val_shard": val[0].name, "root": str(folder.parent.parent)}


def usable_val_tokens(available: int, val_batch_size: int, wanted: int) -> int:
    """The largest multiple of the validation batch that the stream holds (+1 for the last target), capped."""
    n = min(wanted, (available - 1) // val_batch_size * val_batch_size)
    if n <= 0:
        raise DataError(f"the validation stream holds {available} tokens: fewer than one validation batch "
                        f"({val_batch_size} + 1)")
    return n
