"""Attention for the speedrun pack's train_gpt.py: FA3 from the Hugging Face hub when it loads, else torch-native.

PROTECTED (written by `labmind pack speedrun`). train_gpt.py uses this module where upstream used the hub's
`flash_attn_interface`, so its call
`flash_attn_varlen_func(q, k, v, cu_seqlens_q=s, cu_seqlens_k=s, max_seqlen_q=m, max_seqlen_k=m, causal=True,
softmax_scale=c, window_size=(left, 0))` stays as it was. q, k, v are (T, H, D): one packed stream of documents
whose starts are `s` (int32, ascending, first 0, padded at the end with T; a repeated value is an empty
document). Query i attends to key j if and only if both lie in the same document, j <= i and i - j <= left
(left < 0: no limit). That is FA3's meaning of a causal varlen window.

The backend is chosen once, at import (environment variable LABMIND_ATTENTION = auto | fa3 | native):
- fa3: `kernels.get_kernel('kernels-community/flash-attn3')`, upstream's kernel, when the `kernels` package is
  installed and the kernel loads (it is downloaded from the hub: this needs the network or a filled cache);
- native: torch only. The stream is cut into blocks of 128 queries; each block attends to the keys of its own
  block and of the blocks before it that the window can reach, through `scaled_dot_product_attention` with a
  boolean mask (same document, causal, within the window). Memory and work grow with T × window, never T².

Timings with the native backend are NOT comparable to FA3 timings (different kernels), and losses may differ in
the last digits (different summation order). `python labmind_attn.py --check` compares the native path with
explicit float64 attention (outputs and gradients, eager and compiled) and exits with status 1 on a mismatch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

#: Queries per block of the native path.
BLOCK = 128


def _load_hub_kernel() -> tuple[Any, str]:
    try:
        from kernels import get_kernel
    except ImportError:
        return None, "the `kernels` package is not installed"
    if not torch.cuda.is_available():
        return None, "no CUDA device"
    try:
        return get_kernel("kernels-community/flash-attn3", version=1).flash_attn_interface, "loaded"
    except Exception as exc:  # offline, no cache, unsupported GPU: any failure means the native path
        return None, f"the hub kernel did not load ({type(exc).__name__}: {str(exc)[:120]})"


def _choose() -> tuple[Any, str]:
    wanted = os.environ.get("LABMIND_ATTENTION", "auto")
    if wanted not in ("auto", "fa3", "native"):
        raise SystemExit(f"LABMIND_ATTENTION must be auto, fa3 or native, got {wanted!r}")
    if wanted == "native":
        return None, "native (LABMIND_ATTENTION=native)"
    kernel, why = _load_hub_kernel()
    if kernel is None and wanted == "fa3":
        raise SystemExit(f"LABMIND_ATTENTION=fa3, but {why}")
    return kernel, ("fa3 (hub kernel)" if kernel is not None else f"native ({why})")


_FA3, BACKEND = _choose() if __name__ != "__main__" else (None, "native (check)")


def doc_ids(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """The document index of every position 0..total-1 (empty documents get no position)."""
    pos = torch.arange(total, device=cu_seqlens.device, dtype=cu_seqlens.dtype)
    return torch.searchsorted(cu_seqlens, pos, right=True) - 1


def native_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, left: int,
                  scale: float | None) -> torch.Tensor:
    """Blocked local attention over a packed stream: (T, H, D) in, (T, H, D) out."""
    t, h, d = q.shape
    span = t if left < 0 else min(t, left)
    n_prev = math.ceil(span / BLOCK)  # key blocks before a query's own block that the window can reach
    pad_t = (-t) % BLOCK
    nblocks = (t + pad_t) // BLOCK
    ids = doc_ids(cu_seqlens.to(torch.int64), t)
    # Padding: queries after T belong to no document (-2) and keys before 0 to none (-3); a padded query
    # still sees itself, so no row of the mask is empty.
    q_ids = F.pad(ids, (0, pad_t), value=-2)
    k_ids = F.pad(ids, (n_prev * BLOCK, pad_t), value=-3)
    qb = F.pad(q, (0, 0, 0, 0, 0, pad_t)).view(nblocks, BLOCK, h, d).transpose(1, 2)
    kp = F.pad(k, (0, 0, 0, 0, n_prev * BLOCK, pad_t))
    vp = F.pad(v, (0, 0, 0, 0, n_prev * BLOCK, pad_t))
    width = (n_prev + 1) * BLOCK
    # unfold: (nblocks, H, D, width) views of the keys each query block can reach
    kb = kp.unfold(0, width, BLOCK).permute(0, 1, 3, 2)
    vb = vp.unfold(0, width, BLOCK).permute(0, 1, 3, 2)
    qpos = torch.arange(nblocks * BLOCK, device=q.device).view(nblocks, BLOCK, 1)
    kpos = (torch.arange(nblocks, device=q.device).view(nblocks, 1, 1) * BLOCK - n_prev * BLOCK
            + torch.arange(width, device=q.device).view(1, 1, width))
    qd = q_ids.view(nblocks, BLOCK, 1)
    kd = k_ids.unfold(0, width, BLOCK).view(nblocks, 1, width)
    mask = (kpos <= qpos) & (qd == kd)
    if left >= 0:
        mask &= (qpos - kpos) <= left
    mask |= (kpos == qpos) & (qd == -2)  # padded queries see themselves only
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask.unsqueeze(1), scale=scale)
    return out.transpose(1, 2).reshape(nblocks * BLOCK, h, d)[:t]


def flash_attn_varlen_func(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens_q: torch.Tensor,
                           cu_seqlens_k: torch.Tensor, max_seqlen_q: Any = None, max_seqlen_k: Any = None,
                           causal: bool = True, softmax_scale: float | None = None,
                           window_size: tuple[int, int] = (-1, -1), **kwargs: Any) -> torch.Tensor:
    """FA3's varlen call (the subset train_gpt.py uses: causal, self-attention, a left window)."""
    if _FA3 is not None:
        return _FA3.flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                                           max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, causal=causal,
                                           softmax_scale=softmax_scale, window_size=window_size, **kwargs)
    if not causal or window_size[1] != 0 or (cu_seqlens_q is not cu_seqlens_k and not torch.equal(
            cu_seqlens_q, cu_seqlens_k)):
        raise NotImplementedError("labmind_attn's native path does causal self-attention with a left window only")
    if kwargs:
        raise NotImplementedError(f"labmind_attn's native path does not take {sorted(kwargs)}")
    return native_varlen(q, k, v, cu_seqlens_q, int(window_size[0]), softmax_scale)


