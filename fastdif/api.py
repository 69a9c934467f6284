"""The facade: ``build`` and ``search``. Checks parameters once, then runs a pipeline.

The build pipeline (:mod:`fastdif.pipelines.build`) and the search pipeline
(:mod:`fastdif.pipelines.search`) choose between the local backend
(:mod:`fastdif.backends.local`) and the Dask one (:mod:`fastdif.backends.dask`).
"""

from __future__ import annotations

import os
import warnings

from . import params
from .io.cache import resolve_cache
from .io.decisions import Decisions
from .io.discover import validate_directories
from .model import BuildOptions, Criteria, Repository
from .pipelines import build as building
from .pipelines import search as searching
from .result import SearchResult


def build(
    *directory: str | os.PathLike | list,
    recursive: bool = True,
    in_folder: bool | str = False,
    limit_extensions: bool = True,
    px_size: int = 50,
    show_progress: bool = True,
    processes: int | None = None,
    cache: str | os.PathLike | bool | None = None,
    scheduler=None,
    store: str | os.PathLike | None = None,
    reference=None,
    **kwargs,
) -> Repository:
    """Find and decode every image under ``directory`` into a repository.

    Parameters
    ----------
    *directory : str, os.PathLike or list of them
        Folders or single files to search; a saved repository (a store)
        among them is loaded as one (not with ``in_folder`` or ``store``).
    recursive : bool, default True
        Walk sub-folders.
    in_folder : bool or "subfolders", default False
        True (difPy's meaning): search each input on its own, a folder with
        its sub-folders; matches never cross inputs, and the result is keyed
        by input (see :mod:`fastdif.pipelines.build`). "subfolders": search each
        folder on its own. False: one search of everything.
    limit_extensions : bool, default True
        Read only files with an extension Pillow registers; others are
        reported in ``invalid_files`` as "Unsupported file type".
    px_size : int, default 50
        Thumbnail side in pixels, 10..5000.
    show_progress : bool, default True
        Show a progress bar on stderr.
    processes : int, optional
        CPU cores to use, 1..os.cpu_count(): here the decoding processes.
        None uses all cores.
    cache : str, os.PathLike or bool, optional
        Thumbnail cache (an SQLite file, see :mod:`fastdif.io.cache`): files
        whose resolved path, size and modification time are unchanged are not
        decoded again. A path names the cache file (or a folder to hold it);
        True uses the default file under ``$XDG_CACHE_HOME/fastdif`` (or
        ``~/.cache/fastdif``); None or False (default) decodes every file.
        What the cache did is in ``stats["process"]["build"]["cache"]``; a
        corrupt cache is moved aside with a :class:`fastdif.io.cache.CacheWarning`.
    scheduler : dask.distributed.Client, optional
        Decode as Dask tasks on this client's cluster (needs the ``dask``
        extra); the workers must see the files at the same paths. See
        :mod:`fastdif.backends.dask`.
    store : str or os.PathLike, optional
        A folder the thumbnails are written to (uint8) as they are decoded,
        which becomes a saved repository (:func:`fastdif.load` reads it);
        the returned repository is memory-mapped from it. A build stopped
        and run again resumes; run on a finished store, it updates it
        (unchanged files copied, new and changed ones decoded, vanished
        ones dropped). With ``scheduler``: a folder to create, on storage
        the workers share, which the workers write (not with ``cache``).
    reference : str, os.PathLike, list of them, or Repository, optional
        A library to check the new images in ``directory`` against: folders
        or files, decoded as ``directory`` is (with the same ``cache``), or a
        repository (:func:`fastdif.load` of a saved one). The result's
        ``reference`` holds it; a search then reports only matches that
        involve a new image, and never compares two library images. A file
        found in both is a library image only. Not with ``in_folder`` or
        ``store``.

    Returns
    -------
    Repository

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        For invalid parameters or missing paths; the message names the parameter.
    FileExistsError
        ``store`` exists and is not a fastdif store this build can update
        (a link, a user's folder, other settings), or something else took
        its name while it was built: that is left as it was, and the
        message says where the finished store is.
    fastdif.io.partial.PartialBuildError
        ``store``'s partial folder (``.NAME.partial`` beside it) is a link,
        not a folder, not a fastdif build, another build's, or made with
        other settings; nothing in it is written or removed.
    OSError
        The disk filled while the store was written (``errno.ENOSPC``):
        what was decoded is journaled; running the same build again when
        there is room resumes it.
    ImportError
        ``scheduler`` is given but Dask is not installed.
    """
    _no_unknown_keywords("build", kwargs)
    paths = validate_directories(directory)
    options = BuildOptions(
        recursive=params.check_bool("recursive", recursive),
        in_folder=params.check_in_folder(in_folder),
        limit_extensions=params.check_bool("limit_extensions", limit_extensions),
        px_size=params.check_int_range("px_size", px_size, 10, 5000),
    )
    resources = building.Resources(
        show_progress=params.check_bool("show_progress", show_progress),
        processes=processes,
        cache=resolve_cache(cache),
        scheduler=scheduler,
        store=None if store is None else os.path.abspath(os.fspath(store)),
    )
    if reference is not None and (options.in_folder is not False or store is not None):
        raise ValueError('"reference" cannot be combined with "in_folder" or "store".')
    return building.build(paths, options, resources, reference)


def _no_unknown_keywords(function: str, kwargs: dict) -> None:
    """Raise for keyword arguments a function does not take (difPy's message for ``lazy``).

    difPy's legacy keywords (:data:`fastdif.params.LEGACY_KEYWORDS`) are
    ignored, as difPy 4.2 ignores them, with a DeprecationWarning each.
    """
    if "lazy" in kwargs:
        raise ValueError(params.LAZY_RENAMED)
    for name in kwargs:
        if name not in params.LEGACY_KEYWORDS:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")
    for name in kwargs:
        # stacklevel 3: the caller of build or search, so Python shows it in scripts.
        warnings.warn(params.legacy_keyword(function, name), DeprecationWarning, stacklevel=3)


