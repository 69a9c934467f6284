"""Near copies: the same photo cropped, overlaid or re-exposed, found on the thumbnails.

A near copy ``b`` of a source ``a`` is ``a`` seen through the edits a person
makes: a crop of up to :data:`MAX_CROP` of each side (any aspect), an
overlay (watermark, logo, caption, date stamp, painted digits) on up to
5% of the area, and a tone curve (brightness, contrast, gamma, clipped
highlights), then any of the symmetries the search allows. Everything here
reads the thumbnails a build already holds (``px`` x ``px``, each an exact
area average of the whole image squashed to a square) and the images'
displayed shapes; the only extra per image is :func:`near_features`' 684
bytes of hashes, a function of the thumbnail.

Candidates (approximate; recall measured by ``python -m benchmarks.studies.near``)
    :func:`near_features` hashes each thumbnail's luma: the signs of the 63
    lowest DCT coefficients (8 x 8 less the mean) of each of 81 framings
    (each side cut by each of :data:`CROP_STEPS`; framing 0 the whole
    image) resampled to 32 x 32, and of the whole image with each quadrant
    masked (filled with the mean of the rest: an overlay in that quadrant
    is gone); signs do not change with brightness and contrast.
    :func:`near_candidates` reads only these: a symmetry of a hash is a bit
    operation (:func:`symmetric_hashes`: a mirror flips the bits of odd
    horizontal frequency, a transpose swaps the two frequencies), so no
    thumbnail is read and no DCT computed at search time. Each framing
    under each allowed symmetry is looked up by multi-index hashing: the
    63 bits in :data:`HASH_ORDERS` orders, each cut into
    :data:`HASH_CHUNKS` runs, one lookup table per run; an image whose
    whole-image hash shares a run and is within :data:`MAX_DISTANCE` bits
    is a candidate, as is one whose masked hash of a quadrant is within
    :data:`MASKED_DISTANCE` bits of the turned masked hash of that
    quadrant (the study's logos moved the whole hash by up to 30 bits, the
    masked one of their quadrant by at most 2). No pair is compared unless
    a table holds both.
Verification (exact for its measure)
    :func:`verify_near` takes the image with more pixels as the source and
    searches the crop of it that best aligns with the other (coarse, then
    steps halved down to 0.25% of a side) on a :data:`GRID` x :data:`GRID`
    grid: the source's region resampled by exact area integration of its
    thumbnail, the copy's thumbnail pooled 2 x 2. Then the score: the copy
    against the source's region after the best tone curve, one
    non-decreasing curve for the three channels (:data:`TONE_BINS` bins,
    either way, so clipped highlights fit), its worst cells up to
    :data:`OVERLAY_MAX` of the grid left out (an overlay of 5% of the area
    touches up to 8% of the cells), the mean squared error of the rest on
    the 0..255 scale. An uncropped pair is scored on the thumbnails
    themselves, cell for cell, with no resampling. A pair is near when its
    score is at most :data:`NEAR_MSE`.
Screening (exact: no pair the verifier accepts is screened out)
    :func:`screened` refuses, many candidates at once, only what
    :func:`verify_near` would refuse given the candidate's hint: a symmetry
    whose aspect no crop fits, and, where the crop limits leave no search
    (images of one shape, as one camera's photos), an alignment error above
    :data:`ALIGNMENT_MAX`, computed as the verifier computes it or bounded
    from below (:func:`_alignment_floor`). At 100,000 thumbnails of one
    shape (``--speed``) most candidates are unrelated: the screen leaves
    35,185 of 763,327 to the verifier. Pairs with crops to search are
    all left to it.

What keeps decoys out (each measured on the study's decoys)
    A crop never enlarges: the copy has at most the pixels of the region it
    shows (one pixel to spare on each axis), and the region has the copy's
    aspect (to two pixels). Two shots of one size are therefore compared
    uncropped, and shots of a moving camera are told apart from an edit by
    :func:`_moves`: when the source's framing moved (not cropped) aligns
    clearly better (:data:`MOVE_RATIO`), the pair is two shots. One tone
    curve for all channels, so a hue is never mapped to another. Flat
    images (luma standard deviation below :data:`FLAT_CONTRAST`: walls,
    skies, dark frames) have nothing to align: never near copies (only what
    "similar" finds).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from itertools import product
from typing import NamedTuple

import numpy as np

#: Side of the grid the verifier compares on (half of a 50 px thumbnail).
GRID = 25
#: The largest crop of each side, as a fraction of the source's side.
MAX_CROP = 0.10
#: The largest part of the grid an overlay may cover (its cells are left out).
OVERLAY_MAX = 0.08
#: The score at or below which a pair is near (MSE on the 0..255 scale, per
#: channel). Measured: the closest two different pictures the study's
#: verifier saw scored 19.9 (two pages of text); copies mostly below 2.
NEAR_MSE = 16.0
#: A cell left out with a squared error above this many times :data:`NEAR_MSE` is overlaid.
OVERLAY_FACTOR = 4.0
#: The overlay is on the image whose overlaid cells stand out from the cells
#: around them at least this many times more than the other's (NearMatch.marked).
MARK_RATIO = 3.0
#: How far around (cells, a Gaussian's deviation) the cells predicting an overlaid cell lie.
MARK_REACH = 1.0
#: Camera moves tried (fractions of a side, each axis and both), and how much
#: better one must align for the pair to be two shots, not an edit. Measured:
#: bursts (0.3 to 1.2% moves) at most 0.81, edited copies at least 0.85.
MOVES = (0.0025, 0.005, 0.01, 0.015)
MOVE_RATIO = 0.83
#: The most alignment error a near copy has (NearMatch.alignment): a quick
#: refusal before the tone curve. Copies the study finds stay below 0.45
#: (a caption band); the crops above it score above NEAR_MSE anyway.
ALIGNMENT_MAX = 0.5
#: Below this luma standard deviation (0..255) an image is flat: never a near copy.
FLAT_CONTRAST = 10.0
#: The framings hashed per side: these fractions cut from each end.
CROP_STEPS = (0.0, 0.05, 0.10)
#: Multi-index hashing: the 63 bits in this many orders, each cut into
#: HASH_CHUNKS runs; each run is a lookup table's key.
HASH_ORDERS = 4
HASH_CHUNKS = 4
#: Candidates differ in at most this many of the 63 bits.
MAX_DISTANCE = 12
#: Or their hashes with one quadrant masked differ in at most this many. Measured:
#: the study's logo copies at most 2 (their whole hashes up to 30); 6 would add
#: 2 copies and 16 false pairs to the study's candidates.
MASKED_DISTANCE = 4
#: Bins of the monotone tone curve (equal counts of the source's values).
TONE_BINS = 32
#: Gammas the description is fitted with.
GAMMAS = tuple(np.round(np.geomspace(0.5, 2.0, 15), 4))
#: The eight symmetries of the square: (quarter turns, mirrored first).
SYMMETRIES = tuple((k, f) for f in (False, True) for k in range(4))

_LUMA = np.array([0.299, 0.587, 0.114])
_HASH_SIDE = 32
_FREQUENCIES = 8


#: Version of :func:`near_features`' definition: features stored with
#: another version (in the cache, a saved repository, a store) are made again
#: from the thumbnails.
FEATURES_VERSION = 2


@dataclass(frozen=True)
class NearFeatures:
    """What the near search keeps per image: 684 bytes.

    Every attribute is an array whose first axis is the image, so a set of
    features is stored, joined and indexed field by field (:meth:`take`,
    :meth:`concatenate`, :meth:`empty`).

    Attributes
    ----------
    hashes : uint64 array (N, 81)
        The sign hash of each framing of each thumbnail's luma (framing k
        cuts ``_FRAMINGS[k]``; framing 0 is the whole image), see
        :func:`near_features`.
    masked : uint64 array (N, 4)
        The sign hash of the whole luma with one quadrant masked (top left,
        top right, bottom left, bottom right).
    contrast : float32 array (N,)
        Each thumbnail's luma standard deviation on the 0..255 scale.
    """

    hashes: np.ndarray
    masked: np.ndarray
    contrast: np.ndarray

    def __len__(self) -> int:
        return len(self.contrast)

    def arrays(self) -> dict[str, np.ndarray]:
        """``{field name: array}``, what is stored."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def take(self, index) -> NearFeatures:
        """The features of the images ``index`` (an integer array, a slice or a mask)."""
        return NearFeatures(**{k: v[index] for k, v in self.arrays().items()})

    @staticmethod
    def concatenate(parts) -> NearFeatures:
        """The features of ``parts`` (NearFeatures) one after another."""
        parts = list(parts)
        if not parts:
            return NearFeatures.empty()
        names = parts[0].arrays()
        return NearFeatures(**{k: np.concatenate([p.arrays()[k] for p in parts]) for k in names})

    @staticmethod
    def empty() -> NearFeatures:
        """The features of no image (the dtypes and trailing shapes :func:`near_features` makes)."""
        return near_features(np.zeros((0, GRID * 2, GRID * 2, 3), np.uint8))


