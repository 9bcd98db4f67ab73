"""``open_video(path)``: one entry point for raw videos (PyAV) and prepared ``.vfs`` storage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vidssl.data.extensions import SOURCE_EXTENSIONS, STORE_SUFFIX, is_source_file
from vidssl.data.storage import FrameStore
from vidssl.data.video import VideoInfo, VideoReader, probe

__all__ = ["SOURCE_EXTENSIONS", "VideoSource", "is_source_file", "open_video", "probe_source"]


@runtime_checkable
class VideoSource(Protocol):
    """What every dataset reads through (see docs/architecture.md)."""

    path: str
    num_frames: int  # frames that can actually be decoded / are stored
    fps: float

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """(T,) indices -> (T, H, W, C) uint8, upright."""
        ...

    def close(self) -> None: ...


# file suffix -> reader class; anything not listed is read as a raw video through PyAV
OPENERS: dict[str, Callable[[str | Path], VideoSource]] = {STORE_SUFFIX: FrameStore}


def open_video(path: str | Path) -> VideoSource:
    """Open ``path``: a ``.vfs`` file as ``FrameStore``, anything else as ``VideoReader``.

    Raises ``VideoDecodeError`` naming the file when it cannot be opened.
    """
    opener = OPENERS.get(Path(path).suffix.lower(), VideoReader)
    return opener(path)


def _probe_store(path: str | Path) -> VideoInfo:
    with FrameStore(path) as store:
        return store.info(check=True)


# file suffix -> probe function; anything else goes through `video.probe` (full decode)
PROBES: dict[str, Callable[[str | Path], VideoInfo]] = {STORE_SUFFIX: _probe_store}


def probe_source(path: str | Path) -> VideoInfo:
    """``VideoInfo`` of a raw video (decoded through, see ``video.probe``) or a ``.vfs`` store
    (index validated, first/middle/last frame decoded). Raises ``VideoDecodeError``."""
    return PROBES.get(Path(path).suffix.lower(), probe)(path)
