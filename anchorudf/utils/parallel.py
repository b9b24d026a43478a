"""One per-garment runner for the stages: in-process or in a spawn process pool.

``run_per_garment(fn, tasks, workers, desc)`` calls ``fn(*args)`` for every task and
returns ``(results, failed)``:

- ``results``: ``{task id: fn's return value}`` of the tasks that succeeded, in the order
  of ``tasks`` (whatever order the processes finished in);
- ``failed``: ``[{"id": task id, "error": "ExceptionType: message"}, ...]`` sorted by id,
  one entry per task whose ``fn`` raised an ``Exception`` (or whose worker process died).
  This is the one shape of a stage's ``failed`` list.

``workers <= 1`` (or a single task) runs everything in this process, in order, after
calling ``initializer(*initargs)`` once; otherwise ``min(workers, len(tasks))`` spawned
processes each run ``initializer`` first (spawn, not fork: OpenGL, Embree and OpenMP
thread pools do not survive a fork). Outputs must not depend on the worker count, so
every task seeds its own randomness. ``KeyboardInterrupt`` and other non-``Exception``
errors are not caught. A tqdm bar (``desc``, ``unit``) shows on a terminal only.

``fail_fast=True`` (the evaluate stage: a failure there is not skipped) raises the first
failing task's exception as it is, with its own type (in task order in this process; the
first to fail in the pool), cancels the tasks not yet started, and a dead worker process
is a ``RuntimeError`` naming its task; ``failed`` is then always empty.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Mapping, Sequence


def _guarded(fn: Callable, args: Sequence) -> tuple[bool, Any]:
    """(True, fn(*args)) or (False, "Type: message"): a failure stays with its task."""
    try:
        return True, fn(*args)
    except Exception as exc:  # noqa: BLE001 - one bad garment must not stop the others
        return False, f"{type(exc).__name__}: {exc}"


def run_per_garment(fn: Callable, tasks: Mapping[str, Sequence], workers: int, desc: str, *,
                    initializer: Callable | None = None, initargs: Sequence = (),
                    unit: str = "garment", fail_fast: bool = False) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Run ``fn(*tasks[id])`` for every id; returns ``(results, failed)`` (module docstring).

    ``fn`` and ``initializer`` must be module-level functions (picklable) when
    ``workers > 1``; ``tasks`` maps each garment (or file) id to ``fn``'s arguments.
    """
    from tqdm import tqdm

    run = _unguarded if fail_fast else _guarded
    done: dict[str, tuple[bool, Any]] = {}
    bar = tqdm(total=len(tasks), desc=desc, unit=unit, disable=not sys.stderr.isatty())
    try:
        if workers <= 1 or len(tasks) <= 1:
            if initializer is not None:
                initializer(*initargs)
            for key, args in tasks.items():
                done[key] = run(fn, args)
                bar.update()
        else:
            _run_pool(fn, tasks, workers, initializer, initargs, done, bar, desc, fail_fast)
    finally:
        bar.close()
    results = {key: done[key][1] for key in tasks if done[key][0]}
    failed = [{"id": key, "error": done[key][1]} for key in sorted(tasks) if not done[key][0]]
    return results, failed


def _unguarded(fn: Callable, args: Sequence) -> tuple[bool, Any]:
    """(True, fn(*args)); a failure propagates (``fail_fast``)."""
    return True, fn(*args)


def _run_pool(fn: Callable, tasks: Mapping[str, Sequence], workers: int, initializer: Callable | None,
              initargs: Sequence, done: dict, bar, desc: str, fail_fast: bool) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=mp.get_context("spawn"),
                               initializer=initializer, initargs=tuple(initargs))
    try:
        run = _unguarded if fail_fast else _guarded
        futures = {pool.submit(run, fn, tuple(args)): key for key, args in tasks.items()}
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                done[key] = fut.result()
            except BrokenProcessPool as exc:
                if fail_fast:
                    raise RuntimeError(f"{desc}: a worker process died while running {key} ({exc}); "
                                       f"-S {desc}.workers=1 runs it in this process and shows its error") from exc
                done[key] = (False, f"worker process died: {exc}")
            bar.update()
    finally:  # a raised failure (fail_fast) cancels the tasks not yet started
        pool.shutdown(cancel_futures=True)


def warn_failed(what: str, failed: list[dict[str, str]]) -> None:
    """One ``UserWarning`` per entry of ``failed``: ``"<what>: garment <id> failed and was
    skipped: <error>"``."""
    for f in failed:
        warnings.warn(f"{what}: garment {f['id']} failed and was skipped: {f['error']}", stacklevel=3)
