"""Accuracy studies: what fastdif finds, and how faithful its thumbnails are.

- :mod:`~benchmarks.studies.recall`: copies of texture-rich pictures found, per copy kind;
- :mod:`~benchmarks.studies.modes`: what each matching mode finds, its flat-image floor
  and its search time;
- :mod:`~benchmarks.studies.fidelity`: thumbnails against the faithful ones, per format;
- :mod:`~benchmarks.studies.tables`: the Markdown tables they print.
"""
