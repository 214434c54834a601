"""Attention for the nanochat pack's train.py: FA3 from the Hugging Face hub when it loads, else torch-native.

PROTECTED (written by `labmind pack nanochat`). train.py imports this module as `fa3`, so its call
`fa3.flash_attn_func(q, k, v, causal=True, window_size=(left, right))` stays as it was. Inputs and output are
(B, T, H, D); query i attends to key j if and only if j <= i and i - j <= left (left < 0: no limit), which is
FA3's meaning of a causal window.

The backend is chosen once, at import (environment variable LABMIND_ATTENTION = auto | fa3 | native):
- fa3: the kernel upstream loads with `kernels.get_kernel`, when that package is installed and the kernel
  loads (it is downloaded from the hub, so this needs the network or a filled kernel cache);
- native: torch only. A window that covers the whole sequence is plain causal attention: SDPA with
  is_causal. A sliding window is FlexAttention with a block mask inside compiled code, and SDPA with a dense
  boolean mask elsewhere (eager runs, CPU tests, and the export of the model for labmind's evaluator).

Numbers trained with the native backend are not comparable to FA3 numbers: the kernels run at different
speeds, so a fixed time budget buys a different number of steps.

`python labmind_attn.py --check` compares the native paths with explicit float64/float32 attention (outputs
and gradients, eager and compiled) and exits with status 1 on a mismatch.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # torch < 2.5: sliding windows fall back to dense masks
    BlockMask = None  # type: ignore[assignment,misc]
    create_block_mask = None  # type: ignore[assignment]
    flex_attention = None  # type: ignore[assignment]

#: FlexAttention's block size; the block mask skips whole 128×128 tiles outside the window.
FLEX_BLOCK = 128

_block_masks: dict[tuple[int, int, str], Any] = {}
_exporting = False


def _load_hub_kernel() -> tuple[Any, str]:
    """Upstream's FA3 kernel from the hub, or None and why it could not be had."""
    try:
        from kernels import get_kernel
    except ImportError:
        return None, "the `kernels` package is not installed"
    if not torch.cuda.is_available():
        return None, "no CUDA device"
    # Hopper gets varunneal's build; other GPUs the kernels-community one (upstream's choice).
    repo = "varunneal/flash-attention-3" if torch.cuda.get_device_capability() == (9, 0) else \
        "kernels-community/flash-attn3"
    try:
        return get_kernel(repo).flash_attn_interface, f"hub kernel {repo}"
    except Exception as exc:  # offline, missing build for this torch, ...: any failure means fall back
        return None, f"hub kernel {repo} did not load ({type(exc).__name__}: {str(exc)[:200]})"


def _choose() -> tuple[Any, str, str]:
    mode = os.environ.get("LABMIND_ATTENTION", "auto").strip().lower()
    if mode not in ("auto", "fa3", "native"):
        raise ValueError(f"LABMIND_ATTENTION must be auto, fa3 or native, got {mode!r}")
    if mode == "native":
        return None, "native", "LABMIND_ATTENTION=native"
    kernel, why = _load_hub_kernel()
    if kernel is not None:
        return kernel, "fa3", why
    if mode == "fa3":
        raise RuntimeError(f"LABMIND_ATTENTION=fa3 but {why}")
    return None, "native", why


_fa3, BACKEND, REASON = _choose()
if BACKEND == "native":
    print(f"labmind_attn: torch-native attention (SDPA + FlexAttention) because {REASON}; val_bpb and "
          "throughput are NOT comparable to runs with the FA3 kernel", file=sys.stderr)
else:
    print(f"labmind_attn: FA3 ({REASON})", file=sys.stderr)


@contextlib.contextmanager
def exporting() -> Iterator[None]:
    """Within this block every call takes the native, export-friendly path (SDPA, dense masks)."""
    global _exporting
    before, _exporting = _exporting, True
    try:
        yield
    finally:
        _exporting = before


def covers_all(left: int, seq_len: int) -> bool:
    """True when a window of `left` keys back is no restriction at sequence length `seq_len`."""
    return left < 0 or left >= seq_len - 1


def _window_rule(left: int):
    def rule(b, h, q_idx, kv_idx):  # FlexAttention mask_mod: True where the query may see the key
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= left)
    return rule


