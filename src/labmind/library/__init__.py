"""The library: insights and dead ends with provenance, shared by every lab of a user (see docs/library.md)."""

from labmind.library.model import Effect, Insight, Kind, KnobChange, Provenance, Status
from labmind.library.store import ENV, OFF, Hit, Library, LibraryError, default_path, resolve

__all__ = [
           "ENV",
           "OFF",
           "Effect",
           "Hit",
           "Insight",
           "Kind",
           "KnobChange",
           "Library",
           "LibraryError",
           "Provenance",
           "Status",
           "default_path",
           "resolve",
]
