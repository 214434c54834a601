"""Correctness of one call's outputs, judged against a float64 reference (needs torch).

An element passes when |out - exact| <= atol + rtol * |exact| + |ref - exact|, where `exact` is the
reference run in float64 and `ref` the reference in the problem's own dtypes. The last term lets a candidate
be as far from the exact answer as the official reference itself is (TF32 convolutions, bf16 rounding), and
no further: a shortcut that passes against the low-precision reference by sharing its errors but drifts
from the exact result is caught. Without a float64 reference (an op that has no float64 kernel) the
comparison falls back to the reference in its own dtypes. NaN/Inf and an all-zero answer to a non-zero
reference fail, as in SOL-ExecBench.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labmind.packs.kernels.sol_format import Tolerance


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""
    max_abs_error: float = 0.0
    #: The candidate's largest error against float64 divided by the reference's own (1 = as precise).
    error_ratio: float | None = None


def compare(outputs: list[object], exact: list[torch.Tensor] | None, ref: list[torch.Tensor],
            tol: Tolerance) -> Verdict:
    if len(outputs) != len(ref):
        return Verdict(False, f"returned {len(outputs)} outputs, expected {len(ref)}")
    worst, ratios = 0.0, []
    for i, (out, r) in enumerate(zip(outputs, ref, strict=True)):
        if type(out) is not torch.Tensor:  # subclasses (fake/lazy tensors) are not results
            return Verdict(False, f"output {i} is a {type(out).__name__}, not a torch.Tensor")
        if out.shape != r.shape:
            return Verdict(False, f"output {i} has shape {tuple(out.shape)}, expected {tuple(r.shape)}")
        if out.dtype != r.dtype:
            return Verdict(False, f"output {i} has dtype {out.dtype}, expected {r.dtype}")
        verdict = _compare_one(i, out, None if exact is None else exact[i], r, tol)
        if not verdict.passed:
            return verdict
        worst = max(worst, verdict.max_abs_error)
        if verdict.error_ratio is not None:
            ratios.append(verdict.error_ratio)
    return Verdict(True, "", worst, max(ratios) if ratios else None)


#: Elements compared at a time, in float64: bounds the checker's own memory on multi-GiB outputs.
CHUNK = 1 << 24


def _compare_one(i: int, out: torch.Tensor, exact: torch.Tensor | None, ref: torch.Tensor,
                 tol: Tolerance) -> Verdict:
    if out.numel() == 0:
        return Verdict(True)
    if not (out.is_floating_point() or out.is_complex()):
        mismatched = int((out != ref).sum())
        if mismatched:
            return Verdict(False, f"output {i}: {mismatched} of {out.numel()} integer elements differ")
        return Verdict(True)
    flat_o, flat_r = out.reshape(-1), ref.reshape(-1)
    flat_e = exact.reshape(-1).to(out.device) if exact is not None else None
    matched, max_err, ref_max = 0, 0.0, 0.0
    all_zero, ref_zero = True, True
    for start in range(0, flat_o.numel(), CHUNK):
        o = flat_o[start:start + CHUNK].double()
        r = flat_r[start:start + CHUNK].double()
        e = flat_e[start:start + CHUNK].double() if flat_e is not None else r
        finite = torch.isfinite(o)
        if tol.allow_negative_inf:
            finite = finite | (torch.isneginf(o) & torch.isneginf(e))
        if not bool(finite.all()):
            return Verdict(False, f"output {i} has NaN or Inf values")
        all_zero = all_zero and bool((o == 0).all())
        ref_zero = ref_zero and bool((r == 0).all())
        e = torch.where(torch.isfinite(e), e, r)  # the float64 run may overflow where the reference saturates
        err = (o - e).abs()
        ref_err = (r - e).abs()
        matched += int((err <= tol.max_atol + tol.max_rtol * e.abs() + ref_err).sum())
        max_err = max(max_err, float(err.max()))
        ref_max = max(ref_max, float(ref_err.max()))
    if all_zero and not ref_zero:
        return Verdict(False, f"output {i} is all zeros but the reference is not")
    ratio_matched = matched / flat_o.numel()
    if ratio_matched < tol.required_matched_ratio:
        return Verdict(False, f"output {i}: {ratio_matched:.4%} of elements within tolerance "
                              f"(need {tol.required_matched_ratio:.2%}; atol {tol.max_atol:g}, rtol {tol.max_rtol:g}), "
                              f"max abs error {max_err:.3g}", max_err)
    if tol.max_error_cap is not None and max_err > tol.max_error_cap:
        return Verdict(False, f"output {i}: max abs error {max_err:.3g} exceeds the cap {tol.max_error_cap:g}",
                       max_err)
    ratio = None
    if exact is not None:
        ratio = max_err / ref_max if ref_max > 0 else (1.0 if max_err == 0 else float("inf"))
    return Verdict(True, "", max_err, ratio)


def inputs_unchanged(before: list[object], after: list[object]) -> bool:
    """True when every tensor input still holds the values it had before the call."""
    return all(torch.equal(b, a) for b, a in zip(before, after, strict=True) if isinstance(b, torch.Tensor))
