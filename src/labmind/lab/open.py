"""Create a new lab or reopen an existing one, holding its writer lock."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from labmind.brains.base import Brain, IdleBrain
from labmind.brains.llm.clients import LLMClients, is_llm_spec
from labmind.brains.registry import make_brain
from labmind.execute.base import Executor
from labmind.execute.local import LocalExecutor
from labmind.execute.materialise import Checkouts
from labmind.execute.sandbox import resolve_sandbox
from labmind.execute.slots import plan_slots
from labmind.guard.audit import Auditor
from labmind.lab.loop import Lab, LabError, Reporter
from labmind.lab.runs import hidden_paths
from labmind.lab.settings import LabSettings
from labmind.library import Library, LibraryError
from labmind.library import resolve as resolve_library
from labmind.library.record import LabIdentity, Librarian
from labmind.paths import LabPaths
from labmind.search import POLICIES, make_policy
from labmind.store import LabLock, Store
from labmind.store.calls import StoreCallLog
from labmind.task import Task, load_task
from labmind.workspace import git as gitops
from labmind.workspace.digests import DigestCapExceeded, digest_entries, protected_entries
from labmind.workspace.scope import matches


@dataclass
class Opened:
    lab: Lab
    lock: LabLock
    store: Store
    created: bool
    warnings: list[str]

    def close(self) -> None:
        self.store.close()
        if self.lab.librarian is not None:
            self.lab.librarian.library.close()
        self.lock.release()


def open_librarian(spec: str | None, task: Task, paths: LabPaths) -> tuple[Librarian | None, str | None]:
    """The lab's librarian over the library `spec` names (a path, "off", None: the user's default). A library
    that cannot be opened leaves the lab without one, with a warning: insights are worth less than the lab."""
    path = resolve_library(spec)
    if path is None:
        return None, None
    try:
        library = Library(path)
    except LibraryError as exc:
        return None, f"running without the insight library: {exc}"
    who = LabIdentity(task=task.name, lab_dir=str(paths.task_dir), family=task.task.family or task.name,
                      tags=tuple(task.task.tags), metric=task.metric.name, goal=task.metric.goal)
    return Librarian(library, who), None


def baseline_digest(repo: gitops.RepoInfo, paths: LabPaths, task: Task) -> tuple[dict[str, str], int]:
    """Digest protected files as committed (what every worktree will contain), not as on disk; also how many
    bytes they hold (it sets the caps of later checks)."""
    tmp = paths.worktrees / "digest"
    gitops.add_worktree(repo.root, tmp, repo.head)
    try:
        task_dir = tmp / repo.subdir if repo.subdir else tmp
        return digest_entries(protected_entries(task_dir, task.task.protected))
    except DigestCapExceeded as exc:
        raise LabError(f"[task] protected: {exc}. Protect the code that reads large data rather than the data, "
                       "or keep the data outside the repository (read-only to runs).") from exc
    finally:
        gitops.remove_worktree(repo.root, tmp)


def _check_new(task_dir: Path, flags: dict[str, Any]) -> tuple[Task, gitops.RepoInfo]:
    task = load_task(task_dir, flags)
    repo = gitops.repo_info(task_dir)
    dirty = [p for p in gitops.dirty_paths(repo) if "/.labmind/" not in f"/{p}"]
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise LabError(f"{task_dir} has uncommitted changes ({shown}). Experiments start from a commit: "
                       "commit or stash them, then run again.")
    check_editable(task_dir, task)
    return task, repo


def check_editable(task_dir: Path, task: Task) -> None:
    """Every `editable` glob must name a committed file: one that names nothing (a typo, a moved file) would
    leave brains nothing to change, and every change they made would be rejected as out of scope."""
    committed = gitops.git(task_dir, "ls-files", "-z", "--", ".").split("\0")
    committed = [p for p in committed if p]
    empty = [g for g in task.task.editable if not any(matches(p, [g]) for p in committed)]
    if empty:
        shown = ", ".join(repr(g) for g in empty)
        raise LabError(f"[task] editable: {shown} match{'es' if len(empty) == 1 else ''} no committed file in "
                       f"{task_dir} (globs are relative to the task directory, e.g. \"train.py\" or \"src/**/*.py\"). "
                       "Fix the glob in labmind.toml (or --edit), or commit the file, then run again.")


_TIME_LIKE = re.compile(r"(time|latency|seconds|duration|elapsed)|(_s|_ms|_us|_ns|_sec|_secs)$", re.IGNORECASE)


def looks_like_time(metric: str) -> bool:
    return bool(_TIME_LIKE.search(metric))


def validate_settings(settings: LabSettings) -> None:
    if settings.lines is not None and settings.lines < 1:
        raise LabError(f"--lines must be at least 1, got {settings.lines}")
    if settings.max_experiments is not None and settings.max_experiments < 0:
        raise LabError(f"--max-experiments must be 0 or more, got {settings.max_experiments}")
    if settings.policy not in POLICIES:
        raise LabError(f"unknown policy {settings.policy!r}; choose one of: {', '.join(POLICIES)}")
    if settings.executor not in ("local", "ray"):
        raise LabError(f"--executor must be local or ray, got {settings.executor!r}")
    if settings.executor != "ray" and (settings.ray_address or settings.ray_resources):
        raise LabError("--ray-address and --resources apply to --executor ray only; add --executor ray")
    if settings.sandbox not in ("auto", "bwrap", "none"):
        raise LabError(f"--sandbox must be auto, bwrap or none, got {settings.sandbox!r}")
    for name, spec in (("--ideas-model", settings.ideas_model), ("--review-model", settings.review_model)):
        if spec and not is_llm_spec(spec):
            raise LabError(f"{name} needs a model spec such as anthropic:claude-sonnet-4-6, openai:gpt-5 or "
                           f"openai-compatible:MODEL@http://HOST:PORT/v1, got {spec!r}")
    if settings.llm_budget_usd is not None and settings.llm_budget_usd < 0:
        raise LabError(f"--llm-budget-usd must be 0 or more, got {settings.llm_budget_usd}")
    if settings.llm_tokens_per_experiment is not None and settings.llm_tokens_per_experiment < 1:
        raise LabError(f"--llm-tokens-per-experiment must be at least 1, got {settings.llm_tokens_per_experiment}")
    if settings.director_every is not None and settings.director_every < 1:
        raise LabError(f"--director-every must be at least 1, got {settings.director_every}")
    if settings.slots is not None and settings.slots < 1:
        raise LabError(f"--slots must be at least 1, got {settings.slots}")
    if settings.max_repairs < 0:
        raise LabError(f"--max-repairs must be 0 or more, got {settings.max_repairs}")


def merge_settings(stored: dict[str, Any], given: dict[str, Any]) -> LabSettings:
    names = {f.name for f in fields(LabSettings)}
    base = LabSettings(**{k: v for k, v in stored.items() if k in names})
    return replace(base, **{k: v for k, v in given.items() if k in names and v is not None})


def ray_executor(settings: LabSettings, task: Task, repo: gitops.RepoInfo, paths: LabPaths, slots: int | None
                 ) -> Executor:
    """The ray executor for this lab (Ray is imported only here, so the local path never needs it)."""
    from labmind.execute.ray_executor import RayExecutor, RayUnavailable, parse_resources
    try:
        resources = parse_resources(list(settings.ray_resources))
    except ValueError as exc:
        raise LabError(str(exc)) from exc
    try:
        return RayExecutor(repo_root=repo.root, bundle_dir=paths.root / "bundles", address=settings.ray_address,
                           gpus_per_run=task.run.gpus, slots=slots, resources=resources, sandbox=settings.sandbox,
                           setup=task.task.setup)
    except RayUnavailable as exc:
        raise LabError(str(exc)) from exc


#: Options that apply to one session only and are never stored with the lab.
SESSION_ONLY = ("budget_s",)


def open_lab(task_dir: Path, *, flags: dict[str, Any], given: dict[str, Any], reporter: Reporter,
             gpus: list[int] | None, slots: int | None, require_existing: bool = False,
             brain: Brain | None = None, session: dict[str, Any] | None = None,
             llm_factory: Any = None) -> Opened:
    """Open (or create) the lab in `task_dir`, holding its writer lock.

    `given` holds the options the user passed explicitly (None = not given); they are stored with the
    lab, except SESSION_ONLY ones and `session` overrides (e.g. `labmind check`'s "no experiments").
    Everything is validated before anything is written. `brain` replaces the one the settings name
    (benchmarks use simulated brains). `llm_factory` replaces how model clients are built (tests).
    """
    task_dir = task_dir.resolve()
    paths = LabPaths(task_dir)
    if require_existing and not paths.db.exists():
        raise LabError(f"no lab to resume in {task_dir}. Start one with `labmind run {task_dir}`.")
    fresh = not paths.root.exists()  # nothing of a lab on disk yet: a failure below leaves nothing either
    if not paths.db.exists():
        _check_new(task_dir, flags)  # a bad task or a non-repository fails before anything is on disk
    lock = LabLock(paths.lock)
    lock.acquire()
    store: Store | None = None
    try:
        store = Store.open(paths.db)
        row = store.lab()
        warnings: list[str] = []
        if row is None:
            task, repo = _check_new(task_dir, flags)
            stored: dict[str, Any] = {}
            protected: dict[str, str] = {}
            protected_bytes: int | None = None
        else:
            stored = dict(row.settings)
            protected = stored.pop("protected_digest", {})
            protected_bytes = stored.pop("protected_bytes", None)
            task = Task.model_validate_json(row.task_json)
            repo = gitops.RepoInfo(root=Path(row.repo_root), subdir=row.task_subdir, head=row.base_commit)
            if any(v not in (None, [], ()) for v in flags.values()):
                warnings.append("this lab already exists: task flags are ignored and its recorded task is used")
        persisted = merge_settings(stored, {k: v for k, v in given.items() if k not in SESSION_ONLY})
        settings = replace(merge_settings(persisted.to_dict(), given), **(session or {}))
        validate_settings(settings)
        sandbox, sandbox_warning = resolve_sandbox(settings.sandbox)  # type: ignore[arg-type]
        if sandbox_warning:
            warnings.append(sandbox_warning)
        # Slots given for this call win (`labmind check` passes them without storing them); otherwise the
        # lab's stored `--slots`/`--gpus`, so that `resume` runs on what `run` was given.
        slots = slots if slots is not None else settings.slots
        if settings.executor == "ray":
            if gpus is not None:
                raise LabError("--gpus names this machine's GPUs; with --executor ray the cluster assigns them "
                               "(use --slots for how many runs at once)")
            executor: Executor = ray_executor(settings, task, repo, paths, slots)
        else:
            plan, slot_warning = plan_slots(gpus if gpus is not None else settings.gpus, slots, task.run.gpus)
            if slot_warning:
                warnings.append(slot_warning)
            if len(plan) > 1 and not task.run.exclusive and looks_like_time(task.metric.name):
                warnings.append(f"the metric {task.metric.name!r} looks like a time, and {len(plan)} slots run at "
                                "once on this machine: runs can disturb each other's timings. Declare `[run] "
                                "exclusive = true` in labmind.toml to run them one at a time")
            executor = LocalExecutor(plan, sandbox, Checkouts(repo.root, paths.worktrees))
        llm = None
        if is_llm_spec(settings.brain) or settings.review_model or settings.ideas_model:
            llm = LLMClients(log=StoreCallLog(paths.db), budget_usd=settings.llm_budget_usd,
                             tokens_per_experiment=settings.llm_tokens_per_experiment,
                             **({"factory": llm_factory} if llm_factory else {}))
        if brain is None and settings.max_experiments == 0:
            # Nothing will be proposed (`labmind check`): a brain that would need what the task lacks (knobs
            # to search, a model) must not stop the baseline from being measured.
            brain = IdleBrain()
        brain = brain or make_brain(settings.brain, task, seed=settings.seed, network=settings.brain_network,
                                    sandbox=sandbox, task_dir=task_dir, transcript_dir=paths.transcripts,
                                    hidden=hidden_paths(paths, repo.root, task), llm=llm,
                                    ideas_model=settings.ideas_model, max_repairs=settings.max_repairs)
        auditor = Auditor(llm.get(settings.review_model)) if llm and settings.review_model else None
        librarian, library_warning = open_librarian(settings.library, task, paths)
        if library_warning:
            warnings.append(library_warning)
        policy = make_policy(settings.policy, settings.seed)
        # Only now, with everything valid, does anything get written.
        if row is None:
            gitops.exclude_lab_dir(repo.root)
            protected, protected_bytes = baseline_digest(repo, paths, task)
            store.create_lab(name=task.name, task_json=task.model_dump_json(), repo_root=str(repo.root),
                             task_subdir=repo.subdir, base_commit=repo.head, branch=f"labmind/{task.name}",
                             settings={**persisted.to_dict(), "protected_digest": protected,
                                       "protected_bytes": protected_bytes})
        else:
            store.update_lab(settings_json=json.dumps({**persisted.to_dict(), "protected_digest": protected,
                                                       "protected_bytes": protected_bytes}))
        brief = ""
        if task.task.brief and (task_dir / task.task.brief).is_file():
            brief = (task_dir / task.task.brief).read_text(encoding="utf-8", errors="replace")
        lab = Lab(paths=paths, task=task, repo=repo, store=store, executor=executor, brain=brain, policy=policy,
                  settings=settings, reporter=reporter, protected_digest=protected, brief_text=brief,
                  protected_bytes=protected_bytes,
                  auditor=auditor, librarian=librarian)
        if auditor is not None:
            auditor.brief = brief
            if librarian is not None:
                # Guard memory: the auditor also reads the cheats a person confirmed in the user's other labs.
                from labmind.library.guard_memory import auditor_notes

                notes = auditor_notes(librarian.library)
                auditor.brief = f"{brief}\n\n{notes}" if notes else brief
        return Opened(lab=lab, lock=lock, store=store, created=row is None, warnings=warnings)
    except BaseException:
        if store is not None:
            created = store.lab() is not None
            store.close()
        else:
            created = False
        lock.release()
        if fresh and not created:
            # A lab that failed before it was created must not leave an empty store that later commands
            # would take for a lab (`resume`, `status`).
            gitops.force_rmtree(paths.root)
        raise
