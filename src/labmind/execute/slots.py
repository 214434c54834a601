"""Slots: disjoint GPU groups (or CPU places) so that no two runs ever share a device."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from labmind.execute.base import Slot

log = logging.getLogger(__name__)


def detect_gpus(timeout_s: float = 10.0) -> list[int]:
    """GPU indices reported by nvidia-smi; empty when it is missing, fails or hangs."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    indices = []
    for line in result.stdout.splitlines():
        try:
            indices.append(int(line.strip()))
        except ValueError:
            continue  # e.g. "No devices were found"
    return indices


def gpu_device_nodes(timeout_s: float = 10.0) -> dict[int, str]:
    """nvidia-smi GPU index -> its /dev/nvidia<minor> node, matched through the PCI bus id in
    /proc/driver/nvidia. Empty when any part is unavailable (then sandboxes fall back to all of /dev)."""
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=index,pci.bus_id", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    if result.returncode != 0:
        return {}
    nodes: dict[int, str] = {}
    for line in result.stdout.splitlines():
        index, _, bus = (part.strip() for part in line.partition(","))
        # nvidia-smi prints an 8-digit PCI domain (00000000:00:06.0); /proc uses 4 (0000:00:06.0).
        info = Path("/proc/driver/nvidia/gpus") / bus.lower()[-12:] / "information"
        try:
            text = info.read_text()
        except OSError:
            return {}
        minor = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Device Minor")), "")
        if not (index.isdigit() and minor.isdigit()) or not Path(f"/dev/nvidia{minor}").exists():
            return {}
        nodes[int(index)] = f"/dev/nvidia{minor}"
    return nodes


def _gpu_slots(gpus: list[int], slots: int | None, gpus_per_run: int) -> tuple[list[Slot], str | None]:
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"GPU list {gpus} names a GPU twice; give each index once")
    if len(gpus) < gpus_per_run:
        found = f"only {len(gpus)} GPU(s) {gpus}" if gpus else "no GPU"
        raise ValueError(
            f"the task needs {gpus_per_run} GPU(s) per run but {found} available; "
            f"lower [run] gpus or pass more GPUs with --gpus"
        )
    groups = [tuple(gpus[i : i + gpus_per_run]) for i in range(0, len(gpus) - gpus_per_run + 1, gpus_per_run)]
    notes = []
    if slots is not None and slots < len(groups):
        groups = groups[:slots]
    elif slots is not None and slots > len(groups):
        notes.append(f"asked for {slots} slots but {len(gpus)} GPU(s) make only {len(groups)}")
    used = {g for group in groups for g in group}
    unused = [g for g in gpus if g not in used]
    if unused:
        notes.append(f"GPU(s) {unused} left unused ({gpus_per_run} GPU(s) per run)")
    return [Slot(index=i, gpus=group) for i, group in enumerate(groups)], "; ".join(notes) or None


def _cpu_slots(slots: int | None) -> tuple[list[Slot], str | None]:
    cpus = os.cpu_count() or 1
    wanted = 1 if slots is None else slots
    warning = None
    if wanted > cpus:
        # Honour an explicit request (I/O-bound or sleeping runs), but say that runs will share cores.
        warning = (f"{wanted} CPU slots on a machine with {cpus} CPU(s): runs will share cores, so timings "
                   "and throughput may be noisier")
    return [Slot(index=i) for i in range(wanted)], warning


def plan_slots(gpus: list[int] | None, slots: int | None, gpus_per_run: int) -> tuple[list[Slot], str | None]:
    """Slots plus a warning (or None) about what was capped or left unused.

    gpus=None detects GPUs. With gpus_per_run > 0 the GPUs are cut into disjoint groups in the order
    given; `slots` caps their number. Too few GPUs for one run is an error; leftovers are a warning.
    CPU tasks get `slots` CPU slots (default 1); more than the CPU count is allowed with a warning.
    """
    if gpus_per_run < 0:
        raise ValueError(f"gpus per run must be >= 0, got {gpus_per_run}")
    if slots is not None and slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    if gpus_per_run == 0:
        return _cpu_slots(slots)
    return _gpu_slots(detect_gpus() if gpus is None else list(gpus), slots, gpus_per_run)


def make_slots(gpus: list[int] | None, slots: int | None, gpus_per_run: int) -> list[Slot]:
    """plan_slots without the warning, which is logged instead."""
    result, warning = plan_slots(gpus, slots, gpus_per_run)
    if warning:
        log.warning(warning)
    return result
