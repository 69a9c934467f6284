"""pytest-benchmark suites: ``python -m pytest benchmarks/suites --benchmark-only``."""
