"""One-off measurements, each run as ``python -m benchmarks.scripts.scripts.<name> --help``.

- ``cold_start``: the first run against the next, and difPy (issue 25's targets);
- ``first_run``: per kernel and per run, Numba's cache cold and warm;
- ``compare_difpy``: fastdif and difPy 4.2.1 side by side on the photo sets;
- ``thumbnail_cache``: the command line with its thumbnail cache, cold and re-run;
- ``decoders``: CPU time per file of each way to make a thumbnail;
- ``streamed``: builds from many small files, in memory and streamed to a store;
- ``million``: searches of 100,000 to 1,000,000 thumbnails;
- ``library``: new photos against a saved library (``build(..., reference=...)``);
- ``cluster_scaling``: search time against the number of Dask workers.
"""
