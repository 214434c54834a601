"""The pack-time edits of upstream's files: each anchor must match exactly once, or packing stops."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labmind.packs.nanochat import adapt

from .nckit import FAKE_UPSTREAM

#: Where a real checkout may be (ignored by git): tests that need upstream's own text skip without it.
REAL_UPSTREAM = Path(os.environ.get("LABMIND_NANOCHAT_UPSTREAM", Path(__file__).resolve().parents[3] /
                                    ".upstream" / "autoresearch"))
needs_real = pytest.mark.skipif(not (REAL_UPSTREAM / "train.py").is_file(),
                                reason="checks upstream's own bytes (the pinned sha256 digests) and so needs a "
                                       "karpathy/autoresearch checkout at .upstream/autoresearch (or "
                                       "LABMIND_NANOCHAT_UPSTREAM); labmind does not ship upstream code, so CI has "
                                       "none. The edits themselves run in CI on the stand-in upstream "
                                       "(test_stand_in_upstream_takes_every_edit)")


def test_line_edit_replaces_the_one_line_it_names() -> None:
    edit = adapt.Edit("x", "why", line="B = ", new="B = 2  # edited\n")
    assert adapt.apply_edits("A = 1\nB = 1  # old\nC = B\n", [edit], "f.py") == "A = 1\nB = 2  # edited\nC = B\n"


def test_block_edit_replaces_whole_lines_from_first_to_last() -> None:
    edit = adapt.Edit("x", "why", first="# begin", last="end(", new="new()\n")
    text = "keep\n# begin here\nmiddle\nend(1)\nafter\n"
    assert adapt.apply_edits(text, [edit], "f.py") == "keep\nnew()\nafter\n"


def test_missing_anchor_stops_with_the_edit_named() -> None:
    edit = adapt.Edit("device-batch", "why", line="DEVICE_BATCH_SIZE = 128", new="")
    with pytest.raises(adapt.AdaptError) as err:
        adapt.apply_edits("DEVICE_BATCH_SIZE = 96\n", [edit], "train.py")
    message = str(err.value)
    assert "train.py: edit 'device-batch'" in message and "found it 0 times" in message
    assert "checkout 228791f" in message


def test_duplicated_anchor_is_refused() -> None:
    edit = adapt.Edit("x", "why", line="model.init_weights()", new="")
    with pytest.raises(adapt.AdaptError, match="found it 2 times"):
        adapt.apply_edits("model.init_weights()\nmodel.init_weights()\n", [edit], "train.py")


def test_indented_text_is_not_a_line_anchor() -> None:
    """Anchors match at the start of a line, so a method body with the same words is not mistaken for it."""
    edit = adapt.Edit("x", "why", line="model.init_weights()", new="X\n")
    assert adapt.apply_edits("    model.init_weights()\nmodel.init_weights()\n", [edit], "t.py") == \
        "    model.init_weights()\nX\n"


def test_stand_in_upstream_takes_every_edit() -> None:
    train = adapt.apply_edits((FAKE_UPSTREAM / "train.py").read_text(), adapt.train_edits(64), "train.py")
    prepare = adapt.apply_edits((FAKE_UPSTREAM / "prepare.py").read_text(),
                                adapt.prepare_edits(Path("/data/root"), 7), "prepare.py")
    assert "import labmind_attn as fa3" in train and "get_kernel" not in train
    assert "evaluate_bpb(model" not in train and 'print(f"val_bpb:' not in train
    assert train.rstrip().endswith("labmind_export.save(model, seq_len=MAX_SEQ_LEN, vocab_size=vocab_size)")
    assert "DEVICE_BATCH_SIZE = 64 " in train and "TOTAL_BATCH_SIZE = 524288 " in train
    assert 'seed = int(os.environ.get("SEED", "42"))' in train
    assert "TIME_BUDGET = 7  #" in prepare and "CACHE_DIR = '/data/root'" in prepare
    assert 'TOKENIZER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")' in prepare
    compile(train, "train.py", "exec")
    compile(prepare, "prepare.py", "exec")


@needs_real
def test_real_upstream_matches_the_pinned_digests_and_takes_every_edit() -> None:
    from labmind.packs.nanochat.data import file_sha256

    for name, digest in adapt.UPSTREAM_SHA256.items():
        assert file_sha256(REAL_UPSTREAM / name) == digest
    original = (REAL_UPSTREAM / "train.py").read_text()
    train = adapt.apply_edits(original, adapt.train_edits(64), "train.py")
    prepare = adapt.apply_edits((REAL_UPSTREAM / "prepare.py").read_text(),
                                adapt.prepare_edits(Path("/d"), 300), "prepare.py")
    compile(train, "train.py", "exec")
    compile(prepare, "prepare.py", "exec")
    # Everything but the edited lines is upstream's: the model, optimizer and loop are untouched.
    removed = set(original.splitlines()) - set(train.splitlines())
    assert len(removed) == 14, sorted(removed)  # 5 kernel loading, 2 seed, 2 batch sizes, 4 eval, 1 print
    assert "model = torch.compile(model, dynamic=False)" in train


def test_upstream_moved_on_is_refused_with_the_fix(tmp_path: Path) -> None:
    from labmind.packs.nanochat.build import PackError, check_upstream

    (tmp_path / "train.py").write_text("print('newer upstream')\n")
    (tmp_path / "prepare.py").write_text("\n")
    with pytest.raises(PackError, match="checkout 228791f"):
        check_upstream(tmp_path, any_commit=False)
    info = check_upstream(tmp_path, any_commit=True)
    assert info["matches_pinned"] is False