@dataclass(frozen=True)
class Candidates:
    """Pairs worth verifying, with the framing their hashes matched at.

    Attributes
    ----------
    i, j : int64 arrays (K,)
        Image indices, ``i < j``.
    source : int64 array (K,)
        The image whose crop was hashed (``i`` or ``j``).
    crop : float64 array (K, 4)
        That crop: fractions cut from the left, right, top and bottom.
    symmetry : int64 array (K,)
        Index into :data:`SYMMETRIES` turning the crop into the other image.
    distance : int64 array (K,)
        Bits the two hashes differ in: the crop's and the other's whole
        hash, or for a pair only the masked hashes found (``crop`` none),
        those of the quadrant they matched at.
    """

    i: np.ndarray
    j: np.ndarray
    source: np.ndarray
    crop: np.ndarray
    symmetry: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.i)


@dataclass(frozen=True)
class NearMatch:
    """How one image is a near copy of another: what was found, and the score.

    Attributes
    ----------
    score : float
        The mean squared error (0..255 scale, averaged over the channels)
        between the copy and the source's region after the best monotone
        tone curve, over the cells left once the worst (up to
        :data:`OVERLAY_MAX` of them) are left out: on the
        :data:`GRID` x :data:`GRID` grid for a crop, on the thumbnails
        themselves uncropped. 0 for identical thumbnails, and for any tone
        curve of one; a match has at most :data:`NEAR_MSE`.
    alignment : float
        How far the framing is from exact: the mean squared difference of
        the standardised lumas (zero mean, unit deviation) on the grid, the
        worst cells left out; 2 - 2r for lumas of correlation r.
    moved : float
        The same with the source's framing moved instead (the smallest over
        the moves of :data:`MOVES`); at least :data:`MOVE_RATIO` times
        ``alignment`` for a match.
    source : int
        Which argument of :func:`verify_near` the crop is of (0: ``a``, 1:
        ``b``): the one with more pixels; between equal sizes, the one with
        the larger sum of values.
    crop : tuple of float
        Fractions of the source cut from its left, right, top and bottom.
    symmetry : tuple of (int, bool)
        Quarter turns (counterclockwise, ``numpy.rot90``) and mirror (columns
        reversed, first) that turn the source's crop into the copy.
    overlay : float
        The part of the grid left out as overlaid: cells whose squared error
        is above :data:`OVERLAY_FACTOR` times :data:`NEAR_MSE`, at most
        :data:`OVERLAY_MAX`.
    marked : int
        Which argument of :func:`verify_near` bears the overlay (0: ``a``,
        1: ``b``): the one whose overlaid cells stand out from the cells
        around them (:func:`_standing_out`) at least :data:`MARK_RATIO` times
        more than the other's; -1 when no overlay was found or neither
        stands out so (a guess for the keep rule, never a reason to remove).
    gain, offset, gamma : float
        The curve ``y = gain * 255 (x / 255) ** gamma + offset`` closest (least
        squares, gamma in :data:`GAMMAS`) to the copy's values ``y`` from the
        source's ``x``, over the kept cells' values that neither clips: what
        :meth:`describe` words, not the score.
    brightness, contrast : float
        What that curve, unclipped, does to the source's mean luma and luma
        standard deviation over the kept cells, less 1 (0.12: 12% brighter).
    """

    score: float
    alignment: float
    moved: float
    source: int
    crop: tuple[float, float, float, float]
    symmetry: tuple[int, bool]
    overlay: float
    marked: int
    gain: float
    offset: float
    gamma: float
    brightness: float
    contrast: float

    def edits(self) -> dict[str, str]:
        """The edits found, in words, by kind: "crop", "symmetry", "overlay", "tone"."""
        parts = {}
        cuts = [
            f"{round(100 * c)}% {side}"
            for c, side in zip(self.crop, ("left", "right", "top", "bottom"), strict=True)
            if c >= 0.005
        ]
        if cuts:
            parts["crop"] = "cropped " + ", ".join(cuts)
        turns, mirrored = self.symmetry
        if turns or mirrored:
            turned = f"turned {90 * turns} degrees" if turns else ""
            parts["symmetry"] = " and ".join(p for p in ("mirrored" * mirrored, turned) if p)
        if self.overlay >= 0.005:
            parts["overlay"] = f"overlay on {round(100 * self.overlay)}% of the area"
        tone = [
            f"{100 * value:+.0f}% {name}"
            for value, name in ((self.brightness, "brightness"), (self.contrast, "contrast"))
            if abs(value) >= 0.03
        ]
        if abs(np.log(self.gamma)) >= 0.05:
            tone.append(f"gamma {self.gamma:.2f}")
        if tone:
            parts["tone"] = ", ".join(tone)
        return parts

    def describe(self) -> str:
        """The edits, in words: "cropped 6% left, 3% top; overlay on 2% of the area; ..."."""
        return "; ".join(self.edits().values()) or "no visible edit"

    def refusal(self, member: int) -> str | None:
        """Why argument ``member`` (0: ``a``, 1: ``b``) must not go as the other's near copy.

        None when it may: the other bears no overlay it has not
        (:attr:`marked`). (Nor is the other a crop of it: a crop has fewer
        pixels, and its source is never removed for it.)
        """
        if self.marked == 1 - member:
            return "its key bears an overlay it has not"
        return None

    def as_copy(self, member: int) -> NearMatch:
        """The match said of argument ``member`` as the copy of the other.

        When ``member`` is the source (of equal pixels: uncropped), the tone
        curve and the symmetry are inverted: "+12% brightness" of the
        brighter one.
        """
        if self.source != member:
            return self
        turns, mirrored = self.symmetry
        return NearMatch(
            **{
                **self.__dict__,
                "source": 1 - member,
                "symmetry": (turns, True) if mirrored else (-turns % 4, False),
                "gain": 1.0 / self.gain if self.gain else 0.0,
                "offset": -self.offset / self.gain if self.gain else 0.0,
                "gamma": 1.0 / self.gamma,
                "brightness": 1.0 / (1.0 + self.brightness) - 1.0,
                "contrast": 1.0 / (1.0 + self.contrast) - 1.0,
            }
        )


# --- resampling ----------------------------------------------------------------------


def area_matrix(n_src: int, lo, hi, n_dst: int) -> np.ndarray:
    """Exact area resampling of the span ``[lo, hi]`` (fractions) of ``n_src`` pixels.

    ``lo`` and ``hi`` are numbers, or arrays of one shape ``S`` for several
    spans at once.

    Returns
    -------
    float64 array (*S, n_dst, n_src)
        Row k averages the piecewise-constant pixels over the k-th of
        ``n_dst`` equal cells of the span; each row sums to 1.
    """
    lo, hi = np.asarray(lo, np.float64)[..., None], np.asarray(hi, np.float64)[..., None]
    edges = (lo + (hi - lo) * (np.arange(n_dst + 1) / n_dst)) * n_src
    start, stop = edges[..., :-1, None], edges[..., 1:, None]
    # A cell overlaps at most `reach` pixels from the first it touches: only those
    # are computed (the others are 0), as the whole row would compute them.
    reach = min(n_src, int(np.ceil(np.max(stop - start, initial=0.0))) + 1)
    pixels = np.clip(np.floor(start), 0, n_src - reach).astype(np.intp) + np.arange(reach)
    overlap = np.minimum(stop, pixels + 1) - np.maximum(start, pixels)
    matrix = np.zeros(start.shape[:-1] + (n_src,))
    rows = np.arange(0, matrix.size, n_src).reshape(start.shape)
    matrix.reshape(-1)[rows + pixels] = np.clip(overlap, 0.0, None) / (stop - start)
    return matrix


def luma(thumbnails) -> np.ndarray:
    """float64 (..., px, px): the BT.601 luma of (..., px, px, 3) thumbnails."""
    return np.asarray(thumbnails, dtype=np.float64) @ _LUMA


def symmetric(image: np.ndarray, symmetry: tuple[int, bool]) -> np.ndarray:
    """``image`` (px, px[, c]) mirrored (columns reversed) if asked, then turned."""
    turns, mirrored = symmetry
    if mirrored:
        image = image[:, ::-1]
    return np.rot90(image, turns)


def unsymmetric(image: np.ndarray, symmetry: tuple[int, bool]) -> np.ndarray:
    """The inverse of :func:`symmetric`."""
    turns, mirrored = symmetry
    image = np.rot90(image, -turns)
    return image[:, ::-1] if mirrored else image


# --- candidates ------------------------------------------------------------------------

_SIDES = tuple(product(CROP_STEPS, CROP_STEPS))  # (cut at the start, cut at the end)
_FRAMINGS = np.array([(left, r, t, b) for t, b in _SIDES for left, r in _SIDES])
#: A hash's bit b is the sign of coefficient b + 1 of the 8 x 8 in row order (ky * 8 + kx):
#: these are the bits of odd kx, the coefficients a mirror negates.
_ODD_KX = np.uint64(0xAAAAAAAAAAAAAAAA >> 1)
#: (row shift, mask) of the three delta swaps that transpose an 8 x 8 bit matrix.
_TRANSPOSE_SWAPS = tuple(
    (np.uint64(s), np.uint64(m))
    for s, m in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))
)
#: The quadrants of an image (0 top left, 1 top right, 2 bottom left, 3 bottom right),
#: and where each lands in the image each symmetry makes: ``[symmetry, quadrant]``.
_QUADRANTS = np.arange(4).reshape(2, 2)
_TURNED_QUADRANTS = np.array([np.argsort(symmetric(_QUADRANTS, s).ravel()) for s in SYMMETRIES])


