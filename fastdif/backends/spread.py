"""Pure NumPy work spread over spawned processes: the near search's verification.

:func:`spread_map` is a drop-in for the builtin ``map`` over picklable
tasks: in this process for a few tasks or one process, otherwise in a pool
of ``spawn`` workers started as the decoding pool starts its own
(:func:`fastdif.backends.pool.starting_workers`: the caller's script is not
run again in them, and they ignore Ctrl-C, so the caller's interrupt check
decides), with a bounded number of tasks in flight (memory), a dead worker
raised (never waited for), and every worker gone before it returns or raises.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, islice

from .pool import ignoring_interrupts, starting_workers

#: Below this many tasks the workers' start-up (about 0.3 s) costs more than it saves.
MIN_TASKS = 8

#: Tasks in flight per process: enough to keep each busy, few enough to bound memory.
AHEAD = 2


def spread_map(function, tasks, processes: int, min_tasks: int = MIN_TASKS):
    """Yield ``function(task)`` for each of ``tasks``, in order, in up to ``processes`` processes.

    Parameters
    ----------
    function : callable
        A module-level function (picklable) of one task.
    tasks : iterable
        Picklable tasks, read as they are needed (at most ``AHEAD`` per
        process ahead of the results yielded).
    processes : int
        Processes to use; 1 computes here.
    min_tasks : int, default MIN_TASKS
        Fewer tasks than this are computed here.

    Raises
    ------
    concurrent.futures.process.BrokenProcessPool
        A worker died (killed, out of memory); the other workers are stopped.
    """
    tasks = iter(tasks)
    head = list(islice(tasks, min_tasks))
    if processes <= 1 or len(head) < min_tasks:
        yield from map(function, chain(head, tasks))
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(processes, mp_context=context, initializer=ignoring_interrupts)
    try:
        pending = deque()
        for task in chain(head, tasks):
            with starting_workers():  # a submit may start a worker
                pending.append(pool.submit(function, task))
            if len(pending) >= AHEAD * processes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
