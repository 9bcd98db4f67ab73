"""RGB + optical-flow recipes (CVTCL / CoCLR two-stream input): the same frames, the same crop.

Flow sources. With ``flow_root`` set, the flow of ``RGB_ROOT/a/b.mp4`` (or ``b.mp4.vfs``) is
read from ``FLOW_ROOT/a/b.mp4.vfs`` (the tree ``vidssl flow`` writes, ``rgb_root`` names the
RGB tree) through ``vidssl.data.flow_extract.read_aligned``. With ``flow_root=None`` the flow is
computed on the fly from the RGB source itself (:class:`OnTheFlyFlow`, ``flow_method`` from
``vidssl.flow.FLOW_METHODS``, default Farneback: ~1 ms per 32x32 frame pair) and quantised
exactly as a stored flow, so both paths share one read-back. This is how the in-memory
synthetic set gets flow without files (estimated, not analytic, flow: the same estimator a
real dataset would use).

Alignment: flow frame ``i`` is the motion from RGB frame ``i`` to ``i + 1`` (the last frame
repeats the flow before it, as in ``vidssl.data.flow_extract``). One draw of crop box and flip is
applied to both streams; a flip mirrors the flow and negates its x component. Colour
augmentation (jitter, grey, blur) and RGB normalisation touch the RGB stream only. Flow is
dequantised to pixels and divided by ``flow_scale`` (default: the store's bound), then
clipped to [-1, 1]; it is treated as an image when cropped and resized (pixel values are not
rescaled with the crop), as in CoCLR's pipeline.

Sample keys: ``"views"`` / ``"flow_views"`` (lists of ``(3, T, H, W)`` / ``(2, T, H, W)``, one
flow view per RGB view; global clip first, see :class:`TwoStreamSubClips`) for
``two_stream_sub_clips``; ``"clips"`` ``(K, C, T, H, W)`` for
``two_stream_multi_clip`` with ``C`` = 3 (``stream="rgb"``), 2 (``"flow"``) or 5 (``"both"``:
RGB channels then flow channels, split again by ``vidssl.models.two_stream.TwoStreamBackbone``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from vidssl.data import samplers
from vidssl.data.extensions import STORE_SUFFIX
from vidssl.data.recipe_base import RecipeBase, Sample
from vidssl.data.transforms import (
    Box,
    center_box,
    crop_resize,
    frames_tchw,
    normalize,
    random_resized_crop_box,
    three_crop_boxes,
)
from vidssl.flow import FLOW_METHODS, FlowFn, create_flow, to_gray
from vidssl.flow.quantize import DEFAULT_BOUND, dequantize_flow, quantize_flow

if TYPE_CHECKING:
    from vidssl.data.sources import VideoSource

# what a two-stream clip holds, by stream name: number of channels
STREAM_CHANNELS: dict[str, int] = {"rgb": 3, "flow": 2, "both": 5}
# two_stream_sub_clips: the first views are the global clip and its second augmentation
GLOBAL_VIEWS = 2


@dataclass
class _FlowHeader:
    extra: dict[str, Any]


class OnTheFlyFlow:
    """A flow ``VideoSource`` computed from an RGB source on request.

    ``get_frames(indices)`` -> ``(T, H, W, 2)`` uint8, quantised with ``bound`` like a stored
    flow; frame ``i`` is the flow ``i -> i + 1`` and the last frame repeats frame ``N - 2``.
    """

    def __init__(self, rgb: VideoSource, flow_fn: FlowFn, method: str, bound: float) -> None:
        self.rgb = rgb
        self.flow_fn = flow_fn
        self.path = f"{rgb.path}#flow"
        self.num_frames = rgb.num_frames
        self.fps = rgb.fps
        self.bound = bound
        self.header = _FlowHeader({"kind": "flow", "bound": bound, "method": method})

    def get_frames(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (T,)
        n = self.num_frames
        if n < 2:
            gray = to_gray(self.rgb.get_frames([0]))  # (1, H, W)
            return quantize_flow(np.zeros((idx.size, *gray.shape[1:], 2), np.float32), self.bound)
        start = np.minimum(idx, n - 2)  # the last frame repeats the flow N-2 -> N-1
        uniq, inverse = np.unique(np.concatenate([start, start + 1]), return_inverse=True)
        gray = to_gray(self.rgb.get_frames(uniq))  # (U, H, W)
        prev, nxt = gray[inverse[: idx.size]], gray[inverse[idx.size :]]  # (T, H, W) each
        return quantize_flow(self.flow_fn(prev, nxt), self.bound)  # (T, H, W, 2)

    def close(self) -> None:
        pass


def flow_path(rgb_path: str, rgb_root: str, flow_root: str) -> Path:
    """``RGB_ROOT/a/b.mp4(.vfs)`` -> ``FLOW_ROOT/a/b.mp4.vfs``; raises if outside ``rgb_root``."""
    try:
        rel = Path(rgb_path).resolve().relative_to(Path(rgb_root).resolve())
    except ValueError as err:
        raise ValueError(f"{rgb_path} is not under data.recipe.rgb_root={rgb_root}") from err
    name = rel.name if rel.suffix == STORE_SUFFIX else rel.name + STORE_SUFFIX
    return Path(flow_root) / rel.parent / name


@dataclass
class TwoStreamBase(RecipeBase):
    """Shared fields of the two-stream recipes (see the module docstring).

    Args:
        flow_root: folder of stored flow (``vidssl flow``); None computes flow on the fly.
        rgb_root: the RGB tree that ``flow_root`` mirrors (required with ``flow_root``).
        flow_method: estimator for on-the-fly flow, a key of ``vidssl.flow.FLOW_METHODS``.
        flow_bound: quantisation bound (pixels) of on-the-fly flow.
        flow_scale: flow (pixels) is divided by this; None = the source's bound.
    """

    flow_root: str | None = None
    rgb_root: str | None = None
    flow_method: str = "farneback"
    flow_bound: float = DEFAULT_BOUND
    flow_scale: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.flow_root is not None and self.rgb_root is None:
            raise ValueError("data.recipe.rgb_root is required with data.recipe.flow_root")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(
                f"data.recipe.flow_method={self.flow_method!r}: expected one of "
                f"{sorted(FLOW_METHODS)}"
            )
        if not self.flow_bound > 0 or (self.flow_scale is not None and not self.flow_scale > 0):
            raise ValueError("data.recipe.flow_bound / flow_scale must be > 0")
        # flip is drawn here once for both streams; the RGB photometric pass must not flip again
        self.rgb_photometric = dataclasses.replace(self.augment, p_flip=0.0)
        self._flow_fn: FlowFn | None = None  # made lazily (OpenCV objects do not pickle)

    def open_flow(self, video: VideoSource) -> VideoSource:
        """The flow source aligned with ``video`` (stored or computed, see module doc)."""
        if self.flow_root is None:
            if self._flow_fn is None:
                self._flow_fn = create_flow(self.flow_method)
            return OnTheFlyFlow(video, self._flow_fn, self.flow_method, self.flow_bound)
        from vidssl.data.sources import open_video

        assert self.rgb_root is not None
        return open_video(flow_path(video.path, self.rgb_root, self.flow_root))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_flow_fn": None}

    def read_pair(
        self, video: VideoSource, indices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """indices ``S`` -> RGB ``(*S, H, W, 3)``, flow ``(*S, h, w, 2)`` uint8 and its bound."""
        from vidssl.data.flow_extract import flow_bound, read_aligned

        flow = self.open_flow(video)
        try:
            rgb, flo = read_aligned(video, flow, indices.reshape(-1))
            bound = flow_bound(flow)
        finally:
            if flow is not video:
                flow.close()
        return (
            rgb.reshape(*indices.shape, *rgb.shape[1:]),
            flo.reshape(*indices.shape, *flo.shape[1:]),
            bound,
        )

    def pair_transform(
        self,
        rgb: np.ndarray,
        flow: np.ndarray,
        bound: float,
        rng: np.random.Generator,
        box: Box | None = None,
    ) -> tuple[Tensor, Tensor]:
        """rgb ``(T, H, W, 3)``, flow ``(T, h, w, 2)`` uint8 -> ``(3, T, s, s)``, ``(2, T, s, s)``.

        One crop box (in RGB pixels, scaled to the flow's size) and one flip for both.
        """
        h, w = rgb.shape[1:3]
        if box is None:
            box = random_resized_crop_box(h, w, rng, self.scale, self.ratio) if self.train else None
            box = box or center_box(h, w)
        flip = bool(self.train and rng.random() < self.p_flip)
        x = crop_resize(frames_tchw(rgb), box, self.size, antialias=not self.train)  # (T,3,s,s)
        if flip:
            x = x.flip(-1)
        if self.train:
            x = self.rgb_photometric.photometric(x, rng)
        x = normalize(x.permute(1, 0, 2, 3), self.mean, self.std)  # -> (3, T, s, s)

        fh, fw = flow.shape[1:3]
        top, left, bh, bw = box
        sy, sx = fh / h, fw / w
        fbox = (round(top * sy), round(left * sx), max(1, round(bh * sy)), max(1, round(bw * sx)))
        f = torch.from_numpy(dequantize_flow(flow, bound)).permute(0, 3, 1, 2)  # (T, 2, h, w)
        f = crop_resize(f, fbox, self.size, antialias=not self.train)  # (T, 2, s, s) pixels
        if flip:
            f = f.flip(-1)
            f[:, 0] = -f[:, 0]  # mirrored x motion
        f = (f / (self.flow_scale or bound)).clamp_(-1.0, 1.0)
        return x, f.permute(1, 0, 2, 3).contiguous()  # (T, 2, s, s) -> (2, T, s, s)


@dataclass
class TwoStreamSubClips(TwoStreamBase):
    """CVTCL's input in both streams (sec. 2.1-2.3): a global clip of ``clip_len`` frames at
    ``stride`` (the paper's 32-frame clip, sec. 3.2) shown twice with independent
    augmentations (``v^q``, ``v^k`` of eq. 1), and ``num_clips`` non-overlapping sub-clips of
    ``sub_len`` frames at ``sub_stride`` (None: ``stride``) cut from inside its span, in
    temporal order, plus a second augmentation of the first (``s_1^a``, eqs. 6-7).

    ``{"views": [3-ch] * V, "flow_views": [2-ch] * V}``, ``V = 2 + num_clips + 1``, in the
    order ``[g, g^a, s_1, ..., s_N, s_1^a]`` (:data:`GLOBAL_VIEWS` of them global); view ``j``
    of both lists shows the same frames and the same crop. Frames shared by the global clip
    and the sub-clips are read (and their flow computed) once.

    Short videos: no view is looped or clamped past the end. A video with fewer frames than
    the global clip's span raises ``VideoDecodeError``, so ``VideoDataset`` handles it like
    any too-short file: logged once, replaced by another video and counted in ``skipped``.
    """

    num_clips: int = 4
    sub_len: int = 8
    sub_stride: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_clips < 1 or self.sub_len < 1:
            raise ValueError(f"data.recipe: num_clips={self.num_clips}, sub_len={self.sub_len}")
        if self.sub_stride is not None and not self.sub_stride > 0:
            raise ValueError(f"data.recipe.sub_stride={self.sub_stride}: must be > 0")
        if self.short != RecipeBase.short:
            raise ValueError(
                f"data.recipe.short={self.short!r}: two_stream_sub_clips never pads a video "
                "(one shorter than the global clip is skipped and counted)"
            )
        if self.target_fps is None:  # fixed strides: check the layout before any video
            span = samplers.clip_span(self.clip_len, self.stride)
            sub = samplers.clip_span(self.sub_len, self.sub_stride or self.stride)
            if self.num_clips * sub > span:
                raise ValueError(
                    f"data.recipe: {self.num_clips} sub-clips of sub_len={self.sub_len} x "
                    f"sub_stride={self.sub_stride or self.stride} ({sub} frames each) do not "
                    f"fit in the global clip's span data.clip_len x data.stride = {span}"
                )

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        stride = self.stride_for(video)
        span = samplers.clip_span(self.clip_len, stride)
        if video.num_frames < span:
            from vidssl.data.video import VideoDecodeError

            raise VideoDecodeError(
                video.path,
                f"{video.num_frames} frames, too short for the {span}-frame global clip "
                "(data.clip_len x data.stride) of the two_stream_sub_clips recipe",
            )
        clip, subs = samplers.clip_with_sub_clips(
            video.num_frames,
            self.clip_len,
            stride,
            self.num_clips,
            self.sub_len,
            stride if self.sub_stride is None else self.sub_stride,
            rng,
        )  # (T,), (N, L)
        wanted = np.concatenate([clip, subs.reshape(-1)])  # (T + N*L,)
        frames, inverse = np.unique(wanted, return_inverse=True)  # each frame read once
        rgb, flow, bound = self.read_pair(video, frames)  # (U, H, W, 3), (U, h, w, 2)
        g, s = inverse[: clip.size], inverse[clip.size :].reshape(subs.shape)  # (T,), (N, L)
        pairs = [self.pair_transform(rgb[i], flow[i], bound, rng) for i in [g, g, *s, s[0]]]
        return {"views": [p[0] for p in pairs], "flow_views": [p[1] for p in pairs]}


@dataclass
class TwoStreamMultiClip(TwoStreamBase):
    """``num_clips`` uniform clips x ``num_crops`` crops of one stream (or both):
    ``{"clips": (K, C, T, H, W)}`` with ``C = STREAM_CHANNELS[stream]`` (see module doc)."""

    num_clips: int = 4
    num_crops: int = 1
    stream: str = "both"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stream not in STREAM_CHANNELS:
            raise ValueError(f"stream={self.stream!r}: expected one of {sorted(STREAM_CHANNELS)}")
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops={self.num_crops}: expected 1 or 3")

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        stride = self.stride_for(video)
        idx = samplers.uniform_clips(
            video.num_frames, self.clip_len, stride, self.num_clips, self.short
        )  # (K, T)
        rgb, flow, bound = self.read_pair(video, idx)
        h, w = rgb.shape[2:4]
        boxes = three_crop_boxes(h, w) if self.num_crops == 3 else [None]
        views = []
        for j in range(len(idx)):
            for box in boxes:
                x, f = self.pair_transform(rgb[j], flow[j], bound, rng, box)
                both = torch.cat([x, f])  # (3 + 2, T, s, s)
                views.append({"rgb": x, "flow": f, "both": both}[self.stream])
        return {"clips": torch.stack(views)}  # K x (C, T, s, s) -> (K, C, T, s, s)


TWO_STREAM_RECIPES: dict[str, type[RecipeBase]] = {
    "two_stream_sub_clips": TwoStreamSubClips,
    "two_stream_multi_clip": TwoStreamMultiClip,
}
