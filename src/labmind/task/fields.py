"""Field types of the task file beyond pydantic's own: sizes, resource limits, globs that stay inside the
task directory, environment variable names, finite numbers. Each error says what is allowed."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
UNLIMITED = "unlimited"


def parse_size(value: Any) -> int:
    """Bytes from 1048576, "512K", "256M", "8G", "1.5GiB" or "2T" (binary units: 1G = 1024³ bytes)."""
    if isinstance(value, bool):
        raise ValueError('expected a size such as "512M" or "8G"')
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value).strip())
        if not match:
            raise ValueError(f'expected a size such as "512M", "8G" or a number of bytes, got {value!r}')
        size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise ValueError(f"expected a positive size, got {value!r}")
    return size


def show_size(size: int) -> str:
    """A size as people write it: 4 GiB, 512 MiB, 1.5 GiB."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def _bounded_size(low: int, high: int, *, unlimited: bool) -> Any:
    def parse(value: Any) -> int | None:
        if unlimited and value in (UNLIMITED, None):
            return None
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"expected a size between {show_size(low)} and {show_size(high)}, got {value!r}")
        return size

    return parse


def _memory(value: Any) -> int | str | None:
    if value == "auto":
        return "auto"
    return _bounded_size(64 << 20, 1 << 50, unlimited=True)(value)


def _processes(value: Any) -> int | None:
    if value in (UNLIMITED, None):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f'expected a number of processes (16 to 4194304) or "unlimited", got {value!r}')
    if not 16 <= value <= 4_194_304:
        raise ValueError(f"expected 16 to 4194304 processes (threads count too), got {value}")
    return value


#: `[run] memory`: "auto" (the machine's memory shared between the slots), a size, or None (unlimited).
MemoryLimit = Annotated[int | Literal["auto"] | None, BeforeValidator(_memory)]
ProcessLimit = Annotated[int | None, BeforeValidator(_processes)]
FileSizeLimit = Annotated[int | None, BeforeValidator(_bounded_size(1 << 20, 1 << 50, unlimited=True))]
LogSizeLimit = Annotated[int, BeforeValidator(_bounded_size(64 << 10, 64 << 30, unlimited=False))]


def check_globs(value: list[str]) -> list[str]:
    """Globs relative to the task directory that stay inside it. An absolute or empty glob, or one that
    climbs out with `..`, would match files labmind does not manage (or nothing, or everything)."""
    for item in value:
        if not item.strip():
            raise ValueError('an empty glob matches nothing; give a path relative to the task directory, '
                             'e.g. "train.py"')
        if "\0" in item:
            raise ValueError(f"{item!r} contains a NUL character")
        if item.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", item):
            raise ValueError(f"{item!r} is an absolute path; globs are relative to the task directory, "
                             'e.g. "data/*.bin"')
        parts = item.replace("\\", "/").split("/")
        if ".." in parts:
            raise ValueError(f"{item!r} climbs out of the task directory with '..'; globs stay inside it")
        if item.strip() in (".", "./", "*/..") or all(p in ("", ".") for p in parts):
            raise ValueError(f"{item!r} names the task directory itself; name files or folders inside it")
        if any("**" in part and part != "**" for part in parts):
            raise ValueError(f"{item!r}: '**' must be a whole path component, e.g. \"data/**/*.bin\"")
        if {".git", ".labmind"} & set(parts):
            raise ValueError(f"{item!r} names labmind's or git's own files (.labmind, .git)")
    return value


Globs = Annotated[list[str], AfterValidator(check_globs)]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Variables runs need as they are (or labmind sets): a task may not use one to carry its seed.
RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "SHLVL", "IFS", "ENV",
                          "TERM", "TZ", "LANG", "LC_ALL", "TMPDIR", "PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES",
                          "CUDA_DEVICE_ORDER", "LABMIND_SEED", "LABMIND_RUN_TOKEN", "LABMIND_GPUS"})
_RESERVED_PREFIXES = ("LD_", "PYTHON", "BASH_", "LABMIND_", "LC_")


def check_env_name(name: str, *, seed: bool = False) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name (letters, digits and _, not starting "
                         'with a digit), e.g. "SEED"')
    if seed and (name in RESERVED_ENV or name.startswith(_RESERVED_PREFIXES)):
        raise ValueError(f"{name!r} is a variable runs need (or labmind sets); pick a name of your own, "
                         'e.g. "SEED"')
    return name


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]
