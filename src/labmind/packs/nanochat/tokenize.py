"""The tokenizer step of `labmind pack nanochat`, run as a subprocess inside the new task directory:

    python -m labmind.packs.nanochat.tokenize TASK_DIR --split val=PATH [--split holdout=PATH] --max-tokens N

It imports the task's prepare.py (upstream's, adapted to the pack's data root and the task's tokenizer/
folder), trains the tokenizer with upstream's own `train_tokenizer()` (rustbpe on the training shards) unless
the task already holds one, then encodes each evaluation split's documents with upstream's Tokenizer, BOS
before each document, and writes the concatenated stream (at most N tokens) to data/<split>.bin as
little-endian integers. A subprocess keeps upstream's module-level imports and state out of labmind's own.
The last line of output is `LABMIND_TOKENIZE_RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from labmind.packs.upstream import file_sha256

RESULT_MARKER = "LABMIND_TOKENIZE_RESULT "
ENCODE_BATCH = 1024


def encode_split(tokenizer, parquet: Path, max_tokens: int, dest: Path) -> dict[str, object]:
    """Documents of `parquet`, each as BOS + its tokens, concatenated and cut at max_tokens, to `dest`."""
    import numpy as np
    import pyarrow.parquet as pq

    bos = tokenizer.get_bos_token_id()
    dtype = np.dtype("<u2") if tokenizer.get_vocab_size() <= 1 << 16 else np.dtype("<u4")
    pieces, total, documents = [], 0, 0
    file = pq.ParquetFile(parquet)
    for group in range(file.num_row_groups):
        texts = [t for t in file.read_row_group(group, columns=["text"]).column("text").to_pylist()
                 if isinstance(t, str)]
        for start in range(0, len(texts), ENCODE_BATCH):
            for ids in tokenizer.encode(texts[start:start + ENCODE_BATCH], prepend=bos):
                take = ids[:max_tokens - total]
                pieces.append(np.asarray(take, dtype=dtype))
                total += len(take)
                documents += 1
                if total >= max_tokens:
                    break
            if total >= max_tokens:
                break
        if total >= max_tokens:
            break
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stream.tofile(dest)
    return {"file": dest.name, "dtype": dtype.name, "tokens": len(stream), "documents": documents,
            "truncated": total >= max_tokens, "sha256": file_sha256(dest)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=Path)
    parser.add_argument("--split", action="append", default=[], help="NAME=PARQUET")
    parser.add_argument("--max-tokens", type=int, required=True)
    args = parser.parse_args(argv)
    task = args.task.resolve()
    os.chdir(task)
    sys.path.insert(0, str(task))
    import prepare  # the task's adapted copy of upstream's prepare.py

    start = time.time()
    trained = False
    if not (Path(prepare.TOKENIZER_DIR) / "tokenizer.pkl").is_file():
        prepare.train_tokenizer()
        trained = True
    tokenizer_seconds = time.time() - start
    tokenizer = prepare.Tokenizer.from_directory()
    result = {"vocab_size": tokenizer.get_vocab_size(), "bos_token_id": tokenizer.get_bos_token_id(),
              "seq_len": prepare.MAX_SEQ_LEN, "tokenizer_trained": trained,
              "tokenizer_seconds": round(tokenizer_seconds, 1), "splits": {}}
    for item in args.split:
        name, _, path = item.partition("=")
        t0 = time.time()
        info = encode_split(tokenizer, Path(path), args.max_tokens, task / "data" / f"{name}.bin")
        info["seconds"] = round(time.time() - t0, 1)
        result["splits"][name] = info
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
