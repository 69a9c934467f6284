"""fastdif: find duplicate and similar images, fast (a difPy-compatible successor)."""

# First: it tells Numba where to cache the kernels before Numba is imported.
from . import kernel_cache  # noqa: F401
from ._version import __version__
from .actions import undo_move
from .api import build, search
from .model import Repository, from_arrays, load
from .result import SearchResult

__all__ = [
    "Repository",
    "SearchResult",
    "__version__",
    "build",
    "from_arrays",
    "load",
    "search",
    "undo_move",
]