def _dct_rows(n_src: int) -> np.ndarray:
    """(len(_SIDES) * 8, n_src): each framing of a side resampled to 32, then its 8 DCT rows."""
    dct = _dct()
    return np.concatenate([dct @ area_matrix(n_src, lo, 1.0 - hi, _HASH_SIDE) for lo, hi in _SIDES])


def _dct() -> np.ndarray:
    """(8, 32): the 8 lowest rows of the (unnormalised) DCT-II of 32 samples."""
    x = np.arange(_HASH_SIDE) + 0.5
    return np.cos(np.pi * np.outer(np.arange(_FREQUENCIES), x) / _HASH_SIDE)


def _coefficients(lumas: np.ndarray) -> np.ndarray:
    """(n, framings, 8, 8) low DCT coefficients of every framing of (n, px, px) lumas."""
    rows = _dct_rows(lumas.shape[1])
    sides, f = len(_SIDES), _FREQUENCIES
    c = rows @ lumas @ rows.T  # (n, sides * 8 [y], sides * 8 [x])
    c = c.reshape(-1, sides, f, sides, f).transpose(0, 1, 3, 2, 4)
    return c.reshape(-1, sides * sides, f, f)  # framing = y side * sides + x side


def _masked_coefficients(lumas: np.ndarray) -> np.ndarray:
    """(n, 4, 8, 8) low DCT coefficients of each whole (n, px, px) luma, one quadrant masked.

    The luma resampled to 32 x 32 (as framing 0 is), quadrant q of
    :data:`_QUADRANTS` filled with the mean of the other three: a tone
    curve's straight part scales and shifts the fill with the rest, so the
    signs keep their invariance, and an overlay within the quadrant is gone.
    """
    whole = area_matrix(lumas.shape[1], 0.0, 1.0, _HASH_SIDE)
    resampled = whole @ lumas @ whole.T
    half = _HASH_SIDE // 2
    total = resampled.sum(axis=(1, 2))
    masked = np.repeat(resampled[:, None], 4, axis=1)
    for q, (y, x) in enumerate(product((0, half), (0, half))):
        block = masked[:, q, y : y + half, x : x + half]
        rest = (total - block.sum(axis=(1, 2))) / (3 * half * half)
        block[...] = rest[:, None, None]
    dct = _dct()
    return dct @ masked @ dct.T


def _turned_coefficients(c: np.ndarray, symmetry: tuple[int, bool]) -> np.ndarray:
    """DCT coefficients (..., ky, kx) of the image :func:`symmetric` makes.

    Reversing the columns multiplies coefficient kx by (-1)^kx; a quarter
    turn is that, then a transpose (``rot90(m) == m[:, ::-1].T``).
    """
    sign = (-1.0) ** np.arange(c.shape[-1])
    turns, mirrored = symmetry
    if mirrored:
        c = c * sign
    for _ in range(turns):
        c = np.swapaxes(c * sign, -1, -2)
    return c


def _signs(c: np.ndarray) -> np.ndarray:
    """bool (..., 63): the signs of the 63 coefficients after the mean (True: positive)."""
    return c.reshape(c.shape[:-2] + (-1,))[..., 1:] > 0


