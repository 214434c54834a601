"""The worker side of the ray executor without Ray: bundle → cached repository → patch → run → bytes back."""

from __future__ import annotations

from pathlib import Path

from labmind.execute.base import Change, RunRequest, Slot
from labmind.execute.ray_executor import make_bundle, parse_resources
from labmind.execute.ray_worker import execute_on_worker, unpack_artifacts
from labmind.workspace import git as gitops

from .test_request import _git, repo  # noqa: F401  (the fixture)


def _request(root: Path, base: str, commit: str, tmp: Path, **kwargs: object) -> RunRequest:
    change = Change(base=base, patch=gitops.binary_diff(root, base, commit), commit=commit,
                    tree=gitops.tree_of(root, commit))
    fields: dict = {"run_id": 3, "change": change, "subdir": "task", "timeout_s": 30.0, "metric": "score",
                    "log_path": tmp / "lab" / "run.log", "command": "echo score: $(cat score.txt); cp blob.bin out.bin",
                    "evaluate": "echo score: $(cat score.txt)", "artifacts": ("out.bin",)}
    fields.update(kwargs)
    return RunRequest(**fields)


def test_a_worker_builds_its_cache_once_and_runs_the_patch(repo, tmp_path):  # noqa: F811
    root, base, commit = repo
    bundle = make_bundle(root, base, tmp_path / "bundles")
    fetched = []

    def fetch() -> bytes:
        fetched.append(1)
        return bundle.read_bytes()

    cache = tmp_path / "cache"
    setup = "echo ran >> ../../setup-count.txt"  # runs in the cache's checkout of the task directory
    results = [execute_on_worker(_request(root, base, commit, tmp_path, bring_back=tmp_path / "back"), Slot(0),
                                 "none", fetch, setup, "test node", root=cache) for _ in range(2)]
    assert len(fetched) == 1, "the bundle is fetched once per host"
    assert (cache / "setup-count.txt").read_text() == "ran\n", "setup runs once per host"
    for result in results:
        assert result.outcome.status == "ok" and result.outcome.metric == 2.5 and result.outcome.where == "test node"
        assert b"labmind: trusted evaluation" in result.log
        assert result.artifacts is not None
    unpack_artifacts(results[0].artifacts, tmp_path / "out")
    assert (tmp_path / "out" / "out.bin").read_bytes() == bytes(range(256)) * 4
    assert not gitops.has_commit(cache / f"repo-{base[:20]}.git", commit), "the lab's commit never travelled"
    assert [p.name for p in cache.iterdir() if p.name.startswith("run-")] == [], "each run's scratch is removed"


def test_resources_are_parsed_with_errors_that_name_the_flag():
    assert parse_resources(["H100=1", "fast_disk=0.5", "TPU"]) == {"H100": 1.0, "fast_disk": 0.5, "TPU": 1.0}
    for bad in ("H100=0", "=1", "H100=x", "GPU=1"):
        try:
            parse_resources([bad])
        except ValueError as exc:
            assert "--resources" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_bad_ray_options_are_refused_before_anything_is_written(tmp_path):
    from lab.toy import labmind, make_toy

    task = make_toy(tmp_path / "task")
    proc = labmind("run", str(task), "--executor", "ray", "--ray-address", "127.0.0.1:1", "--plain", check=False,
                   timeout=120)
    assert proc.returncode == 1
    assert "no Ray cluster answers at --ray-address 127.0.0.1:1" in proc.stderr or "needs Ray" in proc.stderr
    proc = labmind("run", str(task), "--ray-address", "127.0.0.1:1", "--plain", check=False)
    assert proc.returncode == 1 and "add --executor ray" in proc.stderr
    proc = labmind("run", str(task), "--executor", "slurm", "--plain", check=False)
    assert proc.returncode == 1 and "--executor must be local or ray" in proc.stderr
    assert not (task / ".labmind" / "lab.db").exists()
