"""Knobs of a lab session (as opposed to the task, which says what to optimise)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LabSettings:
    brain: str = "knobs"
    policy: str = "greedy"
    lines: int | None = None  # default: one per slot
    max_experiments: int | None = None  # candidate experiments over the lab's life
    budget_s: float | None = None  # wall-clock for this session
    #: Where runs go (`--slots`, `--gpus`): kept with the lab so that `resume` uses the same slots; None means
    #: the default (one CPU slot, or every GPU nvidia-smi reports).
    slots: int | None = None
    gpus: list[int] | None = None
    sandbox: str = "auto"
    #: Where runs happen: "local" (this machine's slots) or "ray" (a Ray cluster at ray_address, each run
    #: asking for the task's GPUs plus ray_resources such as "H100=1").
    executor: str = "local"
    ray_address: str | None = None
    ray_resources: tuple[str, ...] = ()
    brain_network: bool = False
    seed: int = 0
    #: Prepare proposals ahead of free slots (True), or let each slot wait for its own proposal, as a
    #: sequential propose-then-run loop does (False; used by `labmind bench scheduler` for comparison).
    prefetch: bool = True
    lookahead: int | None = None  # proposals prepared beyond free slots; default: one per slot
    max_brain_failures: int = 5  # consecutive failed proposals before the lab stops
    #: LLM brains: the model for ideas, reflections and the director (default: the brain's own model),
    #: the guard's auditor (layer 6; off when None), and hard spending caps.
    ideas_model: str | None = None
    review_model: str | None = None
    llm_budget_usd: float | None = None
    llm_tokens_per_experiment: int | None = None
    max_repairs: int = 2  # repair attempts (child experiments) per crashed experiment, for brains that repair
    director_every: int | None = None  # candidate verdicts between director reviews; default 2 × active lines
    #: The insight library: a path, "off", or None for the user's default ($LABMIND_LIBRARY, else
    #: ~/.local/share/labmind/library.db).
    library: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
