"""The synthetic set rendered once per run: a uint8 frame cache around :class:`SyntheticOpener`.

Rendering one synthetic clip costs more than augmenting it (measured: 2 x 8 frames at 64 px
in ~4 ms against ~0.8 ms for one clip's augmentation, see docs/performance.md), and the
training loader asks for every video once per epoch. :class:`CachedSyntheticOpener` renders
each video's *whole* frame range once, with the unchanged
:meth:`SyntheticVideo.get_frames <vidssl.data.synthetic.SyntheticVideo.get_frames>`, into one
``(num_videos, frames, H, W, 3)`` uint8 array, and afterwards serves any frame indices by
indexing it. ``render_frames`` computes every frame from its own index alone, so a cached
frame is bitwise the frame a direct render returns (tested), and seeded samples do not change.

Sharing. The array lives in an anonymous *shared* memory map created with the opener, so
DataLoader worker processes forked from the training process (the default on Linux) write
into the same pages: a video rendered by epoch 0's worker is there for epoch 1's new worker
and for the training process. Pages are only backed once written (the train subset of the
bench set, 384 x 48 x 64 x 64 x 3, is 226 MB). A pickled opener (``spawn`` workers) gets a
fresh, empty private cache in the new process. Sets larger than :data:`CACHE_LIMIT_BYTES`
are rendered per request as before, with a logged warning.

Concurrent fills: two processes rendering one video write identical bytes; the ``filled``
flag is set only after the frames are written (x86 stores are not reordered).
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidssl.data.synthetic import SyntheticConfig, SyntheticVideo

log = logging.getLogger(__name__)

CACHE_LIMIT_BYTES = 4 << 30  # larger synthetic sets are rendered per request


def cache_bytes(cfg: SyntheticConfig) -> int:
    """Bytes of the frame cache of ``cfg``: every frame of every video, uint8 RGB."""
    return cfg.num_videos * cfg.frames * cfg.size * cfg.size * 3


class _SharedFrames:
    """``frames: (num_videos, frames, H, W, 3)`` uint8 + ``filled: (num_videos,)`` flags, both
    in one anonymous shared memory map (inherited by forked processes)."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        n, frame_bytes = cfg.num_videos, cfg.frames * cfg.size * cfg.size * 3
        self.buffer = mmap.mmap(-1, n + n * frame_bytes)  # MAP_SHARED | MAP_ANONYMOUS, zeroed
        self.filled = np.frombuffer(self.buffer, dtype=np.uint8, count=n)  # (N,)
        self.frames = np.frombuffer(self.buffer, dtype=np.uint8, offset=n).reshape(
            n, cfg.frames, cfg.size, cfg.size, 3
        )  # (N * T * H * W * 3,) -> (N, T, H, W, 3)


class CachedSyntheticVideo:
    """A ``VideoSource`` over one video's cached frames (rendered on first use)."""

    def __init__(self, opener: CachedSyntheticOpener, path: str) -> None:
        self.source = SyntheticVideo(opener.cfg, path)  # validates the path and labels
        self.path, self.num_frames, self.fps = path, self.source.num_frames, self.source.fps
        self.shared = opener.shared

    def all_frames(self) -> np.ndarray:
        """Every frame of the video, ``(frames, H, W, 3)`` uint8 (rendered once per run)."""
        vid = self.source.video_id
        if not self.shared.filled[vid]:
            self.shared.frames[vid] = self.source.get_frames(np.arange(self.num_frames))
            self.shared.filled[vid] = 1
        return self.shared.frames[vid]

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(T,)`` frame indices -> ``(T, H, W, 3)`` uint8 (a copy, as a render returns)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise IndexError(f"{self.path}: frame index out of range [0, {self.num_frames})")
        return self.all_frames()[idx]  # fancy indexing copies

    def close(self) -> None:
        pass


class CachedSyntheticOpener:
    """Picklable opener: ``CachedSyntheticOpener(cfg)(path) -> CachedSyntheticVideo`` (or a
    plain ``SyntheticVideo`` when the set exceeds :data:`CACHE_LIMIT_BYTES`)."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.shared: _SharedFrames | None = None
        if cache_bytes(cfg) <= CACHE_LIMIT_BYTES:
            self.shared = _SharedFrames(cfg)
        else:
            log.warning(
                "synthetic set of %.1f GB exceeds the %.1f GB frame cache: rendering per clip",
                cache_bytes(cfg) / 1e9,
                CACHE_LIMIT_BYTES / 1e9,
            )

    def __call__(self, path: str) -> CachedSyntheticVideo | SyntheticVideo:
        if self.shared is None:
            return SyntheticVideo(self.cfg, str(path))
        return CachedSyntheticVideo(self, str(path))

    def cached_videos(self) -> int:
        """Videos rendered into the cache so far (by any process sharing it)."""
        return 0 if self.shared is None else int(self.shared.filled.sum())

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg}  # a memory map does not pickle: a new process starts empty

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cfg"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CachedSyntheticOpener) and other.cfg == self.cfg

    def __hash__(self) -> int:
        return hash(self.cfg)


__all__ = ["CACHE_LIMIT_BYTES", "CachedSyntheticOpener", "CachedSyntheticVideo", "cache_bytes"]
