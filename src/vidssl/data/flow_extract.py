"""Per-video flow extraction into ``.vfs`` storage, and aligned RGB + flow reading.

Storage (one ``.vfs`` file per video, read back through ``open_video`` like RGB frames):

- frames are (H, W, 2) uint8: channel 0 = x flow, channel 1 = y flow, each clipped to
  ``+-bound`` pixels and mapped by ``vidssl.flow.quantize.quantize_flow``
  (``q = rint((clip(f) + bound) / (2 * bound) * 255)``);
- flow is computed on grey frames (``vidssl.flow.to_gray``) already resized to the stored
  size (``short_side``), so its values are in pixels of the stored frames;
- **alignment with RGB**: flow frame ``i`` is the flow from RGB frame ``i`` to frame ``i + 1``.
  A video of N frames gets N flow frames: the last one repeats flow ``N - 2`` (a one-frame
  video stores zero flow). When a raw video delivers fewer frames than its packet count
  (``VideoReader.num_frames``), the last flow is repeated up to that count, as
  ``VideoReader`` repeats the last frame; so every index valid for the RGB source (raw or
  prepared) is valid for the flow;
- the header's ``extra`` records ``kind="flow"``, ``bound``, ``method``, ``channels``,
  ``short_side``, ``source_frames`` and ``decoded_frames``;
- the default codec is PNG (lossless 2-channel "LA" images: what is read back is exactly
  what was quantised); JPEG is smaller but adds a few levels of error per pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidssl.data.sources import VideoSource
from vidssl.data.storage import STORE_SUFFIX, FrameStore, FrameStoreWriter, StoreHeader
from vidssl.data.video import VideoDecodeError, VideoReader
from vidssl.flow import FlowFn, to_gray
from vidssl.flow.quantize import DEFAULT_BOUND, quantize_flow

FLOW_KIND = "flow"
DEFAULT_CODEC = "png"
# frames read from a .vfs source per get_frames call
_READ_CHUNK = 64

# (frames, num_frames, fps) of an opened source
FrameStream = tuple[Iterator[np.ndarray], int, float]


def resize_short_side(frame: np.ndarray, short_side: int | None) -> np.ndarray:
    """(H, W, C) uint8, C 1 or 3 -> resized so that min(H, W) == short_side (antialiased
    bilinear).

    Sizes follow ``VideoReader``: the short side is exact, the long side rounded.
    """
    h, w = frame.shape[:2]
    if short_side is None or min(h, w) == short_side:
        return frame
    scale = short_side / min(h, w)
    nh, nw = (
        (short_side, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), short_side)
    )
    c = frame.shape[2]
    image = Image.fromarray(frame if c == 3 else frame[:, :, 0])  # RGB or L
    resized = np.asarray(image.resize((nw, nh), Image.Resampling.BILINEAR))
    return resized.reshape(nh, nw, c)


def _store_frames(store: FrameStore, short_side: int | None) -> Iterator[np.ndarray]:
    for start in range(0, store.num_frames, _READ_CHUNK):
        chunk = store.get_frames(range(start, min(store.num_frames, start + _READ_CHUNK)))
        for frame in chunk:
            yield resize_short_side(frame, short_side)


@contextmanager
def _open_store(path: Path, short_side: int | None) -> Iterator[FrameStream]:
    with FrameStore(path) as store:
        if store.header.extra.get("kind") == FLOW_KIND or store.channels == 2:
            raise VideoDecodeError(path, "this .vfs file already holds optical flow, not RGB")
        yield _store_frames(store, short_side), store.num_frames, store.fps


@contextmanager
def _open_raw(path: Path, short_side: int | None) -> Iterator[FrameStream]:
    with VideoReader(path, short_side=short_side, threads=1) as reader:
        yield reader.iter_frames(), reader.num_frames, reader.fps


# source suffix -> frame stream opener; anything else is a raw video read through PyAV
FRAME_STREAMS: dict[str, Callable[[Path, int | None], AbstractContextManager[FrameStream]]] = {
    STORE_SUFFIX: _open_store
}


def open_frame_stream(
    path: str | Path, short_side: int | None
) -> AbstractContextManager[FrameStream]:
    """Context manager yielding ``(frames, num_frames, fps)`` of a raw video or RGB ``.vfs``;
    frames are (H, W, C) uint8, resized to ``short_side`` (None keeps the size)."""
    path = Path(path)
    return FRAME_STREAMS.get(path.suffix.lower(), _open_raw)(path, short_side)


def _add_flows(
    writer: FrameStoreWriter, flow_fn: FlowFn, grays: list[np.ndarray], bound: float
) -> np.ndarray:
    """Flow of consecutive ``grays`` (T x (H, W)) -> T - 1 stored frames; returns the last."""
    flow = flow_fn(np.stack(grays[:-1]), np.stack(grays[1:]))  # (T-1, H, W, 2)
    q = quantize_flow(flow, bound)
    writer.extend(q)
    return q[-1]


def extract_flow(
    src: str | Path,
    dst: str | Path,
    flow_fn: FlowFn,
    *,
    method: str,
    bound: float = DEFAULT_BOUND,
    short_side: int | None = 128,
    codec: str = DEFAULT_CODEC,
    quality: int = 90,
    batch: int = 16,
) -> StoreHeader:
    """Compute the flow of every frame pair of ``src`` and write it to ``dst`` (atomically).

    ``batch`` frame pairs go to ``flow_fn`` per call (the batch of ``tvl1-torch``). Raises
    ``VideoDecodeError`` naming ``src`` when it cannot be read; ``dst`` then does not exist.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    with open_frame_stream(src, short_side) as (frames, num_frames, fps):
        extra: dict[str, Any] = {
            "kind": FLOW_KIND,
            "method": method,
            "bound": float(bound),
            "channels": ["x", "y"],
            "short_side": short_side,
            "source_frames": num_frames,
        }
        with FrameStoreWriter(dst, fps, codec, quality, source=str(src), extra=extra) as writer:
            grays: list[np.ndarray] = []
            last: np.ndarray | None = None
            decoded = 0
            for frame in frames:
                grays.append(to_gray(frame))
                decoded += 1
                if len(grays) == batch + 1:
                    last = _add_flows(writer, flow_fn, grays, bound)
                    grays = grays[-1:]
            if len(grays) > 1:
                last = _add_flows(writer, flow_fn, grays, bound)
            if last is None:
                if not grays:
                    raise VideoDecodeError(src, "no frames decoded")
                last = quantize_flow(np.zeros((*grays[0].shape, 2), np.float32), bound)
            # frame N-1 (no successor) and frames the decoder did not deliver repeat the last flow
            for _ in range(max(decoded, num_frames) - writer.num_frames):
                writer.add(last)
            writer.extra["decoded_frames"] = decoded
            return writer.close()


