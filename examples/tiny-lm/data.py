"""The tiny-lm data: corpus, vocabulary and the fixed train/validation split.  PROTECTED.

Agents may import this module from train.py but must not change it (labmind digests it before and
after every step). The split is deterministic: the first ~90% of the corpus (cut at a paragraph
boundary) is for training, the rest is the held-out validation text that evaluate.py scores.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "data" / "corpus.txt"
CORPUS_SHA256 = "8b798d0a5c07e768793581c9244e76efa275c7b5ae89d90affed38345d4a9831"
TRAIN_FRACTION = 0.9


class DataError(RuntimeError):
    """The corpus is missing or not the one this task was built with."""


@lru_cache(maxsize=1)
def text() -> str:
    """The whole corpus, checked against its recorded digest."""
    try:
        raw = CORPUS.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read the corpus {CORPUS}: {exc}. Regenerate it with: python data/make_corpus.py"
        ) from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CORPUS_SHA256:
        raise DataError(f"{CORPUS} has sha256 {digest}, expected {CORPUS_SHA256}; restore the committed file")
    return raw.decode("utf-8")


@lru_cache(maxsize=1)
def vocab() -> str:
    """Every character of the corpus, sorted; a character's id is its index here."""
    return "".join(sorted(set(text())))


def encode(s: str) -> np.ndarray:
    index = {ch: i for i, ch in enumerate(vocab())}
    return np.fromiter((index[ch] for ch in s), dtype=np.int32, count=len(s))


@lru_cache(maxsize=1)
def split_point() -> int:
    """Character index where validation starts: the first paragraph start after TRAIN_FRACTION."""
    t = text()
    return t.index("\n", int(len(t) * TRAIN_FRACTION)) + 1


@lru_cache(maxsize=1)
def _ids() -> np.ndarray:
    ids = encode(text())
    ids.setflags(write=False)
    return ids


def train_ids() -> np.ndarray:
    """Token ids of the training text (read-only array)."""
    return _ids()[: split_point()]


def val_text() -> str:
    """The held-out validation text. Training code must not use it."""
    return text()[split_point():]


def val_ids_with_context(context: int) -> tuple[np.ndarray, int]:
    """Ids of the validation text preceded by `context` characters of the text before it.

    Returns (ids, start): the characters to score are ids[start:], and ids[start - context:start]
    is the context of the first one, so every validation character is predicted from real text.
    """
    if not 0 <= context <= split_point():
        raise ValueError(f"context must be between 0 and {split_point()}, got {context}")
    s = split_point()
    return _ids()[s - context:], context


if __name__ == "__main__":
    t = text()
    print(f"corpus: {len(t)} characters, {len(t.encode('utf-8'))} bytes, vocab {len(vocab())}")
    print(f"train: {split_point()} characters, val: {len(val_text())} characters "
          f"({len(val_text().encode('utf-8'))} bytes)")
