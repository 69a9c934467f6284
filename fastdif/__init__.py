"""fastdif: find duplicate and similar images, fast. A successor to difPy."""

from ._version import __version__
from .actions import undo_move
from .repository import Repository, build, from_arrays
from .search import SearchResult, search
from .store import load

__all__ = [
    "Repository",
    "SearchResult",
    "build",
    "from_arrays",
    "load",
    "search",
    "undo_move",
    "__version__",
]
