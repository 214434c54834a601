"""The tiny-gpt data: corpus, vocabulary and the fixed train/validation split.  PROTECTED.

Pure Python (no numpy needed). The first ~90% of the corpus (cut at a paragraph boundary) is for
training; the rest is the held-out validation text that evaluate.py scores.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "data" / "corpus.txt"
CORPUS_SHA256 = "dd18cbbe877b2cc77d9291647cc1d0bac6ef62f3b8cb558cda57b8fafca0451f"
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


def encode(s: str) -> list[int]:
    index = {ch: i for i, ch in enumerate(vocab())}
    return [index[ch] for ch in s]


@lru_cache(maxsize=1)
def split_point() -> int:
    """Character index where validation starts: the first paragraph start after TRAIN_FRACTION."""
    t = text()
    return t.index("\n", int(len(t) * TRAIN_FRACTION)) + 1


@lru_cache(maxsize=1)
def _ids() -> tuple[int, ...]:
    return tuple(encode(text()))


def train_ids() -> list[int]:
    """Token ids of the training text."""
    return list(_ids()[: split_point()])


def val_text() -> str:
    """The held-out validation text. Training code must not use it."""
    return text()[split_point():]


def val_ids_with_context(context: int) -> tuple[list[int], int]:
    """Ids of the validation text preceded by `context` characters of the text before it.

    Returns (ids, start): the characters to score are ids[start:]; ids[:start] is real preceding text.
    """
    if not 0 <= context <= split_point():
        raise ValueError(f"context must be between 0 and {split_point()}, got {context}")
    return list(_ids()[split_point() - context:]), context


if __name__ == "__main__":
    t = text()
    print(f"corpus: {len(t)} characters, {len(t.encode('utf-8'))} bytes, vocab {len(vocab())}")
    print(f"train: {split_point()} characters, val: {len(val_text())} characters "
          f"({len(val_text().encode('utf-8'))} bytes)")