def search(
    dif: Repository,
    similarity: str | float = "duplicates",
    rotate: bool = True,
    same_dim: bool = True,
    show_progress: bool = True,
    processes: int | None = None,
    chunksize: int | None = None,
    scheduler=None,
    reference: Repository | None = None,
    within_new: bool = True,
    keep=None,
    decisions=None,
    show_done: bool = False,
    flip: bool = False,
    color: bool = True,
    normalize: bool = False,
    **kwargs,
) -> SearchResult:
    """Find duplicate and similar images in a repository made by :func:`build`.

    Parameters
    ----------
    dif : Repository
    similarity : "duplicates", "similar", "near" or float, default "duplicates"
        MSE threshold on the 0..255 scale: "duplicates" is 0, "similar" is 5;
        "near" adds near copies (crops, overlays, tone edits: docs/modes.md).
    rotate : bool, default True
        Also compare rotations by 90, 180 and 270 degrees; the smallest MSE counts.
    same_dim : bool, default True
        Compare only images of the same (width, height), in either orientation.
    show_progress : bool, default True
        Show a progress bar on stderr.
    processes : int, optional
        CPU cores to use, 1..os.cpu_count(): here the kernels' threads.
        None uses all cores.
    chunksize : int, optional
        Rows per tile of the chunked path (groups of more than 5,000 images,
        and every group with ``scheduler``); default ``round(1_000_000 / N)``,
        at least 1,024 (4,096 with ``scheduler``).
    scheduler : dask.distributed.Client, optional
        Run the search as Dask tasks on this client's cluster (needs the
        ``dask`` extra); the result is the same as without. See
        :mod:`fastdif.backends.dask`.
    reference : Repository, optional
        A library to check ``dif``'s images against (default
        ``dif.reference``, set by ``build(..., reference=...)``): only
        matches that involve an image of ``dif`` are reported, and pairs of
        library images are never compared (an exact search, pruned by the
        mean window and block bounds, so a large library costs little). A
        library image is always the key of its group and never in
        ``lower_quality``. Not with a ``dif`` built with ``in_folder``.
    within_new : bool, default True
        With a library: also match ``dif``'s images with each other. False
        reports only matches with the library.
    keep : str or list of str, optional
        The rule that chooses each group's key (the file kept): criteria in
        order, then path order: "resolution", "size", "newest", "oldest",
        "format:raw>png>heif>jpeg>webp", "prefer:PATH[|PATH...]",
        "avoid:PATH[|PATH...]" (see docs/curate.md). Default (None)
        ``["resolution", "size"]``. A library image stays its group's key.
        Why each key was kept is in ``stats["process"]["search"]["keep"]``.
    decisions : str, os.PathLike or dict, optional
        A decision file or document (see docs/curate.md): two files marked
        "not a duplicate" are never in one group; a group marked done is
        left out. Members are identified by the SHA-256 of their bytes.
        ``stats["process"]["search"]["decisions"]`` says what they did.
    show_done : bool, default False
        With ``decisions``: keep the groups marked done in the result.
    flip : bool, default False
        Also compare the mirror image (the horizontal flip): with ``rotate``
        the smallest MSE over the eight symmetries of the square, without it
        over the image and its mirror image. How each member matched its
        key, where rotated or mirrored (e.g. "flipped horizontally"), is in
        ``stats["process"]["search"]["transforms"]`` (with ``rotate`` too).
    color : bool, default True
        False: compare the luma of the thumbnails (ITU-R BT.601, Pillow's
        "L"), so greyscale and sepia copies match; MSE on the 0..255 scale.
    normalize : bool, default False
        True: compare thumbnails normalised to zero mean and a contrast of 50
        (per channel, or the luma with ``color=False``), so brightness and
        contrast edits match; the threshold is an MSE between pictures of
        that contrast. With either option an image whose luma standard
        deviation is below 10 (flat: a wall, a sky) is compared as plain
        MSE compares it; see docs/modes.md. Each option makes a float32
        copy of the thumbnails (px * px * 12 bytes per image) for the search.

    Returns
    -------
    SearchResult

    Raises
    ------
    ValueError, TypeError
        For invalid parameters; the message names the parameter.
    ImportError
        ``scheduler`` is given but Dask is not installed.
    """
    _no_unknown_keywords("search", kwargs)
    _check_repository(dif)
    near = isinstance(similarity, str) and similarity == "near"  # crops: other dimensions
    criteria = Criteria(
        max_mse=params.check_similarity(similarity),
        rotate=params.check_bool("rotate", rotate),
        same_dim=params.check_bool("same_dim", same_dim) and not near,
        flip=params.check_bool("flip", flip),
        color=params.check_bool("color", color),
        normalize=params.check_bool("normalize", normalize),
        near=near,
    )
    curation = searching.Curation(
        within_new=params.check_bool("within_new", within_new),
        rule=params.check_keep(keep),
        show_done=params.check_bool("show_done", show_done),
        marks=None if decisions is None else Decisions.of(decisions),
        library=dif.reference if reference is None else reference,
    )
    show_progress = params.check_bool("show_progress", show_progress)
    execution = searching.Execution(show_progress, processes, chunksize, scheduler)
    return searching.search(dif, criteria, curation, execution)


def _check_repository(dif) -> None:
    expected = "the object returned by fastdif.build"
    params.check_type("dif", dif, Repository, expected, show_type=True)
