"""The data step: sources, the deterministic three-way split, upstream's shard format, ClimbMix downloads."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from labmind.packs.nanochat import data

pq = pytest.importorskip("pyarrow.parquet", reason="the nanochat pack's data step needs pyarrow")


def test_chunk_cuts_at_line_boundaries_and_keeps_every_character() -> None:
    text = "".join(f"line {i:03d} " + "x" * (i % 7) + "\n" for i in range(200))
    pieces = data.chunk(text, 100)
    assert "".join(pieces) == text
    assert all(len(p) <= 100 for p in pieces)
    assert all(p.endswith("\n") for p in pieces)
    long_line = "y" * 250
    assert data.chunk(long_line, 100) == ["y" * 100, "y" * 100, "y" * 50]
    assert data.chunk(text, 0) == [text]


def test_split_rule_is_deterministic_salted_and_near_its_percentages() -> None:
    rule = data.SplitRule(val_percent=5, holdout_percent=5)
    keys = [f"pkg/module_{i}.py" for i in range(20000)]
    splits = [rule.split_of(k) for k in keys]
    assert splits == [data.SplitRule(5, 5).split_of(k) for k in keys]
    assert 0.04 < splits.count("val") / len(keys) < 0.06
    assert 0.04 < splits.count("holdout") / len(keys) < 0.06
    salted = [data.SplitRule(5, 5, salt="secret").split_of(k) for k in keys]
    assert salted != splits and 0.04 < salted.count("val") / len(keys) < 0.06
    # The unsalted rule is the anchor recipe's: int(sha1(path)[:8], 16) % 100 < 5 is validation.
    import hashlib

    key = keys[0]
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 100
    assert (rule.split_of(key) == "val") == (bucket < 5)


def _site_tree(root: Path) -> Path:
    for i in range(60):
        (root / f"pkg{i % 6}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{i % 6}" / f"m{i:02d}.py").write_text(f"def f{i}():\n" + "    return 1\n" * (1 + i % 5))
    (root / "pkg0" / "empty.py").write_text("  \n\n")
    (root / "pkg0" / "binary.py").write_bytes(b"\xff\xfe\x00bad")
    (root / "pkg0" / "huge.py").write_text("x = 1\n" * 200_000)  # > 1 MB
    (root / "pkg1" / "copy_of_m00.py").write_text((root / "pkg0" / "m00.py").read_text())
    (root / "pkg0" / "notes.txt").write_text("not python\n")
    (root / "pkg0" / "link.py").symlink_to(root / "pkg0" / "m06.py")
    return root


def test_builtin_corpus_walks_python_files_and_skips_the_unusable(tmp_path: Path) -> None:
    root = _site_tree(tmp_path / "site")
    corpus = data.builtin_corpus(data.SplitRule(20, 10), max_doc_chars=6000, root=root)
    stats = corpus.stats
    assert stats["files_found"] == 64  # 60 modules, empty, binary, huge, the copy; not the .txt or the link
    assert (stats["skipped_empty"], stats["skipped_not_utf8"], stats["skipped_too_large"],
            stats["skipped_duplicate"]) == (1, 1, 1, 1)
    kept = sum(stats.get(f"{s}_files", 0) for s in data.SPLITS)
    assert kept == 60 and all(stats[f"{s}_files"] > 0 for s in data.SPLITS)
    again = data.builtin_corpus(data.SplitRule(20, 10), max_doc_chars=6000, root=root)
    assert again.digest() == corpus.digest()
    other = data.builtin_corpus(data.SplitRule(20, 10, salt="s"), max_doc_chars=6000, root=root)
    assert other.digest() != corpus.digest()


def test_local_corpus_reads_text_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa

    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"doc{i}.txt").write_text(f"document {i}\n" * 5)
    pq.write_table(pa.table({"text": [f"row {i} text" for i in range(40)] + [None, "  "]}), src / "rows.parquet")
    (src / "blob.bin").write_bytes(b"\x80\x81")
    corpus = data.local_corpus(src, data.SplitRule(10, 10))
    docs = [d for s in data.SPLITS for d in corpus.documents[s]]
    assert len(docs) == 70 and corpus.stats["parquet_rows"] == 42 and corpus.stats["skipped_not_utf8"] == 1
    assert "row 7 text" in docs and "document 3\n" * 5 in docs


def test_a_source_too_small_for_the_split_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("just one document\n")
    with pytest.raises(data.DataSourceError, match="training documents"):
        data.local_corpus(tmp_path / "one.txt", data.SplitRule(5, 5))


def test_shards_have_upstreams_format_and_the_root_is_reused(tmp_path: Path) -> None:
    root = _site_tree(tmp_path / "site")
    corpus = data.builtin_corpus(data.SplitRule(20, 10), root=root)
    built = data.build_corpus_root(data.DataSpec("builtin"), corpus, tmp_path / "data", train_shards=3)
    names = sorted(built.shards)
    assert names == ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    texts = []
    for name in names:
        table = pq.read_table(built.data_dir / name)
        assert table.column_names == ["text"]
        texts += table.column("text").to_pylist()
    assert texts == corpus.documents["train"]
    # Validation and held-out documents never reach the data root, which training runs can read.
    assert sorted(p.name for p in built.root.rglob("*") if p.is_file()) == ["corpus.json", *names]
    stamp = (built.data_dir / names[0]).stat().st_mtime_ns
    again = data.build_corpus_root(data.DataSpec("builtin"), corpus, tmp_path / "data", train_shards=3)
    assert again.root == built.root and (built.data_dir / names[0]).stat().st_mtime_ns == stamp
    evals = data.write_eval_documents(corpus, tmp_path / "eval")
    assert pq.read_table(evals["val"]).column("text").to_pylist() == corpus.documents["val"]


def test_data_spec_parsing(tmp_path: Path) -> None:
    assert data.DataSpec.parse("builtin") == data.DataSpec("builtin")
    assert data.DataSpec.parse(f"local:{tmp_path}") == data.DataSpec("local", tmp_path.resolve())
    with pytest.raises(data.DataSourceError, match="does not exist"):
        data.DataSpec.parse(f"local:{tmp_path / 'absent'}")
    with pytest.raises(data.DataSourceError, match="builtin, climbmix or local:PATH"):
        data.DataSpec.parse("fineweb")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_climbmix_downloads_upstreams_shards_and_keeps_validation_apart(tmp_path: Path) -> None:
    """Against a local stand-in for the hub: training shards 0..N-1 into the data root, the pinned validation
    shard 06542 and the held-out shard 06541 only into the private folder."""
    import pyarrow as pa

    hub = tmp_path / "hub"
    hub.mkdir()
    for index in (0, 1, 6541, 6542):
        pq.write_table(pa.table({"text": [f"shard {index} doc {j}" for j in range(5)]}),
                       hub / f"shard_{index:05d}.parquet")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(hub)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        private = tmp_path / "private"
        private.mkdir()
        root, evals = data.build_climbmix_root(tmp_path / "data", 2, private, base_url=url)
        assert sorted(root.shards) == ["shard_00000.parquet", "shard_00001.parquet"]
        assert pq.read_table(evals["val"]).column("text")[0].as_py() == "shard 6542 doc 0"
        assert pq.read_table(evals["holdout"]).column("text")[0].as_py() == "shard 6541 doc 0"
        assert not list(root.root.rglob("*0654*"))
        with pytest.raises(data.DataSourceError, match="climbmix needs the network"):
            data.build_climbmix_root(tmp_path / "data3", 3, private, base_url=url, attempts=1)
    finally:
        server.shutdown()
