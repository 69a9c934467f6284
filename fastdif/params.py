"""Validation of public parameters: one place for the messages users see."""

from __future__ import annotations

import os
from numbers import Real

SIMILARITY_MSE = {"duplicates": 0.0, "similar": 5.0}


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise TypeError naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(
            f'Invalid value for "{name}" parameter: must be of type BOOL, got {value!r}.'
        )
    return value


def check_int_range(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int in ``low..high``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f'Invalid value for "{name}" parameter: must be of type INT, got {value!r}.'
        )
    if not low <= value <= high:
        raise ValueError(
            f'Invalid value for "{name}" parameter: must be between {low} and {high}, got {value}.'
        )
    return value


def check_in_folder(value: object) -> bool | str:
    """``in_folder``: False (one search), True or "subfolders"; returned as given.

    True is difPy's meaning: each input (a folder with its sub-folders, or a
    file) is searched on its own. "subfolders": each folder on its own.

    Raises TypeError for a value that is neither a bool nor a string, and
    ValueError for any other string; both name the parameter and the values
    allowed.
    """
    if isinstance(value, bool) or (isinstance(value, str) and value == "subfolders"):
        return value
    error = ValueError if isinstance(value, str) else TypeError
    raise error(
        'Invalid value for "in_folder" parameter: must be True, False or "subfolders", '
        f"got {value!r}."
    )


#: difPy's message for its renamed ``lazy`` parameter (``-la``/``--lazy`` on its command line).
LAZY_RENAMED = (
    'Parameter "-la" / "lazy" was renamed to "-dim" / "same_dim" with difPy v4.2. '
    "Please update your script."
)

#: difPy's message for the similarity levels it removed in 3.0.8.
SIMILARITY_LEVELS_REMOVED = (
    'Since difPy v3.0.8, "similarity" parameter only accepts "duplicates" and "similar" '
    "as input options."
)


def check_processes(value: object) -> int:
    """``processes``, the CPU cores to use (processes or threads), 1..cores; None: all cores."""
    cores = os.cpu_count() or 1
    if value is None:
        return cores
    return check_int_range("processes", value, 1, cores)


def check_similarity(value: object) -> float:
    """Map ``similarity`` to an MSE threshold on the 0..255 scale."""
    if isinstance(value, str):
        if value in SIMILARITY_MSE:
            return SIMILARITY_MSE[value]
        if value in ("low", "normal", "high"):
            raise ValueError(f"{SIMILARITY_LEVELS_REMOVED} A number >= 0 is an MSE threshold.")
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, Real) or value != value:
        raise ValueError(
            'Invalid value for "similarity" parameter: must be "duplicates", "similar" '
            "or of type INT or FLOAT."
        )
    if value < 0:
        raise ValueError(f'Invalid value for "similarity" parameter: must be >= 0, got {value}.')
    return float(value)


#: Fewest rows per tile by default: below this, per-tile overhead dominates.
MIN_DEFAULT_CHUNKSIZE = 1024


def check_chunksize(value: object, n_images: int) -> int:
    """Rows per tile of the chunked path: default ``round(1_000_000 / N)``, at least 1,024."""
    if value is None:
        return max(MIN_DEFAULT_CHUNKSIZE, round(1_000_000 / max(n_images, 1)))
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f'Invalid value for "chunksize" parameter: must be of type INT, got {value!r}.'
        )
    if value < 1:
        raise ValueError(f'Invalid value for "chunksize" parameter: must be >= 1, got {value}.')
    return value
