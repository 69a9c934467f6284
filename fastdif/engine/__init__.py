"""The search engine: Numba kernels, matching and grouping. Arrays in, arrays out."""
