"""Shared CLI helpers: progress bars (``vidssl.bars.ProgressBar``) and ``--shard K/N`` work
splitting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from vidssl.bars import ProgressBar

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    **kwargs: Any,
) -> ProgressBar:
    """A tqdm bar on stderr showing count, rate (``unit``/s) and time left."""
    return ProgressBar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=disable,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        **kwargs,
    )


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1-based K, 1 <= K <= N) -> ``(K - 1, N)``; argparse ``type=`` function.

    >>> parse_shard("2/4")
    (1, 4)
    """
    parts = text.split("/")
    try:
        k, n = (int(p) for p in parts)
        if len(parts) != 2 or not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--shard must be K/N with 1 <= K <= N (e.g. 2/4), got {text!r}"
        ) from None
    return k - 1, n


def shard_items(items: Sequence[T], k: int, n: int) -> list[T]:
    """The ``k``-th (0-based) of ``n`` interleaved slices: ``items[k::n]``.

    The slices of ``k = 0 .. n-1`` partition ``items``; sort ``items`` first so that every
    machine computes the same split.
    """
    if not 0 <= k < n:
        raise ValueError(f"shard index {k} not in [0, {n})")
    return list(items[k::n])


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    """``--shard K/N`` with the shared parsing and help text."""
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="K/N",
        help="process only the K-th (1-based) of N deterministic slices of the sorted file "
        "list, e.g. run 1/4 .. 4/4 on four machines (default: everything)",
    )


def run_jobs(
    fn: Callable[[T], str | None], jobs: Sequence[T], workers: int
) -> Iterator[tuple[T, str | None]]:
    """``(job, error)`` pairs as jobs finish, serially or over a spawned process pool.

    ``fn`` returns ``None`` on success or an error message; it must be a picklable module-level
    function. Spawn (not fork): no forked copies of decoder threads or a parent's torch state.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, fn(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(fn, job): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def print_failures(failures: Sequence[tuple[str, str]]) -> None:
    """List ``(path, error)`` failures after a batch run, sorted by path."""
    if failures:
        print("\nFailed videos:")
        for path, error in sorted(failures):
            print(f"  {path}: {error}")
