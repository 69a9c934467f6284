"""fastdif: find duplicate and similar images, fast. A successor to difPy."""

from .repository import Repository, build
from .search import SearchResult, search

__version__ = "0.1.0"

__all__ = ["Repository", "SearchResult", "build", "search", "__version__"]
