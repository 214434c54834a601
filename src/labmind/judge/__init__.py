"""The judge: noise calibration, minimum effect, confirmation and the one-sided test."""

from labmind.judge.judge import Decision, Judge, Screen
from labmind.judge.stats import Summary, auto_min_effect, one_sided_welch, summarize

__all__ = ["Decision", "Judge", "Screen", "Summary", "auto_min_effect", "one_sided_welch", "summarize"]
