"""Fixtures shared by the test modules.

- ``one_thread``: one torch intra-op thread for a module (tiny models gain nothing from threads,
  and on a busy 2-core machine OpenMP spin-waiting made some files ~4x slower); the previous
  count is restored afterwards for the other modules. Opt in with
  ``pytestmark = pytest.mark.usefixtures("one_thread")``.
- ``SHARED_VIDEOS`` / ``shared_videos``: the real test videos (``../shared/videos``, read-only);
  the fixture skips the test when they are absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_videos() -> Path:
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"real test videos not found at {SHARED_VIDEOS}")
    return SHARED_VIDEOS
