"""fastdif's benchmarks, in folders with one job each.

- ``data/``: generated image sets with ground truth, and thumbnails (cached on disk);
- ``suites/``: pytest-benchmark suites, ``python -m pytest benchmarks/suites --benchmark-only``;
- ``studies/``: accuracy studies (recall, matching modes, thumbnail fidelity);
- ``scripts/``: one-off measurements, ``python -m benchmarks.scripts.<name>``;
- ``regression``: the CI check, ``python -m benchmarks.regression``, against ``accepted.json``;
- ``timing``: timing helpers the others share.
"""
