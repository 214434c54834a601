"""The local executor: runs on this machine's GPUs/CPUs, one run per slot, each run request materialised as
worktrees of the user's repository (see materialise.py) and run by `PreparedRunner`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from labmind.execute.base import RunOutcome, RunRequest, Slot
from labmind.execute.cgroups import Cgroups
from labmind.execute.materialise import Checkouts, run_request
from labmind.execute.prepared import EVAL_SEPARATOR, PreparedRunner, scrub_env, with_interpreter
from labmind.execute.procs import kill_by_token
from labmind.execute.sandbox import Sandbox

__all__ = ["EVAL_SEPARATOR", "LocalExecutor", "scrub_env", "with_interpreter"]


class LocalExecutor:
    """Runs RunRequests on this machine's slots; see docs/architecture.md (executor)."""

    def __init__(self, slots: list[Slot], sandbox: Sandbox, checkouts: Checkouts, *, grace_s: float = 5.0,
                 network: bool = False, cgroups: Cgroups | Literal["auto"] | None = "auto") -> None:
        self.runner = PreparedRunner(slots, sandbox, grace_s=grace_s, network=network, cgroups=cgroups)
        self.checkouts = checkouts

    @property
    def slots(self) -> list[Slot]:
        return self.runner.slots

    @property
    def sandbox_name(self) -> str:
        return self.runner.sandbox_name

    @property
    def limits_mechanism(self) -> str:
        return self.runner.limits_mechanism

    async def run(self, request: RunRequest, slot: Slot) -> RunOutcome:
        return await run_request(request, slot, self.runner, self.checkouts)

    def adopt(self, commit: str, worktree: Path) -> bool:
        self.checkouts.adopt(commit, worktree)
        return True

    def kill_leftovers(self, tokens: list[str]) -> int:
        return kill_by_token(tokens)

    def unavailable(self) -> str | None:
        return None

    def close(self) -> None:
        self.checkouts.clear()
