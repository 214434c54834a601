"""The nanochat pack's data step: documents from a source, split three ways, written as upstream's shards.

Sources (`--data`):
- `builtin`: the Python sources under this interpreter's site-packages, which exist on any machine with
  Python, so the task trains offline. Files are walked in sorted order; empty, whitespace-only, larger than
  1 MB, non-UTF-8 and byte-identical repeated files are skipped.
- `local:PATH`: a text file, a parquet file with a `text` column, or a directory of them (walked in sorted
  order; other files are read as UTF-8 text, and files that are not are skipped).
- `climbmix`: upstream's own shards from the Hugging Face hub (needs the network): the first N training
  shards as they are, shard 06542 (upstream's pinned validation shard) for validation and shard 06541 for
  the held-out split.

For `builtin` and `local`, each file (each parquet row) goes wholly to one split, by a hash of its path:
`int(sha1(salt + key)[:8], 16) % 100` below `val_percent` is validation, the next `holdout_percent` are
held out, the rest trains. Documents longer than `max_doc_chars` are cut at line boundaries, because
upstream's packer crops a document longer than a row and drops the rest. Each split is shuffled with a fixed
seed. Training documents are written as `shard_NNNNN.parquet` files (one `text` column, row groups of 1024)
in the data root, which is all train.py can read; validation and held-out documents are only tokenized
(tokenize.py) into the task's hidden data/ folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labmind.packs.upstream import file_sha256

SPLITS = ("train", "val", "holdout")
SHUFFLE_SEED = 1337
ROW_GROUP = 1024
MAX_FILE_BYTES = 1_000_000
DEFAULT_MAX_DOC_CHARS = 6000
#: Upstream's source, shards and pinned validation shard.
CLIMBMIX_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_VAL_SHARD = 6542
CLIMBMIX_HOLDOUT_SHARD = 6541


class DataSourceError(Exception):
    """The data source cannot give a usable corpus."""


@dataclass(frozen=True)
class DataSpec:
    """What `--data` asked for."""

    kind: str  # "builtin", "local" or "climbmix"
    path: Path | None = None

    @property
    def label(self) -> str:
        return f"local:{self.path}" if self.kind == "local" else self.kind

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        if text == "builtin":
            return cls("builtin")
        if text == "climbmix":
            return cls("climbmix")
        if text.startswith("local:") and len(text) > len("local:"):
            path = Path(text[len("local:"):]).expanduser().resolve()
            if not path.exists():
                raise DataSourceError(f"--data {text}: {path} does not exist")
            return cls("local", path)
        raise DataSourceError(f"--data must be builtin, climbmix or local:PATH, got {text!r}")


@dataclass(frozen=True)
class SplitRule:
    val_percent: int = 5
    holdout_percent: int = 5
    salt: str = ""

    def split_of(self, key: str) -> str:
        bucket = int(hashlib.sha1((self.salt + key).encode("utf-8")).hexdigest()[:8], 16) % 100
        if bucket < self.val_percent:
            return "val"
        if bucket < self.val_percent + self.holdout_percent:
            return "holdout"
        return "train"


@dataclass
class Corpus:
    """Documents of each split, in their final (shuffled) order, and how they were found."""

    documents: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    stats: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        """sha256 over every document of every split, in order: equal digests mean equal corpora."""
        h = hashlib.sha256()
        for split in SPLITS:
            for doc in self.documents[split]:
                h.update(split.encode() + b"\0" + doc.encode("utf-8") + b"\0")
        return h.hexdigest()


def chunk(text: str, max_chars: int) -> list[str]:
    """`text` cut at line boundaries into consecutive pieces of at most max_chars (0: no cutting); a line
    longer than max_chars is cut inside the line."""
    if max_chars <= 0 or len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:max_chars])
            line = line[max_chars:]
        if len(current) + len(line) > max_chars:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return pieces


def _regular_files(root: Path, suffix: str | None = None) -> Iterator[Path]:
    """Regular files under root (not through symlinks), in sorted order of their relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if (suffix is None or name.endswith(suffix)) and path.is_file() and not path.is_symlink():
                found.append(path)
    yield from sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _text_of(data: bytes, stats: dict[str, int]) -> str | None:
    if len(data) > MAX_FILE_BYTES:
        stats["skipped_too_large"] += 1
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        stats["skipped_not_utf8"] += 1
        return None
    if not text.strip():
        stats["skipped_empty"] += 1
        return None
    return text