def _pack(signs: np.ndarray) -> np.ndarray:
    """uint64 (...): the 63 signs, sign b in bit b."""
    bits = np.concatenate([signs, np.zeros(signs.shape[:-1] + (1,), bool)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little").view("<u8")[..., 0].astype(np.uint64)


def _unpacked(hashes: np.ndarray) -> np.ndarray:
    """uint8 (..., 63): the signs a hash holds (1: positive)."""
    octets = np.ascontiguousarray(hashes, dtype="<u8")[..., None].view(np.uint8)
    return np.unpackbits(octets, axis=-1, bitorder="little")[..., :63]


def symmetric_hashes(hashes: np.ndarray, symmetry: tuple[int, bool]) -> np.ndarray:
    """uint64 (...): the hashes of the images :func:`symmetric` makes, from the bits alone.

    As :func:`_turned_coefficients` turns coefficients: the mirror negates
    every coefficient of odd kx (those bits flipped), a quarter turn is the
    mirror then a transpose (bit of (ky, kx) to (kx, ky)). This defines the
    hash of a turned image: it is the hash of the turned thumbnail's
    coefficients, except for a coefficient exactly 0 that the symmetry
    negates, whose bit (0: not positive) is 1 here. Exact zeros come from
    images symmetric themselves (and flat ones, never searched).
    """
    turns, mirrored = symmetry
    words = np.asarray(hashes, np.uint64)
    if mirrored:
        words = words ^ _ODD_KX
    for _ in range(turns):
        words = _transposed((words ^ _ODD_KX) << np.uint64(1)) >> np.uint64(1)
    return words


def _transposed(words: np.ndarray) -> np.ndarray:
    """uint64: each word as an 8 x 8 bit matrix (bit 8 * row + column), transposed."""
    for shift, mask in _TRANSPOSE_SWAPS:
        t = (words ^ (words >> shift)) & mask
        words = words ^ t ^ (t << shift)
    return words


def near_features(tensors, chunk: int = 1024) -> NearFeatures:
    """Each thumbnail's hashes and contrast, what :func:`near_candidates` indexes.

    Parameters
    ----------
    tensors : array (N, px, px, 3)
        Thumbnails on the 0..255 scale (float32 or uint8, memory-mapped or not).
    chunk : int, default 1024
        Thumbnails read at a time (bounds the memory).

    Returns
    -------
    NearFeatures
        684 bytes per image, a function of the thumbnail alone.
    """
    n = len(tensors)
    hashes = np.empty((n, len(_FRAMINGS)), np.uint64)
    masked = np.empty((n, 4), np.uint64)
    contrast = np.empty(n, np.float32)
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        lumas = luma(tensors[part])
        hashes[part] = _pack(_signs(_coefficients(lumas)))
        masked[part] = _pack(_signs(_masked_coefficients(lumas)))
        contrast[part] = lumas.reshape(len(lumas), -1).std(axis=1)
    return NearFeatures(hashes, masked, contrast)


def _key_weights() -> np.ndarray:
    """float32 (63, tables): a table's key is the signs times its column.

    The 63 bits in :data:`HASH_ORDERS` orders (the first as they are, the
    others fixed permutations), each cut into :data:`HASH_CHUNKS` runs; a
    run's bits weigh 1, 2, 4... in its column (exact in float32: at most 16 bits).
    """
    rng = np.random.default_rng(28)  # fixed: the tables of one version never change
    orders = [np.arange(63)] + [rng.permutation(63) for _ in range(HASH_ORDERS - 1)]
    width = -(-63 // HASH_CHUNKS)
    columns = []
    for order in orders:
        for start in range(0, 63, width):
            column = np.zeros(63, np.float32)
            run = order[start : start + width]
            column[run] = 2.0 ** np.arange(len(run))
            columns.append(column)
    return np.stack(columns, axis=1)


_KEY_WEIGHTS = _key_weights()


def _keys(hashes: np.ndarray) -> np.ndarray:
    """int64 (tables, K): every table's key of (K,) hashes."""
    return (_KEY_WEIGHTS.T @ _unpacked(hashes).T.astype(np.float32)).astype(np.int64)


@dataclass(frozen=True)
class _Tables:
    """Multi-index hashing tables: bucket k of table t is ``order[t, starts[t, k]:starts[t, k+1]]``.

    Attributes
    ----------
    hashes : uint64 array (M,)
        What is indexed.
    order : int64 array (tables, M)
        The entries, sorted by each table's key.
    starts : int64 array (tables, 2**16 + 1)
        Where each key's bucket starts in ``order``.
    """

    hashes: np.ndarray
    order: np.ndarray
    starts: np.ndarray


def _tables(hashes: np.ndarray) -> _Tables:
    """The ``HASH_ORDERS * HASH_CHUNKS`` tables of (M,) hashes (:func:`_keys`)."""
    keys = _keys(hashes)
    size = 1 << -(-63 // HASH_CHUNKS)
    starts = np.zeros((len(keys), size + 1), np.int64)
    for t, column in enumerate(keys):
        np.cumsum(np.bincount(column, minlength=size), out=starts[t, 1:])
    return _Tables(hashes, np.argsort(keys, axis=1, kind="stable"), starts)


def _matches(tables: _Tables, queries: np.ndarray, max_distance: int):
    """(query, entry, distance) int64 arrays (L,): the entries within ``max_distance`` bits.

    Only entries that share a bucket with the query in some table are
    compared; one found in several tables is listed once per table.
    """
    found = []
    for t, keys in enumerate(_keys(queries)):
        lo, hi = tables.starts[t, keys], tables.starts[t, keys + 1]
        which = np.flatnonzero(hi > lo)  # most buckets are empty
        lo, counts = lo[which], (hi - lo)[which]
        which = np.repeat(which, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        entry = tables.order[t, np.repeat(lo, counts) + offsets]
        distance = np.bitwise_count(queries[which] ^ tables.hashes[entry])
        good = distance <= max_distance
        found.append((which[good], entry[good], distance[good]))
    return tuple(np.concatenate(column).astype(np.int64) for column in zip(*found, strict=True))


def near_candidates(
    features: NearFeatures,
    rotate: bool = True,
    flip: bool = False,
    chunk: int = 256,
) -> Candidates:
    """Pairs whose hashes say one may be a crop of the other, without comparing all pairs.

    From the stored hashes alone (no thumbnail is read). Every image that
    is not flat looks up its 81 framings' hashes (:data:`CROP_STEPS` on each
    side) under each allowed symmetry (:func:`symmetric_hashes`) in the
    ``HASH_ORDERS * HASH_CHUNKS`` tables of the whole-image hashes (one per
    run of bits); the images found whose whole hash is within
    :data:`MAX_DISTANCE` bits are candidates. So are the images whose hash
    with a quadrant masked is within :data:`MASKED_DISTANCE` bits of the
    image's own with that quadrant masked, turned (the quadrant moved by the
    symmetry): an uncropped copy with an overlay in one quadrant. Per pair
    the closest framing is kept (a pair the whole hashes found keeps their
    framing). Time and memory grow with the images and the pairs found,
    never with all pairs.

    Parameters
    ----------
    features : NearFeatures
        :func:`near_features` of the images.
    rotate, flip : bool
        The symmetries of :func:`fastdif.search`: quarter turns, the mirror
        image (both: all eight).
    chunk : int, default 256
        Images looked up at a time (bounds the memory: about 0.2 MB per
        image looked up at a time; the tables take 17 MB and 640 bytes per image).

    Returns
    -------
    Candidates
        Each unordered pair once.
    """
    allowed = np.array(
        [
            index
            for index, (turns, mirrored) in enumerate(SYMMETRIES)
            if (rotate or turns == 0) and (flip or not mirrored)
        ]
    )
    whole, masked = _tables(features.hashes[:, 0]), _tables(features.masked.ravel())
    flat = features.contrast < FLAT_CONTRAST
    kept = []
    for start in range(0, len(features), chunk):
        images = start + np.flatnonzero(~flat[start : start + chunk])
        found = [
            _framing_rows(features.hashes[images], images, allowed, whole),
            _masked_rows(features.masked[images], images, allowed, masked),
        ]
        rows = np.concatenate(found)
        rows = rows[(rows[:, 0] != rows[:, 1]) & ~flat[rows[:, 1]]]
        # Kept per chunk as one row per pair, so the memory grows with the pairs
        # only (each at most twice: from either image's chunk), and merged once:
        # the rows keep their order, so the same row wins as merging each time.
        kept.append(_closest_per_pair(rows))
    rows = _closest_per_pair(np.concatenate(kept)) if kept else np.empty((0, 6), np.int64)
    return Candidates(
        i=np.minimum(rows[:, 0], rows[:, 1]),
        j=np.maximum(rows[:, 0], rows[:, 1]),
        source=rows[:, 0],
        crop=_FRAMINGS[rows[:, 2]],
        symmetry=allowed[rows[:, 3]],
        distance=rows[:, 4],
    )


def _framing_rows(hashes, images, allowed, tables: _Tables) -> np.ndarray:
    """Rows (source, other, framing, symmetry, distance, 0): framings near whole images.

    ``hashes`` (n, framings) are those of ``images``; ``symmetry`` indexes ``allowed``.
    """
    queries = np.stack([symmetric_hashes(hashes, SYMMETRIES[s]) for s in allowed], axis=2)
    image, framing, symmetry = np.indices(queries.shape).reshape(3, -1)
    query, other, distance = _matches(tables, queries.ravel(), MAX_DISTANCE)
    labels = (images[image[query]], other, framing[query], symmetry[query], distance)
    return np.stack([*labels, np.zeros_like(other)], axis=1)


def _masked_rows(masked, images, allowed, tables: _Tables) -> np.ndarray:
    """Rows (source, other, 0, symmetry, distance, 1): masked hashes near the other's.

    ``masked`` (n, 4) are those of ``images``; the tables index every
    image's four (entry ``4 * image + quadrant``). Quadrant q of a source
    turned by a symmetry is compared with the other's quadrant where q lands.
    """
    queries = np.stack([symmetric_hashes(masked, SYMMETRIES[s]) for s in allowed], axis=2)
    image, quadrant, symmetry = np.indices(queries.shape).reshape(3, -1)
    query, entry, distance = _matches(tables, queries.ravel(), MASKED_DISTANCE)
    landed = _TURNED_QUADRANTS[allowed[symmetry[query]], quadrant[query]]
    good = entry % 4 == landed
    query, entry, distance = query[good], entry[good], distance[good]
    labels = (images[image[query]], entry // 4, np.zeros_like(entry), symmetry[query], distance)
    return np.stack([*labels, np.ones_like(entry)], axis=1)


def _closest_per_pair(rows: np.ndarray) -> np.ndarray:
    """One row per unordered pair of (source, other, framing, symmetry, distance, masked) rows.

    A row of the whole hashes before one of the masked hashes, then the
    closest hashes, then the smallest crop, then the first row.
    """
    crop_size = _FRAMINGS[rows[:, 2]].sum(axis=1)
    lo, hi = np.minimum(rows[:, 0], rows[:, 1]), np.maximum(rows[:, 0], rows[:, 1])
    best = np.lexsort((crop_size, rows[:, 4], rows[:, 5], hi, lo))
    rows, lo, hi = rows[best], lo[best], hi[best]
    first = np.ones(len(rows), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return rows[first]


# --- verification ----------------------------------------------------------------------


@lru_cache(maxsize=8)
def _pooling(n: int) -> np.ndarray:
    """(GRID, n): the area average of n pixels on :data:`GRID` cells."""
    return area_matrix(n, 0.0, 1.0, GRID)


def _pooled(image: np.ndarray) -> np.ndarray:
    """(GRID, GRID, ...) area average of a (px, px, ...) thumbnail."""
    rows = _pooling(image.shape[0])
    return np.einsum("ay,yx...,bx->ab...", rows, image, rows, optimize=True)


def _regions(images: np.ndarray, crops: np.ndarray, pad: int = 0) -> np.ndarray:
    """(..., K, GRID, GRID[, c]) each crop (left, right, top, bottom) of ``images`` on the grid.

    ``images`` (..., n, n[, c]), ``crops`` (..., K, 4): the crops of one
    image, or of each of a batch of images (leading axes ``...``). A crop
    below 0 frames past the edge (a camera move): the images are padded
    with their edge pixels repeated, by ``pad`` pixels or as many as the
    crops need if more (a fixed ``pad`` computes each image as alone).
    """
    lead = crops.ndim - 2
    n = images.shape[lead]
    pad = max(pad, int(np.ceil(-crops.min() * n)) if crops.min() < 0 else 0)
    if pad:
        widths = [(0, 0)] * lead + [(pad, pad), (pad, pad)] + [(0, 0)] * (images.ndim - lead - 2)
        images = np.pad(images, widths, "edge")
        crops = (crops * n + pad) / (n + 2 * pad)
        n += 2 * pad
    ys = area_matrix(n, crops[..., 2], 1.0 - crops[..., 3], GRID)
    xs = np.swapaxes(area_matrix(n, crops[..., 0], 1.0 - crops[..., 1], GRID), -1, -2)
    channels = images.ndim > lead + 2
    images = np.expand_dims(images, lead)  # one image for all its crops
    if not channels:
        return ys @ images @ xs
    return np.stack([ys @ images[..., c] @ xs for c in range(images.shape[-1])], axis=-1)


def _trimmed(errors: np.ndarray) -> np.ndarray:
    """(...) mean of each row of (..., cells) errors, its worst :data:`OVERLAY_MAX` left out."""
    cells = errors.shape[-1]
    drop = int(OVERLAY_MAX * cells)
    return np.partition(errors, cells - drop - 1, axis=-1)[..., : cells - drop].mean(axis=-1)


def _kept(errors: np.ndarray) -> np.ndarray:
    """bool: the cells kept, all but those above the :data:`OVERLAY_MAX` quantile.

    Cells tied at the cut are all kept, so that no order of the cells
    changes which are left out.
    """
    drop = int(OVERLAY_MAX * errors.size)
    cut = np.partition(errors, errors.size - drop - 1)[errors.size - drop - 1]
    return errors <= cut


def _standardised(values: np.ndarray) -> np.ndarray:
    """Each (..., GRID, GRID) map less its mean, over its standard deviation: (..., cells)."""
    flat = values.reshape(*values.shape[:-2], -1)
    flat = flat - flat.mean(axis=-1, keepdims=True)
    return flat / np.maximum(flat.std(axis=-1, keepdims=True), 1e-6)


def _cell_errors(source_luma, copy_luma, crops, pad: int = 0) -> np.ndarray:
    """(..., K, cells) squared differences of the standardised lumas, per crop.

    ``source_luma`` (..., n, n), ``copy_luma`` (..., GRID, GRID), ``crops``
    (..., K, 4) of the source, ``pad`` (see :func:`_regions`).
    """
    regions = _standardised(_regions(source_luma, crops, pad))
    return (regions - _standardised(copy_luma)[..., None, :]) ** 2


def _alignment(source_luma, copy_luma, crops) -> np.ndarray:
    """(..., K) how badly each crop aligns: trimmed mean of :func:`_cell_errors`."""
    return _trimmed(_cell_errors(source_luma, copy_luma, crops))


def _feasible(crops, limits) -> np.ndarray:
    """Crops (K, 4) clamped into ``[0, MAX_CROP]`` and the no-enlarging limits.

    ``limits`` (per axis, left + right and top + bottom): (2,) for every
    crop, or (K, 2), each crop its own.
    """
    crops = np.clip(crops, 0.0, MAX_CROP)
    limits = np.asarray(limits, np.float64)
    for axis in range(2):
        pair = crops[:, 2 * axis : 2 * axis + 2]
        total = pair.sum(axis=1, keepdims=True)
        limit = limits[..., axis, None]
        scale = np.where(total > limit, limit / np.maximum(total, 1e-12), 1.0)
        crops[:, 2 * axis : 2 * axis + 2] = pair * scale
    return crops


#: How many crops are aligned at once, at most (bounds memory): :func:`_best_crops`
#: scores its starts in groups of it, :func:`find_near` searches (8 moves a step)
#: a chunk of it over 8 candidates at a time.
_CROPS_AT_ONCE = 1024


def _best_crops(searches) -> tuple[np.ndarray, np.ndarray]:
    """The crop of each source that best aligns with its copy, many searches at once.

    Parameters
    ----------
    searches : list of (source luma (n, n), _Framing)
        One search each: from the best of the framing's starts (the first
        of equals), coordinate steps on each side, halved from 2% down to
        0.25%; a step is taken when it lowers the :func:`_alignment` error
        by more than 1e-9 (the best of the eight moves, the first of
        equals). None when no crop can be told from none (the framing's
        limits under half a pixel). Each search computes what it would
        alone, batched.

    Returns
    -------
    costs : float64 array (K,)
        The best alignment error of each search.
    crops : float64 array (K, 4)
        Its crop (left, right, top, bottom).
    """
    sources = np.stack([source for source, _ in searches])
    copies = np.stack([framing.seen_luma for _, framing in searches])
    starts = [framing.starts for _, framing in searches]
    crops, costs = np.empty((len(searches), 4)), np.empty(len(searches))
    lengths = np.array([len(s) for s in starts])
    for length in np.unique(lengths):
        group = np.flatnonzero(lengths == length)
        for part in np.array_split(group, -(-len(group) * length // _CROPS_AT_ONCE)):
            tried = np.stack([starts[k] for k in part])
            errors = _alignment(sources[part], copies[part], tried)
            best = errors.argmin(axis=1)
            crops[part] = tried[np.arange(len(part)), best]
            costs[part] = errors[np.arange(len(part)), best]
    limits = np.array([framing.limits for _, framing in searches], np.float64)
    step = np.where(limits.max(axis=1) * sources.shape[1] < 0.5, 0.0, 0.02)
    moves = np.concatenate([np.eye(4), -np.eye(4)])
    while (active := np.flatnonzero(step >= 0.0025)).size:
        trial = crops[active, None] + moves * step[active, None, None]
        each = np.repeat(limits[active], len(moves), axis=0)
        trial = _feasible(trial.reshape(-1, 4), each).reshape(trial.shape)
        errors = _alignment(sources[active], copies[active], trial)
        best = errors.argmin(axis=1)
        rows = np.arange(len(active))
        better = errors[rows, best] < costs[active] - 1e-9
        crops[active[better]] = trial[rows[better], best[better]]
        costs[active[better]] = errors[rows[better], best[better]]
        step[active[~better]] /= 2
    return costs, crops


def _monotone(xs: np.ndarray, ys: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """The non-decreasing curve through sorted ``xs``: :data:`TONE_BINS` bins, pooled adjacent.

    ``xs`` ascending, ``ys`` their values, ``ws`` (0 or 1) leaves values out
    of the fit. Returns the curve at every ``xs``: linear between the bins'
    centres, on past the outer ones with their slopes.
    """
    # Bins of about equal counts, cut between values (equal values share a bin).
    cuts = xs[np.linspace(0, len(xs) - 1, TONE_BINS + 1).astype(int)[1:-1]]
    bins = np.searchsorted(cuts, xs, side="right")
    sums = np.bincount(bins, ws * ys, TONE_BINS)
    counts = np.bincount(bins, ws, TONE_BINS)
    centres = np.bincount(bins, xs, TONE_BINS) / np.maximum(np.bincount(bins, None, TONE_BINS), 1)
    # Pool adjacent violators: merge a bin into the one before while it is lower.
    values, sizes, where = [], [], []
    for total, count, centre in zip(sums, counts, centres, strict=True):
        if count == 0:
            continue
        values.append(total / count)
        sizes.append(count)
        where.append([centre])
        while len(values) > 1 and values[-2] > values[-1]:
            count = sizes[-2] + sizes[-1]
            values[-2] = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / count
            sizes[-2] = count
            merged = where.pop()
            where[-1] = where[-1] + merged
            del values[-1], sizes[-1]
    knots = np.array([c for group in where for c in group])
    levels = np.repeat(values, [len(group) for group in where])
    if len(knots) > 1:
        first = max(0.0, (levels[1] - levels[0]) / max(knots[1] - knots[0], 1e-9))
        last = max(0.0, (levels[-1] - levels[-2]) / max(knots[-1] - knots[-2], 1e-9))
        knots = np.concatenate([[xs[0] - 1.0], knots, [xs[-1] + 1.0]])
        levels = np.concatenate(
            [
                [levels[0] - first * (knots[1] - knots[0])],
                levels,
                [levels[-1] + last * (knots[-1] - knots[-2])],
            ]
        )
    return np.clip(np.interp(xs, knots, levels), 0.0, 255.0)


def _tone_errors(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per cell squared error of ``y`` against the best monotone curve of ``x`` ((cells, 3)).

    One curve for the three channels; fitted, then refitted without the
    worst :data:`OVERLAY_MAX` of the cells (an overlay must not bend it).
    """
    order = np.argsort(x.reshape(-1), kind="stable")
    xs, ys = x.reshape(-1)[order], y.reshape(-1)[order]
    cell = order // 3
    weight = np.ones(x.size)
    for _ in range(2):
        curve = np.empty(x.size)
        curve[order] = _monotone(xs, ys, weight)
        errors = ((curve.reshape(x.shape) - y) ** 2).mean(axis=1)
        weight = _kept(errors)[cell].astype(np.float64)
    return errors


def _gamma_fit(x: np.ndarray, y: np.ndarray, kept: np.ndarray) -> tuple[float, float, float]:
    """``(gain, offset, gamma)`` of ``y = gain * 255 (x / 255) ** gamma + offset``, least squares.

    Over the kept cells' values that are not clipped (1 < y < 254), gamma
    from :data:`GAMMAS`: the words of :meth:`NearMatch.describe`, not the score.
    """
    x, y = x[kept].reshape(-1), y[kept].reshape(-1)
    good = (y > 1) & (y < 254) & (x > 1) & (x < 254)
    x, y = x[good], y[good]
    if len(x) < 2:
        return 1.0, 0.0, 1.0
    curved = 255.0 * (x[None] / 255.0) ** np.array(GAMMAS)[:, None]
    cx = curved - curved.mean(axis=1, keepdims=True)
    cy = y - y.mean()
    variance = np.maximum((cx * cx).sum(axis=1), 1e-9)
    gains = (cx * cy).sum(axis=1) / variance
    errors = (cy * cy).sum() - gains**2 * variance
    k = int(np.argmin(errors))
    offset = y.mean() - gains[k] * curved[k].mean()
    return float(gains[k]), float(offset), float(GAMMAS[k])


def _limits(shape_source, shape_copy) -> tuple[float, float]:
    """How much of each axis (left + right, top + bottom) a crop may cut without enlarging."""
    return tuple(
        min(2 * MAX_CROP, max(0.0, 1.0 - (c - 1.0) / s))
        for s, c in zip(np.asarray(shape_source, float), np.asarray(shape_copy, float), strict=True)
    )


def verify_near(
    a: np.ndarray,
    b: np.ndarray,
    shape_a,
    shape_b,
    rotate: bool = True,
    flip: bool = False,
    hint: tuple[np.ndarray, int] | None = None,
) -> NearMatch | None:
    """Whether ``b`` is a near copy of ``a`` or ``a`` of ``b``: the best explanation, or None.

    The source is the image with more pixels (between equal sizes, the
    one with the larger sum of values); the copy is compared with crops of
    it that never enlarge and have the copy's aspect (see the module's
    notes), under each allowed symmetry, after the best tone curve either
    way. Swapping ``a`` and ``b``, or turning one by an allowed symmetry
    (its shape with it), changes neither the decision nor the score.

    Parameters
    ----------
    a, b : arrays (px, px, 3)
        Thumbnails on the 0..255 scale, of one ``px``.
    shape_a, shape_b : (int, int)
        The images' displayed (width, height).
    rotate, flip : bool
        The symmetries allowed, as :func:`fastdif.search` means them.
    hint : (crop, symmetry), optional
        A crop of ``a`` (left, right, top, bottom) and an index into
        :data:`SYMMETRIES` turning it into ``b`` to start from
        (:func:`near_candidates`' guess); default: a coarse search of every
        allowed symmetry.

    Returns
    -------
    NearMatch or None
        None when an image is flat, no allowed crop has the copy's aspect,
        the alignment error is above :data:`ALIGNMENT_MAX`, the score is
        above :data:`NEAR_MSE`, or a moved framing aligns better (two shots).
    """
    posed = _posed(a, b, shape_a, shape_b, rotate, flip, hint)
    if posed is None or not posed.framings:
        return None
    costs, crops = _best_crops([(posed.src_luma, framing) for framing in posed.framings])
    k = int(np.argmin(costs))  # the first best symmetry
    return _decided([(posed, posed.framings[k], float(costs[k]), crops[k])])[0]


@dataclass(frozen=True)
class _Framing:
    """One symmetry :func:`verify_near` searches: the copy turned back by it.

    ``seen`` is the copy's thumbnail turned back, ``seen_shape`` its shape,
    ``seen_luma`` its luma on the grid; ``limits`` the crop limits
    (:func:`_limits`) and ``starts`` the distinct feasible crops the search
    starts from (sorted).
    """

    symmetry: tuple[int, bool]
    seen: np.ndarray
    seen_shape: tuple[int, int]
    seen_luma: np.ndarray
    limits: tuple[float, float]
    starts: np.ndarray


@dataclass(frozen=True)
class _Posed:
    """What :func:`verify_near` knows before its search.

    ``source`` is 0 when ``a`` is the source; ``src``, ``src_shape`` and
    ``src_luma`` are its thumbnail, shape and luma; ``framings`` one per
    allowed symmetry whose aspect a crop fits.
    """

    source: int
    src: np.ndarray
    src_shape: tuple[int, int]
    src_luma: np.ndarray
    framings: tuple[_Framing, ...]


def _posed(a, b, shape_a, shape_b, rotate, flip, hint) -> _Posed | None:
    """The source and the framings :func:`verify_near` searches; None when an image is flat."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    la, lb = luma(a), luma(b)
    if min(la.std(), lb.std()) < FLAT_CONTRAST:
        return None
    shape_a, shape_b = tuple(int(v) for v in shape_a), tuple(int(v) for v in shape_b)
    area_a, area_b = shape_a[0] * shape_a[1], shape_b[0] * shape_b[1]
    # The source shows more pixels; between equals, one chosen by what no
    # symmetry changes (sums of the values and their squares), so that
    # swapping the arguments, or turning one, computes the same thing.
    key_a, key_b = (a.sum(), (a * a).sum()), (b.sum(), (b * b).sum())
    source = int(area_b > area_a or (area_b == area_a and key_b > key_a))
    src, copy = (a, b)[source], (b, a)[source]
    src_shape, copy_shape = (shape_a, shape_b)[source], (shape_b, shape_a)[source]
    if hint is None:
        symmetries = [
            s for s, (k, m) in enumerate(SYMMETRIES) if (rotate or k == 0) and (flip or not m)
        ]
        hinted = None
    elif source == 0:
        symmetries, hinted = [int(hint[1])], np.asarray(hint[0], float)[None]
    else:  # the hint cropped the smaller image: its symmetry undone, the framings searched
        turns, mirrored = SYMMETRIES[int(hint[1])]
        symmetries = [SYMMETRIES.index((turns if mirrored else -turns % 4, mirrored))]
        hinted = None
    framings = []
    for s in symmetries:
        symmetry = SYMMETRIES[s]
        seen = unsymmetric(copy, symmetry)
        seen_shape = copy_shape[::-1] if symmetry[0] % 2 else copy_shape
        if not _aspect_fits(src_shape, seen_shape):
            continue
        limits = _limits(src_shape, seen_shape)
        starts = _framing_starts(limits) if hinted is None else _feasible(hinted, limits)
        framings.append(_Framing(symmetry, seen, seen_shape, _pooled(luma(seen)), limits, starts))
    return _Posed(source, src, src_shape, (la, lb)[source], tuple(framings))


@lru_cache(maxsize=256)
def _framing_starts(limits: tuple[float, float]) -> np.ndarray:
    """The distinct feasible crops of the :data:`_FRAMINGS` (sorted; one when no crop fits)."""
    starts = np.unique(_feasible(_FRAMINGS, limits), axis=0)
    starts.flags.writeable = False
    return starts


class _Scored(NamedTuple):
    """A candidate's crop, its cells (source ``x``, copy ``y``), their errors and its score."""

    crop: np.ndarray
    x: np.ndarray
    y: np.ndarray
    errors: np.ndarray
    score: float


def _decided(searched) -> list[NearMatch | None]:
    """:func:`verify_near`'s answers once its searches found their crops.

    ``searched`` holds ``(posed, framing, cost, crop)`` per pair: the crop
    found, of alignment error ``cost``. The camera-move checks of the pairs
    that score run together (:func:`_moves`), each as alone.
    """
    scored = [_scored(*item) for item in searched]
    live = [k for k, one in enumerate(scored) if one is not None]
    moves = _moves(
        [searched[k][0].src_luma for k in live],
        [searched[k][1].seen_luma for k in live],
        [scored[k].crop for k in live],
    )
    out = [None] * len(searched)
    for k, (alignment, moved) in zip(live, moves, strict=True):
        if moved >= MOVE_RATIO * alignment:
            out[k] = _matched(searched[k][0], searched[k][1], scored[k], alignment, moved)
    return out


def _scored(posed: _Posed, framing: _Framing, cost: float, crop: np.ndarray) -> _Scored | None:
    """The crop's cells after the best tone curve, or None: alignment, aspect or score refused."""
    if cost > ALIGNMENT_MAX:
        return None
    src, seen = posed.src, framing.seen
    crop = _aspect_crop(crop, posed.src_shape, framing.seen_shape)
    if crop is None:
        return None
    if np.all(crop * len(src) < 0.5):  # uncropped: the thumbnails themselves, exactly
        crop = np.zeros(4)
        x, y = src.reshape(-1, 3), seen.reshape(-1, 3)
    else:
        x = _regions(src, crop[None])[0].reshape(-1, 3)
        y = _pooled(seen).reshape(-1, 3)
    errors, score = _tone_scored(x, y)
    if score > NEAR_MSE:
        return None
    return _Scored(crop, x, y, errors, score)


def _matched(posed, framing, scored: _Scored, alignment: float, moved: float) -> NearMatch:
    """The match of a pair that scored and is no camera move: its edits described."""
    x, y, errors, source = scored.x, scored.y, scored.errors, posed.source
    drop = int(OVERLAY_MAX * len(x))
    kept = _kept(errors)
    gain, offset, gamma = _gamma_fit(x, y, kept)
    # Brightness and contrast: what the fitted curve, unclipped, does to the source's luma.
    lx = x[kept] @ _LUMA
    ly = gain * 255.0 * (lx / 255.0) ** gamma + offset
    overlaid = min(int((errors > OVERLAY_FACTOR * NEAR_MSE).sum()), drop)
    marked = _marked(x, y, errors, overlaid)
    return NearMatch(
        score=scored.score,
        source=source,
        crop=tuple(float(v) for v in np.round(scored.crop, 4)),
        symmetry=framing.symmetry,
        overlay=overlaid / len(x),
        marked=-1 if marked < 0 else (source if marked == 0 else 1 - source),
        gain=float(gain),
        offset=float(offset),
        gamma=float(gamma),
        brightness=float(ly.mean() / max(lx.mean(), 1e-6) - 1.0),
        contrast=float(ly.std() / max(lx.std(), 1e-6) - 1.0),
        alignment=alignment,
        moved=moved,
    )


def _marked(x: np.ndarray, y: np.ndarray, errors: np.ndarray, overlaid: int) -> int:
    """Which of the aligned cells ``x`` (0) and ``y`` (1), (cells, 3), bears the overlay, or -1.

    The overlaid cells are the ``overlaid`` with the largest ``errors``
    (none below 0.5% of the cells: -1).
    """
    if overlaid < 0.005 * len(x):
        return -1
    side = int(round(np.sqrt(len(x))))
    mask = np.zeros(len(x), bool)
    mask[np.argsort(errors, kind="stable")[len(x) - overlaid :]] = True
    mask = mask.reshape(side, side)
    out = [_standing_out((v @ _LUMA).reshape(side, side), mask) for v in (x, y)]
    if out[0] >= MARK_RATIO * out[1]:
        return 0
    if out[1] >= MARK_RATIO * out[0]:
        return 1
    return -1


@lru_cache(maxsize=8)
def _reach(side: int) -> np.ndarray:
    """(side, side): Gaussian weights of :data:`MARK_REACH` cells between rows."""
    d = np.subtract.outer(np.arange(side), np.arange(side))
    return np.exp(-0.5 * (d / MARK_REACH) ** 2)


def _standing_out(image: np.ndarray, mask: np.ndarray) -> float:
    """How far the cells ``mask`` of ``image`` (side, side) are from what the others around predict.

    The prediction is a Gaussian average of the cells not in ``mask``
    (:data:`MARK_REACH`); the mean squared difference over ``mask``, over
    the variance of the cells not in it (so no tone curve changes it).
    """
    g = _reach(len(image))
    kept = (~mask).astype(np.float64)
    predicted = (g @ (image * kept) @ g) / np.maximum(g @ kept @ g, 1e-12)
    scale = max(float(image[~mask].var()), 1e-6)
    return float(((image - predicted)[mask] ** 2).mean()) / scale


def _tone_scored(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Per cell errors after the best tone curve, and the score (worst cells left out).

    The curve is none, the monotone curve from ``x`` to ``y``, or from
    ``y`` to ``x`` (a clipped copy is a function of its source, not the
    reverse), whichever scores lowest.
    """
    drop = int(OVERLAY_MAX * len(x))
    fits = (((x - y) ** 2).mean(axis=1), _tone_errors(x, y), _tone_errors(y, x))
    scores = [float(np.sort(e)[: len(x) - drop].mean()) for e in fits]
    k = int(np.argmin(scores))
    return fits[k], scores[k]


#: How far past the edge (a fraction of a side) the framings :func:`_moves` tries go, at most.
_PAST_EDGE = MOVES[-1] + MOVES[0] / 2


def _moves(source_lumas, copy_lumas, crops) -> list[tuple[float, float]]:
    """Each pair's alignment error at its crop, and the smallest with the source moved instead.

    ``source_lumas`` (n, n), ``copy_lumas`` (GRID, GRID) and ``crops`` (4,),
    one each per pair. The framing moved by every step of :data:`MOVES` on
    each axis and both together (past the edge, its pixels repeated), then
    by half the smallest step around the best. The cells compared are those
    :func:`_alignment` keeps at the crop (an overlay stays left out as the
    framing moves). An edit's best framing is its crop; shots of a moving
    camera align better moved. The pairs are computed a few at a time
    (:data:`_CROPS_AT_ONCE` framings), each as alone (their sources padded
    alike: :data:`_PAST_EDGE`).
    """
    at_once = max(1, _CROPS_AT_ONCE // 80)  # 80 moved framings a pair
    out = []
    for start in range(0, len(crops), at_once):
        part = slice(start, start + at_once)
        out += _moved(source_lumas[part], copy_lumas[part], crops[part])
    return out


def _moved(source_lumas, copy_lumas, crops) -> list[tuple[float, float]]:
    """:func:`_moves` of a few pairs, together."""
    sources, copies = np.stack(source_lumas), np.stack(copy_lumas)
    crops = np.stack(crops).astype(np.float64)
    pad = int(np.ceil(_PAST_EDGE * sources.shape[-1]))
    errors = _cell_errors(sources, copies, crops[:, None])[:, 0]
    kept = [_kept(e) for e in errors]
    steps = np.concatenate([-np.array(MOVES[::-1]), [0.0], MOVES])
    dx, dy = (v.ravel() for v in np.meshgrid(steps, steps))
    moved = (dx != 0) | (dy != 0)
    dx, dy = dx[moved], dy[moved]
    coarse = _cell_errors(sources, copies, crops[:, None] + _shift(dx, dy), pad)
    costs = [c[:, k].mean(axis=1) for c, k in zip(coarse, kept, strict=True)]
    fine = MOVES[0] / 2 * np.array([-1, 0, 1])
    fx, fy = (v.ravel() for v in np.meshgrid(fine, fine))
    best = [int(np.argmin(c)) for c in costs]
    around = np.stack(
        [c + _shift(fx + dx[b], fy + dy[b]) for c, b in zip(crops, best, strict=True)]
    )
    finer = _cell_errors(sources, copies, around, pad)
    return [
        (float(e[k].mean()), float(min(c.min(), f[:, k].mean(axis=1).min())))
        for e, k, c, f in zip(errors, kept, costs, finer, strict=True)
    ]


def _shift(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """(K, 4) changes of a crop that move its framing by ``(dx, dy)``, its size kept."""
    return np.stack([dx, -dx, dy, -dy], axis=1)


def _aspect_fits(src_shape, copy_shape) -> bool:
    """Whether some crop within :data:`MAX_CROP` a side has the copy's aspect (to two pixels)."""
    (sw, sh), (cw, ch) = np.asarray(src_shape, float), np.asarray(copy_shape, float)
    widest = -np.log(1.0 - 2 * MAX_CROP) + 2.0 / min(cw, ch)
    return bool(abs(np.log((cw / ch) / (sw / sh))) <= widest)


def _aspect_crop(crop, src_shape, copy_shape) -> np.ndarray | None:
    """``crop`` with the copy's aspect, by cutting more of one axis; None if it cannot.

    The region's width over height must be the copy's to within two pixels
    of the copy's shorter side; within that the crop is left as searched.
    Otherwise the axis too long is cut more (half at each end, the rest at
    the other when one end reaches :data:`MAX_CROP`), within the limits
    that keep the crop from enlarging (one pixel to spare).
    """
    (sw, sh), (cw, ch) = np.asarray(src_shape, float), np.asarray(copy_shape, float)
    crop = np.array(crop, float)
    wx, wy = 1.0 - crop[0] - crop[1], 1.0 - crop[2] - crop[3]
    target = (cw / ch) / (sw / sh)  # wanted wx / wy
    if abs(np.log(wx / wy / target)) > 2.0 / min(cw, ch):
        axis, extra = (0, wx - target * wy) if wx / wy > target else (1, wy - wx / target)
        pair = crop[2 * axis : 2 * axis + 2]
        room = MAX_CROP - pair
        first = min(extra / 2 + max(0.0, extra / 2 - room[1]), room[0])
        pair += (first, extra - first)
        if pair[1] > MAX_CROP + 1e-9:
            return None
    slack = 1.0 / np.array([sw, sh])
    if np.any(crop.reshape(2, 2).sum(axis=1) > np.array(_limits(src_shape, copy_shape)) + slack):
        return None
    return crop


def find_near(
    tensors,
    shapes,
    rotate: bool = True,
    flip: bool = False,
    features: NearFeatures | None = None,
    progress=None,
    map=map,  # noqa: A002 (the builtin's meaning, or a pool's)
) -> tuple[np.ndarray, np.ndarray, list[NearMatch]]:
    """Every near pair of a repository's thumbnails: candidates, screened, then verified.

    Parameters
    ----------
    tensors : array (N, px, px, 3)
        Thumbnails on the 0..255 scale.
    shapes : int array (N, 2)
        Displayed (width, height) of each image.
    rotate, flip : bool
        The symmetries, as :func:`fastdif.search` means them.
    features : NearFeatures, optional
        :func:`near_features` of ``tensors``, when kept; computed otherwise.
    progress : callable, optional
        ``progress(done, total)``: called with 0 and the candidates to
        verify once they are known, then after each batch verified.
    map : callable, default the builtin ``map``
        ``map(function, tasks)``, yielding the function of each task in
        order: how the batches of candidates are verified (a process pool's
        spreads them over processes; the results are the same).

    Returns
    -------
    i, j : int64 arrays (M,)
        The pairs found, ``i < j``.
    matches : list of NearMatch
        Each pair's explanation (``source`` 0 means ``i``).
    """
    if features is None:
        features = near_features(tensors)
    candidates = near_candidates(features, rotate, flip)
    # Only the candidates the screen leaves can be accepted (see screened); each is
    # verified as verify_near(tensors[source], tensors[other], ..., hint) verifies
    # it (verify_hinted), many at a time.
    rows = np.flatnonzero(screened(tensors, shapes, candidates))
    batch = _CROPS_AT_ONCE // 8
    chunks = [rows[start : start + batch] for start in range(0, len(rows), batch)]
    src = candidates.source
    other = np.where(src == candidates.i, candidates.j, candidates.i)

    def task(chunk):
        s, o = src[chunk], other[chunk]
        pairs = (tensors[s], tensors[o], shapes[s], shapes[o])
        return (*pairs, candidates.crop[chunk], candidates.symmetry[chunk], rotate, flip)

    found_i, found_j, matches, done = [], [], [], 0
    for chunk, verified in zip(chunks, map(_verified, (task(c) for c in chunks)), strict=True):
        if progress is not None:
            progress(done, len(rows))
        done += len(chunk)
        for k, match in zip(chunk.tolist(), verified, strict=True):
            if match is None:
                continue
            i = int(candidates.i[k])
            found_i.append(i)
            found_j.append(int(candidates.j[k]))
            matches.append(match if int(src[k]) == i else _swapped(match))  # said from i's side
    if progress is not None:
        progress(len(rows), len(rows))
    return np.array(found_i, np.int64), np.array(found_j, np.int64), matches


def verify_hinted(a, b, shapes_a, shapes_b, crops, symmetries, rotate=True, flip=False) -> list:
    """:func:`verify_near` of many pairs ``(a[k], b[k])``, each with its hint, the searches batched.

    Parameters
    ----------
    a, b : arrays (K, px, px, 3)
        The pairs' thumbnails.
    shapes_a, shapes_b : int arrays (K, 2)
        Their displayed shapes.
    crops : float array (K, 4)
        Each pair's hint: a crop of ``a[k]`` ...
    symmetries : int array (K,)
        ... and an index into :data:`SYMMETRIES` turning it into ``b[k]``.
    rotate, flip : bool
        The symmetries allowed.

    Returns
    -------
    list of NearMatch or None
        ``verify_near(a[k], b[k], shapes_a[k], shapes_b[k], rotate, flip,
        hint=(crops[k], symmetries[k]))`` for each k, the same bit for bit.
    """
    posed = []
    for k in range(len(a)):
        hint = (crops[k], symmetries[k])
        pair = _posed(a[k], b[k], shapes_a[k], shapes_b[k], rotate, flip, hint)
        if pair is not None and pair.framings:  # a hint names one symmetry: one framing
            posed.append((k, pair))
    out = [None] * len(a)
    if posed:
        costs, found = _best_crops([(pair.src_luma, pair.framings[0]) for _, pair in posed])
        searched = [
            (pair, pair.framings[0], cost, crop)
            for (_, pair), cost, crop in zip(posed, costs.tolist(), found, strict=True)
        ]
        for (k, _), match in zip(posed, _decided(searched), strict=True):
            out[k] = match
    return out


def _verified(task) -> list:
    """:func:`verify_hinted` of one task's arguments (what :func:`find_near` maps)."""
    return verify_hinted(*task)


def _swapped(match: NearMatch) -> NearMatch:
    """The same match with its arguments swapped."""
    flipped = {"source": 1 - match.source, "marked": -1 if match.marked < 0 else 1 - match.marked}
    return NearMatch(**{**match.__dict__, **flipped})


# --- screening -------------------------------------------------------------------------

#: A screened alignment error must exceed ALIGNMENT_MAX by this much to refuse a
#: pair: far above the rounding of the batched sums, far below any decision.
SCREEN_SLACK = 1e-6


def screened(tensors, shapes, candidates: Candidates, chunk: int = 2048) -> np.ndarray:
    """bool (K,): the candidates :func:`verify_near` may accept, with their hints.

    Cheap, batched and exact: False only for a candidate whose verification
    (``verify_near(tensors[source], tensors[other], ..., hint)``, as
    :func:`find_near` calls it) is sure to return None, for one of the
    refusals it makes before the tone curve. The hint names one symmetry;
    when the copy's shape turned by it has no crop of the source's aspect
    (:func:`_aspect_fits`, decided with :data:`SCREEN_SLACK` to spare),
    the verifier has no framing. When the verifier's source is the hint's
    and the crop limits leave no search (under half a thumbnail pixel), it
    scores the hint's crop alone; that alignment error, computed here for
    many pairs at once, is refused above :data:`ALIGNMENT_MAX` plus
    :data:`SCREEN_SLACK`. When its source is the hint's other image and
    there is no search, it scores every framing the limits leave (all
    within half a pixel of none) and keeps the best: refused when
    :func:`_alignment_floor`, below each of them, is above that. Everything
    else (crops to search) is left to the verifier.
    """
    shapes = np.asarray(shapes, np.float64)
    src = candidates.source
    other = np.where(src == candidates.i, candidates.j, candidates.i)
    keep = np.ones(len(src), bool)
    if not len(src):
        return keep
    # The verifier's source, decided as it does (its keys computed as it does).
    used = np.unique(np.concatenate([src, other]))
    sums = np.zeros((len(tensors), 2))
    for k in used.tolist():
        a = np.asarray(tensors[k], np.float64)
        sums[k] = a.sum(), (a * a).sum()
    area = shapes[:, 0] * shapes[:, 1]
    flipped = (area[other] > area[src]) | (
        (area[other] == area[src])
        & (
            (sums[other, 0] > sums[src, 0])
            | ((sums[other, 0] == sums[src, 0]) & (sums[other, 1] > sums[src, 1]))
        )
    )
    turns = np.array([t for t, _ in SYMMETRIES])[candidates.symmetry]
    # One symmetry either way; its quarter turns' parity is the hint's.
    big = np.where(flipped[:, None], shapes[other], shapes[src])
    small = np.where(flipped[:, None], shapes[src], shapes[other])
    seen = np.where((turns % 2 == 1)[:, None], small[:, ::-1], small)
    widest = -np.log(1.0 - 2 * MAX_CROP) + 2.0 / seen.min(axis=1)
    ratio = np.abs(np.log((seen[:, 0] / seen[:, 1]) / (big[:, 0] / big[:, 1])))
    keep &= ratio <= widest + SCREEN_SLACK
    limits = np.minimum(2 * MAX_CROP, np.maximum(0.0, 1.0 - (seen - 1.0) / big))
    px = np.asarray(tensors[0]).shape[0]
    single = keep & ~flipped & (limits.max(axis=1) * px < 0.5 - SCREEN_SLACK)
    rows = np.flatnonzero(single)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        crops = _feasible(candidates.crop[part], limits[part])
        costs = _hinted_alignment(tensors, src[part], other[part], candidates.symmetry[part], crops)
        keep[part] = costs <= ALIGNMENT_MAX + SCREEN_SLACK
    # The verifier's source is the hint's other image: it scores every framing
    # the limits leave (all within half a pixel of none), bounded from below.
    inverse = np.array([SYMMETRIES.index((t if m else -t % 4, m)) for t, m in SYMMETRIES])
    rows = np.flatnonzero(keep & flipped & (limits.max(axis=1) * px < 0.5 - SCREEN_SLACK))
    groups, group = np.unique(limits[rows], axis=0, return_inverse=True)
    for g, limit in enumerate(groups):
        chosen = rows[group.ravel() == g]
        crops = np.unique(_feasible(_FRAMINGS.astype(np.float64), tuple(limit)), axis=0)
        spread = _framing_spreads(tensors, np.unique(other[chosen]), crops, chunk)
        for start in range(0, len(chosen), chunk):
            part = chosen[start : start + chunk]
            symmetry = inverse[candidates.symmetry[part]]
            floor = _alignment_floor(tensors, other[part], src[part], symmetry, spread[other[part]])
            keep[part] = floor <= ALIGNMENT_MAX + SCREEN_SLACK
    return keep


def _framing_spreads(tensors, images, crops, chunk: int) -> np.ndarray:
    """(N,) for each of ``images`` (0 elsewhere): the farthest any crop's grid is from the whole's.

    The distance between :func:`_standardised` lumas on the grid, the crop's
    (each of ``crops``) against the whole thumbnail's; computed as the
    verifier resamples (:func:`_regions`), many images at a time.
    """
    spread = np.zeros(len(tensors))
    ys = area_matrix(_size(tensors), crops[:, 2], 1.0 - crops[:, 3], GRID)
    xs = area_matrix(_size(tensors), crops[:, 0], 1.0 - crops[:, 1], GRID).transpose(0, 2, 1)
    pool = _pooling(_size(tensors))
    step = max(1, chunk // (4 * len(crops)))
    for start in range(0, len(images), step):
        part = images[start : start + step]
        lumas = luma(tensors[part])
        whole = _standardised(pool @ lumas @ pool.T)
        regions = ys[None] @ lumas[:, None] @ xs[None]  # (images, crops, GRID, GRID)
        framed = _standardised(regions.reshape(-1, GRID, GRID)).reshape(len(part), len(crops), -1)
        spread[part] = np.linalg.norm(framed - whole[:, None], axis=2).max(axis=1)
    return spread


def _size(tensors) -> int:
    """The thumbnails' side in pixels."""
    return int(np.shape(tensors[0])[0])


def _turned_back(tensors, src, other, symmetry) -> tuple[np.ndarray, np.ndarray]:
    """The lumas of each source and of its copy, the copy turned back by ``symmetry``."""
    used = np.unique(np.concatenate([src, other]))
    lumas = luma(tensors[used])
    source = lumas[np.searchsorted(used, src)]
    copy = lumas[np.searchsorted(used, other)]
    for s, sym in enumerate(SYMMETRIES):
        rows = symmetry == s
        if rows.any():
            copy[rows] = np.stack([unsymmetric(c, sym) for c in copy[rows]])
    return source, copy


def _alignment_floor(tensors, src, other, symmetry, spread) -> np.ndarray:
    """(K,) a lower bound of the best :func:`_alignment` over framings near the whole source.

    ``symmetry`` turns each source's framing into its copy (``other``);
    ``spread`` is each source's :func:`_framing_spreads`. The root of a
    trimmed mean of squares is a smallest norm over the cells kept, so it
    moves by at most ``spread / sqrt(cells kept)`` when the source's
    standardised grid moves by ``spread``: the whole image's alignment, its
    root less that, squared, is a floor for every framing.
    """
    source, copy = _turned_back(tensors, src, other, symmetry)
    pool = _pooling(source.shape[1])
    cost = _trimmed(
        (_standardised(pool @ source @ pool.T) - _standardised(pool @ copy @ pool.T)) ** 2
    )
    kept = GRID * GRID - int(OVERLAY_MAX * GRID * GRID)
    return np.maximum(0.0, np.sqrt(cost) - spread / np.sqrt(kept)) ** 2


def _hinted_alignment(tensors, src, other, symmetry, crops) -> np.ndarray:
    """(K,) :func:`_alignment` of each source's crop with its copy turned back, batched."""
    source, copy = _turned_back(tensors, src, other, symmetry)
    pool = _pooling(source.shape[1])
    return _alignment(source, pool @ copy @ pool.T, crops[:, None])[:, 0]
