"""How many intra-op threads the training process gets: the app decides, not torch's default.

torch starts with one intra-op thread per core. With ``data.workers`` loader processes
beside it, a training process that also takes every core oversubscribes the CPU: every
parallel op waits for a thread that a loader (or any other busy process) has pre-empted:
training was 5-10x slower on a shared 2-core machine (measured: 4 vs 22-36 clips/s for the
demo's CVRL step with 2 threads vs 1). So ``train.threads = 0`` (auto) gives the training
process the cores the loader processes leave, at least one; ``OMP_NUM_THREADS`` in the
environment (the bench sets it for its child runs) wins over it. The bench and the demo use
the same rule for their own processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def auto_threads(requested: int, workers: int) -> int:
    """``requested`` if > 0, else ``$OMP_NUM_THREADS`` if set, else cores - ``workers`` (>= 1)."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) - workers)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """``torch.set_num_threads(n)`` for the block; the previous count is restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
