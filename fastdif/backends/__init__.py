"""Where the work runs: the protocols (base), this machine (local), a Dask cluster (dask)."""
