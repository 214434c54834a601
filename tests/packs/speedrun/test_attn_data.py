"""The speedrun pack's attention fallback against explicit attention, and upstream's shard format."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from labmind.packs.speedrun.data import DataError, read_shard, staged_shards, usable_val_tokens, write_shard

torch = pytest.importorskip("torch")
FILES = Path(__file__).parents[3] / "src" / "labmind" / "packs" / "speedrun" / "files"


@pytest.fixture(scope="module")
def attn() -> Iterator[ModuleType]:
    saved = os.environ.get("LABMIND_ATTENTION")
    os.environ["LABMIND_ATTENTION"] = "native"  # read once, at import
    try:
        spec = importlib.util.spec_from_file_location("labmind_attn_under_test", FILES / "labmind_attn.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del os.environ["LABMIND_ATTENTION"]
        else:
            os.environ["LABMIND_ATTENTION"] = saved
    yield module


def test_native_varlen_matches_explicit_attention_with_documents_and_windows(attn: ModuleType) -> None:
    results = attn.check("cpu", torch.float32, compiled=False)
    assert len(results) == len(attn.CHECK_CASES)
    for r in results:
        assert r["out_rel_l2"] <= attn.tolerance(torch.float32), r
        assert r["grad_rel_l2"] <= attn.tolerance(torch.float32), r
        # the documents and the window change the answer: a path that ignored them would fail the check
        assert r["mask_effect_max_abs"] > 0.1, r


def test_the_fallback_keeps_fa3s_call_and_refuses_what_it_does_not_do(attn: ModuleType) -> None:
    q, k, v = (torch.randn(256, 2, 32) for _ in range(3))
    cu = torch.tensor([0, 100, 256, 256], dtype=torch.int32)
    out = attn.flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=256, max_seqlen_k=256,
                                      causal=True, softmax_scale=0.2, window_size=(64, 0))
    assert torch.allclose(out, attn.reference_varlen(q, k, v, cu, 64, 0.2), atol=1e-5)
    # the first token of a document sees only itself
    assert torch.allclose(out[100], v[100], atol=1e-6)
    with pytest.raises(NotImplementedError):
        attn.flash_attn_varlen_func(q, k, v, cu, cu, causal=False)
    assert attn.BACKEND.startswith("native")


def test_shards_round_trip_in_upstreams_format(tmp_path: Path) -> None:
    tokens = np.array([50256, 1, 2, 3, 50256, 7], dtype=np.uint16)
    write_shard(tmp_path / "s.bin", tokens)
    raw = np.fromfile(tmp_path / "s.bin", dtype=np.int32, count=3)
    assert raw.tolist() == [20240520, 1, 6]
    assert (tmp_path / "s.bin").stat().st_size == 256 * 4 + 2 * 6
    assert read_shard(tmp_path / "s.bin").tolist() == tokens.tolist()
    (tmp_path / "bad.bin").write_bytes(b"\0" * 2048)
    with pytest.raises(DataError, match="magic"):
        read_shard(tmp_path / "bad.bin")


def test_staged_fineweb_shards_need_upstreams_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "data" / "fineweb10B"
    write_shard(folder / "fineweb_train_000001.bin", np.arange(100, dtype=np.uint16))
    write_shard(folder / "fineweb_val_000000.bin", np.arange(50, dtype=np.uint16))
    info = staged_shards(tmp_path / "cache", tmp_path / "task" / "val.bin")
    assert info["root"] == str(tmp_path / "cache") and info["train_shards"] == ["fineweb_train_000001.bin"]
    assert read_shard(tmp_path / "task" / "val.bin").size == 50
    with pytest.raises(DataError, match="data/fineweb10B"):
        staged_shards(tmp_path, tmp_path / "v.bin")


def test_validation_tokens_are_whole_batches() -> None:
    assert usable_val_tokens(10_485_761, 2_097_152, 10_485_760) == 10_485_760
    assert usable_val_tokens(3_311_030, 2_097_152, 10_485_760) == 2_097_152
    with pytest.raises(DataError, match="fewer than one validation batch"):
        usable_val_tokens(2_097_152, 2_097_152, 10_485_760)
