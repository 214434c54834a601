"""False-claim control across a lab: each claim is one test in a stream of tests, so the level of test j is
set by LOND (Javanmard & Montanari, 2018): alpha_j = alpha * gamma_j * (discoveries before j + 1).
With independent tests this keeps the expected share of false claims among all claims at or below alpha,
however many tests a lab makes. Earlier discoveries earn later tests more level.
"""

from __future__ import annotations

from scipy.special import zeta

#: gamma_j = c / j^1.5, summing to 1: a lab's first claims get most of the level.
_EXPONENT = 1.5
_C = 1.0 / float(zeta(_EXPONENT))


def gamma(j: int) -> float:
    return _C / j**_EXPONENT


def level(alpha: float, j: int, discoveries: int) -> float:
    """The level of the lab's j-th claim test (1-based), given the claims made before it."""
    if j < 1:
        raise ValueError("tests are numbered from 1")
    return min(alpha, alpha * gamma(j) * (discoveries + 1))
