"""The judge: scale, noise, robust summaries, comparisons, screening and verification, false-claim control."""

from labmind.judge.compare import Comparison, compare
from labmind.judge.judge import Judge, Screen, Verification
from labmind.judge.noise import Noise, estimate
from labmind.judge.stats import Summary, summarize
from labmind.scale import MinEffect, Scale, choose_scale

__all__ = ["Comparison", "Judge", "MinEffect", "Noise", "Scale", "Screen", "Summary", "Verification",
           "choose_scale", "compare", "estimate", "summarize"]