def block_mask(seq_len: int, left: int, device: torch.device | str) -> Any:
    """The FlexAttention block mask of a causal window, cached by (T, left, device)."""
    key = (seq_len, left, str(torch.device(device)))
    if key not in _block_masks:
        _block_masks[key] = create_block_mask(_window_rule(left), B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len,
                                              device=device, BLOCK_SIZE=FLEX_BLOCK)
    return _block_masks[key]


def prepare(window_sizes: list[tuple[int, int]], seq_len: int, device: torch.device | str) -> None:
    """Build the block masks of every sliding window before torch.compile traces the model, so the compiled
    graph only looks them up (train.py calls this after init_weights)."""
    if _fa3 is not None or create_block_mask is None:
        return
    for left, _ in window_sizes:
        if not covers_all(left, seq_len):
            block_mask(seq_len, left, device)


def dense_mask(seq_len: int, left: int, device: torch.device | str) -> torch.Tensor:
    """(T, T) boolean mask of a causal window: True where query i may see key j."""
    i = torch.arange(seq_len, device=device)[:, None]
    j = torch.arange(seq_len, device=device)[None, :]
    return (j <= i) & (i - j <= left)


def native_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, left: int,
                     *, use_flex: bool | None = None) -> torch.Tensor:
    """Causal attention over (B, T, H, D) tensors with a window of `left` keys back (left < 0: all)."""
    seq_len = q.size(1)
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = kt.size(1) != qt.size(1)
    if covers_all(left, seq_len):
        y = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=gqa)
        return y.transpose(1, 2)
    if use_flex is None:
        # Flex is fast only when compiled; unfused (eager) it materialises every score, so eager code and the
        # export take SDPA with a dense mask instead.
        use_flex = flex_attention is not None and not _exporting and torch.compiler.is_compiling()
    if use_flex:
        y = flex_attention(qt, kt, vt, block_mask=block_mask(seq_len, left, q.device), enable_gqa=gqa)
    else:
        y = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=dense_mask(seq_len, left, q.device),
                                           enable_gqa=gqa)
    return y.transpose(1, 2)


def flash_attn_func(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    window_size: tuple[int, int] = (-1, -1), **kwargs: Any) -> torch.Tensor:
    """FA3's `flash_attn_func` for causal attention with a left window (the only form train.py uses)."""
    if _fa3 is not None and not _exporting:
        return _fa3.flash_attn_func(q, k, v, causal=causal, window_size=window_size, **kwargs)
    if not causal or window_size[1] not in (0, -1) or kwargs:
        raise NotImplementedError(f"the native attention supports causal=True with window_size=(left, 0) only; "
                                  f"got causal={causal}, window_size={window_size}, {sorted(kwargs)}")
    return native_attention(q, k, v, int(window_size[0]))


