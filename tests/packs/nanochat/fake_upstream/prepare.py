"""A small stand-in for autoresearch's prepare.py, written for labmind's tests: the same interface (constants,
train_tokenizer, Tokenizer, make_dataloader) and the lines the nanochat pack edits, at a size a CPU trains in
seconds. It is labmind's code, not upstream's."""

import math
import os
import pickle

import pyarrow.parquet as pq
import rustbpe
import tiktoken
import torch

MAX_SEQ_LEN = 64
TIME_BUDGET = 300        # training time budget in seconds
EVAL_TOKENS = 4096

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "fake-autoresearch")
DATA_DIR = os.path.join(CACHE_DIR, "data")
TOKENIZER_DIR = os.path.join(CACHE_DIR, "tokenizer")
VAL_FILENAME = "shard_06542.parquet"
VOCAB_SIZE = 320
SPLIT_PATTERN = r"""\s*[\r\n]|\s+(?!\S)|\s+|\p{L}+|\p{N}{1,2}|[^\s\p{L}\p{N}]+"""
SPECIAL_TOKENS = [f"<|reserved_{i}|>" for i in range(4)]
BOS_TOKEN = "<|reserved_0|>"


def list_parquet_files():
    return [os.path.join(DATA_DIR, f) for f in sorted(os.listdir(DATA_DIR)) if f.endswith(".parquet")]


def text_iterator():
    for path in list_parquet_files():
        if not path.endswith(VAL_FILENAME):
            yield from pq.read_table(path).column("text").to_pylist()


def train_tokenizer():
    os.makedirs(TOKENIZER_DIR, exist_ok=True)
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(text_iterator(), VOCAB_SIZE - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
    ranks = {bytes(k): v for k, v in tok.get_mergeable_ranks()}
    specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
    enc = tiktoken.Encoding(name="fake", pat_str=tok.get_pattern(), mergeable_ranks=ranks, special_tokens=specials)
    with open(os.path.join(TOKENIZER_DIR, "tokenizer.pkl"), "wb") as f:
        pickle.dump(enc, f)
    sizes = [0 if enc.decode([i]) in SPECIAL_TOKENS else len(enc.decode([i]).encode()) for i in range(enc.n_vocab)]
    torch.save(torch.tensor(sizes, dtype=torch.int32), os.path.join(TOKENIZER_DIR, "token_bytes.pt"))


class Tokenizer:
    def __init__(self, enc):
        self.enc = enc
        self.bos_token_id = enc.encode_single_token(BOS_TOKEN)

    @classmethod
    def from_directory(cls, tokenizer_dir=None):
        with open(os.path.join(tokenizer_dir or TOKENIZER_DIR, "tokenizer.pkl"), "rb") as f:
            return cls(pickle.load(f))

    def get_vocab_size(self):
        return self.enc.n_vocab

    def get_bos_token_id(self):
        return self.bos_token_id

    def encode(self, text, prepend=None):
        rows = self.enc.encode_ordinary_batch(text) if isinstance(text, list) else [self.enc.encode_ordinary(text)]
        if prepend is not None:
            rows = [[prepend, *row] for row in rows]
        return rows if isinstance(text, list) else rows[0]


def _documents(split):
    paths = [p for p in list_parquet_files() if p.endswith(VAL_FILENAME) == (split == "val")]
    if not paths:
        raise FileNotFoundError(f"no {split} shards in {DATA_DIR}")
    epoch = 1
    while True:
        for path in paths:
            yield pq.read_table(path).column("text").to_pylist(), epoch
        epoch += 1


def make_dataloader(tokenizer, B, T, split):
    """Rows of T + 1 tokens cut from the BOS-separated document stream (simpler than upstream's packer)."""
    stream = []
    for docs, epoch in _documents(split):
        for row in tokenizer.encode(docs, prepend=tokenizer.get_bos_token_id()):
            stream.extend(row)
            while len(stream) >= B * (T + 1):
                block = torch.tensor(stream[:B * (T + 1)]).view(B, T + 1)
                del stream[:B * (T + 1)]
                yield block[:, :-1], block[:, 1:], epoch


def evaluate_bpb(model, tokenizer, batch_size):
    """Upstream's way of scoring: the loss the model itself returns for (inputs, targets) of the val shard."""
    token_bytes = torch.load(os.path.join(TOKENIZER_DIR, "token_bytes.pt"))
    loader = make_dataloader(tokenizer, batch_size, MAX_SEQ_LEN, "val")
    nats = nbytes = 0.0
    for _ in range(max(1, EVAL_TOKENS // (batch_size * MAX_SEQ_LEN))):
        x, y, _ = next(loader)
        loss = model(x, y, reduction="none").view(-1)
        sizes = token_bytes[y.reshape(-1)]
        nats += float((loss * (sizes > 0)).sum())
        nbytes += float(sizes.sum())
    return nats / (math.log(2) * nbytes)