def _collect(items: Iterable[tuple[str, str]], rule: SplitRule, max_doc_chars: int, corpus: Corpus) -> None:
    for key, text in items:
        split = rule.split_of(key)
        corpus.documents[split].extend(chunk(text, max_doc_chars))
        corpus.stats.setdefault(f"{split}_files", 0)
        corpus.stats[f"{split}_files"] += 1


def _finish(corpus: Corpus) -> Corpus:
    for split in SPLITS:
        random.Random(SHUFFLE_SEED).shuffle(corpus.documents[split])
        corpus.stats[f"{split}_documents"] = len(corpus.documents[split])
        corpus.stats[f"{split}_characters"] = sum(len(d) for d in corpus.documents[split])
    if len(corpus.documents["train"]) < 2:
        raise DataSourceError(f"only {len(corpus.documents['train'])} training documents: the tokenizer and the "
                              "shards need at least 2")
    if not corpus.documents["val"]:
        raise DataSourceError("no validation documents: the source is too small for the split (add files or raise "
                              "--val-percent)")
    return corpus


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def builtin_corpus(rule: SplitRule, max_doc_chars: int = DEFAULT_MAX_DOC_CHARS, root: Path | None = None) -> Corpus:
    """Every usable `*.py` file under `root` (default: this interpreter's site-packages)."""
    root = (root or site_packages()).resolve()
    corpus = Corpus(stats={"root": str(root), "files_found": 0, "skipped_empty": 0, "skipped_too_large": 0,
                           "skipped_not_utf8": 0, "skipped_duplicate": 0})
    seen: set[str] = set()

    def items() -> Iterator[tuple[str, str]]:
        for path in _regular_files(root, ".py"):
            corpus.stats["files_found"] += 1
            data = path.read_bytes()
            text = _text_of(data, corpus.stats)
            if text is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:  # vendored copies of one file would otherwise straddle the split
                corpus.stats["skipped_duplicate"] += 1
                continue
            seen.add(digest)
            yield path.relative_to(root).as_posix(), text

    _collect(items(), rule, max_doc_chars, corpus)
    return _finish(corpus)


def local_corpus(path: Path, rule: SplitRule, max_doc_chars: int = DEFAULT_MAX_DOC_CHARS) -> Corpus:
    """Text and parquet files at `path` (a file or a directory)."""
    import pyarrow.parquet as pq

    root = path if path.is_dir() else path.parent
    files = list(_regular_files(path)) if path.is_dir() else [path]
    corpus = Corpus(stats={"root": str(path), "files_found": len(files), "skipped_empty": 0,
                           "skipped_too_large": 0, "skipped_not_utf8": 0, "parquet_rows": 0})

    def items() -> Iterator[tuple[str, str]]:
        for file in files:
            rel = file.relative_to(root).as_posix()
            if file.suffix == ".parquet":
                table = pq.read_table(file, columns=["text"])
                for row, text in enumerate(table.column("text").to_pylist()):
                    corpus.stats["parquet_rows"] += 1
                    if isinstance(text, str) and text.strip():
                        yield f"{rel}#{row}", text
                continue
            # A text file's size limit is the builtin one only for code; prose files may be larger.
            try:
                text = file.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                corpus.stats["skipped_not_utf8"] += 1
                continue
            if not text.strip():
                corpus.stats["skipped_empty"] += 1
                continue
            yield rel, text

    _collect(items(), rule, max_doc_chars, corpus)
    return _finish(corpus)


