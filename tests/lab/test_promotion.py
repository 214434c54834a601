"""Promotion, the one function behind the referee's verdicts and a person's review: real store, real git."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from labmind.lab import promotion
from labmind.paths import LabPaths
from labmind.store import Store

TASK_JSON = json.dumps({"task": {"name": "p", "editable": ["a.py"]}, "run": {"command": "x"},
                        "metric": {"name": "loss", "goal": "minimize"}})


def repo_with_commit(root: Path) -> str:
    for args in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
                                  "-m", "t"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


def lab(root: Path) -> tuple[Store, int, int, int]:
    store = Store.open(LabPaths(root).db)
    store.create_lab(name="p", task_json=TASK_JSON, repo_root=str(root), task_subdir="", base_commit="c0",
                     branch="labmind/p", settings={})
    base = store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit="c0",
                                status="done")
    store.update_experiment(base, metric=1.0, n_runs=3)
    line = store.add_line("line-1", base)
    exp = store.add_experiment(kind="candidate", line_id=line, parent_id=base, brain="b", base_commit="c0")
    return store, base, line, exp


def test_promote_moves_the_head_and_the_verified_point(tmp_path: Path) -> None:
    store, base, line, exp = lab(tmp_path)
    with store.transaction():
        promotion.promote(store, line, exp, verified=False)
    assert (store.line(line).incumbent_id, store.line(line).verified_id) == (exp, base)  # provisional
    other = store.add_experiment(kind="candidate", line_id=line, parent_id=exp, brain="b", base_commit="c0")
    with store.transaction():
        promotion.promote(store, line, exp, verified=True, move_head=False)  # the line builds on it already
        store.set_incumbent(line, other)
        promotion.promote(store, line, exp, verified=True, move_head=False)
    assert (store.line(line).incumbent_id, store.line(line).verified_id) == (other, exp)


def test_keep_writes_refs_for_a_verified_best_and_reports_git_failures(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    commit = repo_with_commit(repo)
    store, _, _, exp = lab(repo)
    store.update_experiment(exp, verdict="kept", metric=0.9, commit_sha=commit)
    kept = promotion.keep(store, repo, store.experiment(exp))
    assert kept == promotion.Kept(best=False)  # provisional: not a confirmed best, no ref
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)"], cwd=repo, capture_output=True,
                          text=True).stdout.split()
    assert f"refs/labmind/p/kept/{exp}" not in refs
    store.update_experiment(exp, verdict="improved")
    assert promotion.keep(store, repo, store.experiment(exp)) == promotion.Kept(best=True)
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], cwd=repo,
                          capture_output=True, text=True).stdout.splitlines()
    assert f"refs/labmind/p/kept/{exp} {commit}" in refs and f"refs/heads/labmind/p {commit}" in refs
    # Git cannot write the ref (not a repository): the verdict stands and the reason is returned, not raised.
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    failed = promotion.keep(store, elsewhere, store.experiment(exp))
    assert failed.best and failed.error and f"exp {exp}" in failed.error
