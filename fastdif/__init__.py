"""fastdif: find duplicate and similar images, fast (a difPy-compatible successor).

The public names are imported on first use (PEP 562): ``import fastdif`` loads
neither Numba nor the search code, so a decoding worker process, which imports
this package on its way to :mod:`fastdif.io.decode`, starts in a fraction of
the time. ``fastdif.build``, ``from fastdif import search`` and every
``fastdif.<submodule>`` work as if they were imported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# First: it tells Numba where to cache the kernels before Numba is imported.
# Every module that imports Numba is inside this package, so this runs before.
from . import kernel_cache  # noqa: F401
from ._version import __version__

if TYPE_CHECKING:  # the names as type checkers and editors see them
    from .actions import undo_move
    from .api import build, search
    from .model import Repository, from_arrays, load
    from .result import SearchResult

#: Each public name, and the module it is imported from on first use.
_HOMES = {
    "Repository": ".model",
    "SearchResult": ".result",
    "build": ".api",
    "from_arrays": ".model",
    "load": ".model",
    "search": ".api",
    "undo_move": ".actions",
}

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


def __getattr__(name: str):
    """Import a public name, or a submodule (``fastdif.api``), when first asked for."""
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home, __name__), name)
        globals()[name] = value  # asked once: later lookups skip this function
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise  # the submodule exists, and an import inside it failed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
