"""fastdif.backends.spread: the builtin map's results over spawned processes.

Same results in order, a few tasks or one process computed here, tasks read
only as needed, a task's error or a dead worker raised (never a hang), and
the near search's verification unchanged when spread.
"""

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from functools import partial

import numpy as np
import pytest

from benchmarks.data.thumbnails import photo_thumbnails
from fastdif.backends.spread import AHEAD, spread_map
from fastdif.engine import near


def square_and_pid(x):
    return x * x, os.getpid()


def fail_on_three(x):
    if x == 3:
        raise ValueError("task 3 failed")
    return x


def die_on_three(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_the_results_are_maps_in_order_from_other_processes():
    out = list(spread_map(square_and_pid, range(20), processes=2, min_tasks=1))
    assert [r for r, _ in out] == [x * x for x in range(20)]
    assert os.getpid() not in {pid for _, pid in out}


@pytest.mark.parametrize(("processes", "tasks"), [(1, 20), (2, 3)])
def test_one_process_or_a_few_tasks_are_computed_here(processes, tasks):
    out = list(spread_map(square_and_pid, range(tasks), processes=processes, min_tasks=8))
    assert [r for r, _ in out] == [x * x for x in range(tasks)]
    assert {pid for _, pid in out} == {os.getpid()}


def test_tasks_are_read_only_as_needed():
    read = []

    def tasks():
        for x in range(100):
            read.append(x)
            yield x

    results = spread_map(square_and_pid, tasks(), processes=2, min_tasks=4)
    assert next(results)[0] == 0
    assert len(read) <= 4 + AHEAD * 2 + 1
    assert [r for r, _ in results] == [x * x for x in range(1, 100)]


def test_a_tasks_error_is_raised_in_the_caller():
    with pytest.raises(ValueError, match="task 3 failed"):
        list(spread_map(fail_on_three, range(10), processes=2, min_tasks=1))


def test_a_dead_worker_is_raised_not_waited_for():
    with pytest.raises(BrokenProcessPool):
        list(spread_map(die_on_three, range(10), processes=2, min_tasks=1))


def test_near_verification_spread_finds_the_same():
    n = 400
    tensors = photo_thumbnails(n)
    rng = np.random.default_rng(0)
    shapes = np.array([[800, 600], [1600, 1200], [600, 800]])[rng.integers(0, 3, n)]
    here = near.find_near(tensors, shapes)
    spread = near.find_near(tensors, shapes, map=partial(spread_map, processes=2, min_tasks=1))
    assert len(here[0]) > 10
    assert np.array_equal(here[0], spread[0]) and np.array_equal(here[1], spread[1])
    assert here[2] == spread[2]


def test_an_interrupt_stops_the_workers():
    import multiprocessing

    def stop(done, total):
        if done:
            raise KeyboardInterrupt

    results = spread_map(square_and_pid, range(1000), processes=2, min_tasks=1)
    with pytest.raises(KeyboardInterrupt):
        for k, _ in enumerate(results):
            stop(k, 1000)
    results.close()
    assert multiprocessing.active_children() == []