# -- reading ----------------------------------------------------------------------------------


def flow_bound(source: VideoSource) -> float:
    """The ``bound`` recorded in a flow store's header; raises ValueError if not flow."""
    extra = getattr(getattr(source, "header", None), "extra", {}) or {}
    if extra.get("kind") != FLOW_KIND:
        raise ValueError(f"{source.path} is not an optical-flow store (header kind != 'flow')")
    return float(extra.get("bound", DEFAULT_BOUND))


def read_aligned(
    rgb: VideoSource, flow: VideoSource, indices: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The same frames of a video and of its flow: indices (T,) -> ((T, H, W, 3), (T, h, w, 2)).

    Flow frame ``i`` is the motion from RGB frame ``i`` to ``i + 1`` (see the module
    docstring). The spatial sizes are those of the two sources (equal when both were stored
    at the same short side); cropping / resizing both alike is the recipe's job. A flow
    source a few frames shorter than the RGB one (decoded vs packet count) repeats its last
    frame; a much shorter one is rejected as not this video's flow.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    slack = max(2, rgb.num_frames // 50)
    if flow.num_frames < rgb.num_frames - slack:
        raise ValueError(
            f"flow {flow.path} has {flow.num_frames} frames but {rgb.path} has "
            f"{rgb.num_frames}: not the flow of this video?"
        )
    frames = rgb.get_frames(idx)
    flows = flow.get_frames(np.minimum(idx, flow.num_frames - 1))
    if flows.shape[-1] != 2:
        raise ValueError(f"{flow.path}: flow frames must have 2 channels, got {flows.shape[-1]}")
    return frames, flows