def write_shards(documents: list[str], directory: Path, shards: int, first_index: int = 0) -> dict[str, str]:
    """Documents in `shards` near-equal consecutive parquet files; returns {file name: sha256}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    shards = max(1, min(shards, len(documents)))
    size, extra = divmod(len(documents), shards)
    out: dict[str, str] = {}
    start = 0
    for i in range(shards):
        end = start + size + (1 if i < extra else 0)
        name = f"shard_{first_index + i:05d}.parquet"
        pq.write_table(pa.table({"text": documents[start:end]}), directory / name, row_group_size=ROW_GROUP)
        out[name] = file_sha256(directory / name)
        start = end
    return out


# --------------------------------------------------------------------------------------- the data root


@dataclass(frozen=True)
class DataRoot:
    """A built source: training shards under `root/data` (upstream's layout, the only data prepare.py and so
    train.py can read) and `root/corpus.json` describing them. Validation and held-out documents are never
    stored here: a training run can read this folder."""

    root: Path
    shards: dict[str, str]
    info: dict[str, Any]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"


def build_corpus_root(spec: DataSpec, corpus: Corpus, data_dir: Path, train_shards: int) -> DataRoot:
    """Write (or reuse, when the same corpus was built before) the data root of a builtin/local corpus."""
    digest = corpus.digest()
    root = data_dir / f"{spec.kind}-{digest[:12]}"
    info_path = root / "corpus.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("docs_sha256") == digest and _shards_intact(root / "data", info["shards"]):
            return DataRoot(root, info["shards"], info)
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=data_dir))
    try:
        shards = write_shards(corpus.documents["train"], staging / "data", train_shards)
        info = {"source": spec.label, "docs_sha256": digest, "shards": shards, "stats": corpus.stats,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (staging / "corpus.json").write_text(json.dumps(info, indent=2))
        if (root / "tokenizer").is_dir():  # a tokenizer trained on this very corpus (the name holds its digest)
            shutil.move(root / "tokenizer", staging / "tokenizer")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)  # a root appears whole: a crash never leaves a half-written one in use
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DataRoot(root, shards, info)


def write_eval_documents(corpus: Corpus, directory: Path) -> dict[str, Path]:
    """The validation and held-out documents as parquet files in `directory` (a private temporary folder),
    for the tokenizer step."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    directory.mkdir(parents=True, exist_ok=True)
    for split in ("val", "holdout"):
        if corpus.documents[split]:
            out[split] = directory / f"{split}.parquet"
            pq.write_table(pa.table({"text": corpus.documents[split]}), out[split], row_group_size=ROW_GROUP)
    return out


def _shards_intact(directory: Path, shards: dict[str, str]) -> bool:
    return all((directory / n).is_file() and file_sha256(directory / n) == sha for n, sha in shards.items())


def download(url: str, dest: Path, attempts: int = 5, timeout: float = 60.0) -> None:
    """`url` to `dest` through a temporary file, retried with backoff (upstream's download policy)."""
    tmp = dest.with_name(dest.name + ".tmp")
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as f:
                shutil.copyfileobj(response, f, length=1 << 20)
            tmp.rename(dest)
            return
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if attempt == attempts:
                raise DataSourceError(f"cannot download {url}: {exc} (climbmix needs the network; offline, use "
                                      "--data builtin or --data local:PATH)") from exc
            time.sleep(min(2 ** attempt, 30))


def build_climbmix_root(data_dir: Path, train_shards: int, eval_dir: Path, base_url: str = CLIMBMIX_URL,
                        attempts: int = 5) -> tuple[DataRoot, dict[str, Path]]:
    """Upstream's shards 0..train_shards-1 in the data root; the pinned validation shard and the held-out
    shard downloaded into `eval_dir` (private, deleted once tokenized)."""
    root = data_dir / f"climbmix-{train_shards}"
    shard_dir = root / "data"
    shard_dir.mkdir(parents=True, exist_ok=True)
    shards = {}
    for index in range(train_shards):
        name = f"shard_{index:05d}.parquet"
        if not (shard_dir / name).is_file():
            download(f"{base_url}/{name}", shard_dir / name, attempts)
        shards[name] = file_sha256(shard_dir / name)
    eval_files = {}
    for split, index in (("val", CLIMBMIX_VAL_SHARD), ("holdout", CLIMBMIX_HOLDOUT_SHARD)):
        eval_files[split] = eval_dir / f"{split}.parquet"
        download(f"{base_url}/shard_{index:05d}.parquet", eval_files[split], attempts)
    stats = {"train_shards": train_shards, "val_shard": CLIMBMIX_VAL_SHARD, "holdout_shard": CLIMBMIX_HOLDOUT_SHARD,
             "base_url": base_url}
    info = {"source": "climbmix", "docs_sha256": None, "shards": shards, "stats": stats}
    (root / "corpus.json").write_text(json.dumps(info, indent=2))
    return DataRoot(root, shards, info), eval_files


def describe(stats: dict[str, Any]) -> str:
    """e.g. "train 73,181 docs, val 4,056 docs, holdout 3,990 docs"."""
    parts = [f"{split} {stats[f'{split}_documents']:,} docs" for split in SPLITS if f"{split}_documents" in stats]
    return ", ".join(parts)
