"""Peak memory (RSS) of search over 6k and 50k thumbnails, and of a 6k build.

Each measurement runs in a fresh interpreter. For search, the thumbnails are
loaded into RAM first; the figures are the peak RSS of the whole process and
the part added by the search (the peak is reset before it through
/proc/self/clear_refs, so compiling kernels does not count), next to the
bound the chunked path promises: block means (g*g*3 float32 per image),
channel means, order and mean arrays (about 40 bytes per image), plus one
tile of work items.
"""

import json

import pytest

from benchmarks.data.thumbnails import thumbnail_file
from benchmarks.timing import run_python

SEARCH = """
import json, numpy as np, fastdif
from fastdif import params
from fastdif.engine import kernels, matching as sm
tensors = np.load({path!r})
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0
dif = fastdif.from_arrays(tensors)
fastdif.search(dif, similarity="similar", show_progress=False)  # compile, load kernels
fastdif.search(dif, similarity="duplicates", show_progress=False)
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
se = fastdif.search(dif, similarity="similar", show_progress=False)
peak = status("VmHWM")
n, px = tensors.shape[:2]
g = kernels.grid_side(px)
tile = params.check_chunksize(None, n)
bound = n * (g * g * 3 * 4 + 12 + 40) + tile * (-(-n // sm.BLOCK)) * (sm.CAPACITY + 4) * 12
print(json.dumps({{"n": n, "tensors_bytes": tensors.nbytes, "rss_before": before,
                  "peak_rss": peak, "bound_extra": bound}}))
"""


@pytest.mark.parametrize("n", [6000, 50000])
def test_search_peak_memory(benchmark, n):
    path = thumbnail_file(n)
    runs = []
    benchmark.pedantic(
        lambda: runs.append(json.loads(run_python(SEARCH.format(path=path)))),
        rounds=1,
        iterations=1,
    )
    result = runs[-1]
    result["peak_gib"] = result["peak_rss"] / 2**30
    result["search_extra_mib"] = (result["peak_rss"] - result["rss_before"]) / 2**20
    result["bound_extra_mib"] = result["bound_extra"] / 2**20
    benchmark.extra_info.update(result)
