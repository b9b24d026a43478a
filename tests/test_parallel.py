"""The one per-garment runner: results in task order, one shape of ``failed``, same in processes."""

import math
import warnings

import pytest

from anchorudf.utils.parallel import run_per_garment, warn_failed

TASKS = {"b": (4.0,), "a": (-1.0,), "c": (9.0,), "0": ("x",)}
FAILED = [{"id": "0", "error": "TypeError: must be real number, not str"},
          {"id": "a", "error": "ValueError: math domain error"}]

_SEEN: list = []


def _init(tag):
    _SEEN.append(tag)


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_task_order_and_failures_sorted_by_id(workers):
    results, failed = run_per_garment(math.sqrt, TASKS, workers, "test")
    assert list(results.items()) == [("b", 2.0), ("c", 3.0)]
    assert failed == FAILED


def test_serial_runs_the_initializer_here_once_and_does_not_catch_interrupts():
    _SEEN.clear()
    results, failed = run_per_garment(math.sqrt, {"a": (1.0,)}, 4, "test", initializer=_init, initargs=("x",))
    assert _SEEN == ["x"] and results == {"a": 1.0} and failed == []

    def interrupted(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_per_garment(interrupted, {"a": (1,)}, 1, "test")
    assert run_per_garment(math.sqrt, {}, 2, "test") == ({}, [])


@pytest.mark.parametrize("workers", [1, 2])
def test_fail_fast_raises_the_first_failure_with_its_own_type(workers):
    """fail_fast (the evaluate stage): a failure is raised as it is, not listed."""
    with pytest.raises((ValueError, TypeError)):
        run_per_garment(math.sqrt, TASKS, workers, "test", fail_fast=True)
    with pytest.raises(ValueError, match="math domain error"):
        run_per_garment(math.sqrt, {"b": (4.0,), "a": (-1.0,)}, workers, "test", fail_fast=True)
    results, failed = run_per_garment(math.sqrt, {"b": (4.0,), "c": (9.0,)}, workers, "test", fail_fast=True)
    assert list(results.items()) == [("b", 2.0), ("c", 3.0)] and failed == []


def test_warn_failed_names_each_garment():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_failed("samples shard 0", FAILED)
    assert [str(w.message) for w in caught] == [
        "samples shard 0: garment 0 failed and was skipped: TypeError: must be real number, not str",
        "samples shard 0: garment a failed and was skipped: ValueError: math domain error"]