# ------------------------------------------------------------------------------------------------- check


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, left: int) -> torch.Tensor:
    """Explicit masked softmax attention on (B, T, H, D) tensors, in the inputs' dtype."""
    seq_len, heads = q.size(1), q.size(2)
    if k.size(2) != heads:  # grouped-query attention: each key/value head serves heads // kv_heads queries
        k = k.repeat_interleave(heads // k.size(2), dim=2)
        v = v.repeat_interleave(heads // v.size(2), dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(q.size(-1))
    allowed = dense_mask(seq_len, seq_len if left < 0 else left, q.device)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", torch.softmax(scores, dim=-1), v)


#: (B, T, H, H_kv, D, left): full windows (both spellings), sliding windows narrower than a flex block and a
#: few blocks wide, and grouped-query attention.
CHECK_CASES = [
    (2, 256, 4, 4, 64, 255),
    (2, 256, 4, 4, 64, 128),
    (2, 256, 4, 4, 64, 40),
    (1, 256, 2, 2, 32, -1),
    (2, 256, 4, 2, 64, 96),
]


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def check(device: str, dtype: torch.dtype, cases: list[tuple[int, ...]] | None = None, compiled: bool = True,
          seed: int = 0) -> list[dict[str, Any]]:
    """Compare the native paths (eager: dense SDPA; compiled: flex) with float64 and float32 references.

    Each case feeds fresh random inputs in `dtype` and a random output gradient, and records the worst
    relative L2 error of the output and of dq/dk/dv, the output's max abs error, what rounding the exact result
    to `dtype` alone costs, and how far the windowed answer is from plain causal attention (a check that
    ignored the window would see that difference as an error)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    results = []
    modes = ["eager", "compiled"] if compiled else ["eager"]
    for mode in modes:
        fn = native_attention if mode == "eager" else torch.compile(native_attention, dynamic=False)
        for b, t, h, hkv, d, left in cases or CHECK_CASES:
            if mode == "compiled" and not covers_all(left, t):
                block_mask(t, left, device)  # built outside the compiled code, as prepare() does in training
            q, k, v = (torch.randn(b, t, n, d, generator=gen).to(device=device, dtype=dtype)
                       for n in (h, hkv, hkv))
            grad = torch.randn(b, t, h, d, generator=gen).to(device=device, dtype=dtype)
            flex = mode == "compiled" and not covers_all(left, t)
            backward = not (flex and torch.device(device).type == "cpu")  # flex has no CPU backward
            for x in (q, k, v):
                x.requires_grad_(backward)
            start = time.perf_counter()
            out = fn(q, k, v, left, use_flex=flex)
            if backward:
                out.backward(grad)
            seconds = time.perf_counter() - start
            got = [out.detach(), q.grad, k.grad, v.grad]
            refs = {}
            for ref_dtype in (torch.float64, torch.float32):
                rq, rk, rv = (x.detach().to(ref_dtype).requires_grad_(True) for x in (q, k, v))
                ref = reference_attention(rq, rk, rv, left)
                ref.backward(grad.to(ref_dtype))
                refs[ref_dtype] = [ref.detach(), rq.grad, rk.grad, rv.grad]
            exact = refs[torch.float64]
            full = reference_attention(*(x.detach().double() for x in (q, k, v)), -1)
            results.append({
                "case": f"B={b} T={t} H={h} Hkv={hkv} D={d} left={left}",
                "path": "sdpa-causal" if covers_all(left, t) else ("flex" if flex else "sdpa-mask"),
                "mode": mode,
                "out_max_abs": float((got[0].double() - exact[0]).abs().max()),
                "out_rel_l2": _rel_l2(got[0], exact[0]),
                "grad_rel_l2": max(_rel_l2(g, e) for g, e in zip(got[1:], exact[1:], strict=True)) if backward
                else None,
                "fp32_ref_rel_l2": _rel_l2(refs[torch.float32][0], exact[0]),
                "rounding_floor_max_abs": float((exact[0].to(dtype).double() - exact[0]).abs().max()),
                "window_effect_max_abs": float((exact[0] - full).abs().max()),
                "seconds": seconds,
            })
    return results


def tolerance(dtype: torch.dtype) -> float:
    """Largest relative L2 error accepted: a few ulps of the operand precision."""
    return 1e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-4


def _main(argv: list[str]) -> int:
    if argv[:1] != ["--check"]:
        print("usage: python labmind_attn.py --check [--cpu] [--no-compile]", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() and "--cpu" not in argv else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    results = check(device, dtype, compiled="--no-compile" not in argv)
    tol = tolerance(dtype)
    ok = True
    print(f"labmind_attn check: device {device}, dtype {str(dtype).removeprefix('torch.')}, torch "
          f"{torch.__version__}, tolerance rel_l2 <= {tol:g}")
    print("| case | path | mode | out max abs | out rel_l2 | worst grad rel_l2 | rounding floor | window effect |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        grad = r["grad_rel_l2"]
        bad = r["out_rel_l2"] > tol or (grad is not None and grad > tol)
        ok = ok and not bad
        shown = "n/a (no CPU backward)" if grad is None else f"{grad:.2e}"
        print(f"| {r['case']} | {r['path']} | {r['mode']} | {r['out_max_abs']:.2e} | {r['out_rel_l2']:.2e} | "
              f"{shown} | {r['rounding_floor_max_abs']:.2e} | {r['window_effect_max_abs']:.3g} |"
              + (" FAIL" if bad else ""))
    print(f"attention_check: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
