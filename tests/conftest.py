"""Fixtures shared by the test modules.

- ``one_thread``: one torch intra-op thread for a module (tiny models gain nothing from threads,
  and on a busy 2-core machine OpenMP spin-waiting made some files ~4x slower), also for the
  engine's ``train.threads`` auto rule, which follows ``$OMP_NUM_THREADS`` (so a result does not
  depend on the machine's core count); the previous count and variable are restored afterwards
  for the other modules. Opt in with
  ``pytestmark = pytest.mark.usefixtures("one_thread")``.
- ``SHARED_VIDEOS`` / ``shared_videos``: the real test videos (``../shared/videos``, read-only);
  the fixture skips the test when they are absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    threads, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


@pytest.fixture
def shared_videos() -> Path:
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"real test videos not found at {SHARED_VIDEOS}")
    return SHARED_VIDEOS