# ------------------------------------------------------------------------------------------- the check


def reference_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, left: int,
                     scale: float | None) -> torch.Tensor:
    """Explicit attention with a dense (T, T) mask, in the inputs' dtype: the definition, for small T."""
    t, _h, d = q.shape
    ids = doc_ids(cu_seqlens.to(torch.int64), t)
    i = torch.arange(t, device=q.device).view(t, 1)
    j = torch.arange(t, device=q.device).view(1, t)
    mask = (j <= i) & (ids.view(t, 1) == ids.view(1, t))
    if left >= 0:
        mask &= (i - j) <= left
    scores = torch.einsum("ihd,jhd->hij", q, k) * (scale if scale is not None else 1 / math.sqrt(d))
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("hij,jhd->ihd", torch.softmax(scores, dim=-1), v)


#: (T, H, D, window, document lengths); lengths summing below T leave the rest as one last document, and a
#: 0 is an empty document (upstream's padding repeats the final offset).
CHECK_CASES = [
    (384, 2, 64, 128, [100, 0, 200]),
    (512, 3, 128, 384, [512]),
    (640, 2, 64, 200, [1, 300, 77, 0, 0]),
    (1024, 2, 64, -1, [600, 424]),
    (1024, 2, 128, 896, [128, 128, 700]),
]


def _cu(lengths: list[int], t: int, pad_to: int, device: str) -> torch.Tensor:
    offsets = [0]
    for n in lengths:
        offsets.append(min(t, offsets[-1] + n))
    offsets += [t] * (pad_to - len(offsets))
    return torch.tensor(offsets, dtype=torch.int32, device=device)


def _rel_l2(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref).norm() / ref.norm().clamp_min(1e-30))


def check(device: str, dtype: torch.dtype, compiled: bool = True, seed: int = 0) -> list[dict[str, Any]]:
    """The native path against float64 explicit attention: outputs and dq/dk/dv, eager and compiled."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    results = []
    for mode in (["eager", "compiled"] if compiled else ["eager"]):
        fn = native_varlen if mode == "eager" else torch.compile(native_varlen, dynamic=False)
        for t, h, d, left, lengths in CHECK_CASES:
            cu = _cu(lengths, t, 16, device)
            q, k, v = (torch.randn(t, h, d, generator=gen).to(device=device, dtype=dtype) for _ in range(3))
            grad = torch.randn(t, h, d, generator=gen).to(device=device, dtype=dtype)
            for x in (q, k, v):
                x.requires_grad_(True)
            scale = 0.12
            start = time.perf_counter()
            out = fn(q, k, v, cu, left, scale)
            out.backward(grad)
            seconds = time.perf_counter() - start
            rq, rk, rv = (x.detach().double().requires_grad_(True) for x in (q, k, v))
            ref = reference_varlen(rq, rk, rv, cu, left, scale)
            ref.backward(grad.double())
            unmasked = reference_varlen(*(x.detach().double() for x in (q, k, v)), _cu([], t, 16, device), -1,
                                        scale)
            results.append({
                "case": f"T={t} H={h} D={d} left={left} docs={lengths}", "mode": mode,
                "out_rel_l2": _rel_l2(out.detach(), ref.detach()),
                "grad_rel_l2": max(_rel_l2(a, b) for a, b in ((q.grad, rq.grad), (k.grad, rk.grad),
                                                              (v.grad, rv.grad))),
                "rounding_floor_rel_l2": _rel_l2(ref.detach().to(dtype), ref.detach()),
                "mask_effect_max_abs": float((ref.detach() - unmasked).abs().max()),
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
    print("| case | mode | out rel_l2 | worst grad rel_l2 | rounding floor | mask effect |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        bad = r["out_rel_l2"] > tol or r["grad_rel_l2"] > tol
        ok = ok and not bad
        print(f"| {r['case']} | {r['mode']} | {r['out_rel_l2']:.2e} | {r['grad_rel_l2']:.2e} | "
              f"{r['rounding_floor_rel_l2']:.2e} | {r['mask_effect_max_abs']:.3g} |" + (" FAIL" if bad else ""))
    print(f"attention_check: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
