"""Generated benchmark data: image sets with ground truth, and thumbnails, cached on disk.

- :mod:`~benchmarks.data.cache`: the cache folder and the write-then-rename of a set;
- :mod:`~benchmarks.data.truth`: a set's ``truth.json``, and scoring groups against it;
- :mod:`~benchmarks.data.copies`: the one copy maker every set writes its copies with;
- :mod:`~benchmarks.data.photos`: photo-like pictures and the photo sets;
- :mod:`~benchmarks.data.textures`: texture-rich pictures and the texture sets;
- :mod:`~benchmarks.data.modes_set`: the labelled set of the matching-modes study;
- :mod:`~benchmarks.data.small_files`: many small files in sub-folders;
- :mod:`~benchmarks.data.thumbnails`: photo-like thumbnails in memory, 100k to 1M.
"""
