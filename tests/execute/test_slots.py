from __future__ import annotations

import os

import pytest

from labmind.execute import slots as slots_mod
from labmind.execute.base import Slot
from labmind.execute.slots import detect_gpus, make_slots, plan_slots


def test_gpu_groups_are_disjoint() -> None:
    result, warning = plan_slots([0, 1, 2, 3], None, 2)
    assert result == [Slot(0, (0, 1)), Slot(1, (2, 3))]
    assert warning is None


def test_leftover_gpus_are_a_warning() -> None:
    result, warning = plan_slots([4, 5, 6], None, 2)
    assert result == [Slot(0, (4, 5))]
    assert warning is not None and "[6]" in warning and "unused" in warning


def test_slots_cap_gpu_groups() -> None:
    result, warning = plan_slots([0, 1, 2, 3], 2, 1)
    assert result == [Slot(0, (0,)), Slot(1, (1,))]
    assert warning is not None and "[2, 3]" in warning


def test_too_few_gpus_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 2 GPU"):
        plan_slots([0], None, 2)
    with pytest.raises(ValueError, match="no GPU"):
        plan_slots([], None, 1)


def test_duplicate_gpu_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan_slots([0, 0], None, 1)


def test_cpu_slots_default_and_oversubscription_warning() -> None:
    assert make_slots(None, None, 0) == [Slot(0)]
    assert make_slots(None, 2, 0)[1] == Slot(1)
    cpus = os.cpu_count() or 1
    result, warning = plan_slots(None, cpus + 3, 0)
    assert len(result) == cpus + 3  # an explicit request is honoured...
    assert warning is not None and "share cores" in warning  # ...with a warning
    assert all(s.gpus == () for s in result)
    with pytest.raises(ValueError):
        plan_slots(None, 0, 0)


def test_detect_gpus_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_gpus() == []


def test_detect_gpus_parses_output(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == [0, 1]
    assert slots_mod.make_slots(None, None, 1) == [Slot(0, (0,)), Slot(1, (1,))]
