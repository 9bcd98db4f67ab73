"""Clip recipes: what one dataset item returns, given one opened video and a generator.

A recipe is called as ``recipe(video, rng) -> sample`` where ``video`` is a ``VideoSource``
(``num_frames``, ``fps``, ``get_frames(indices) -> (T, H, W, 3) uint8``) and ``rng`` is the
``np.random.Generator`` the dataset seeded from ``(seed, epoch, index)``. Sample keys:

- ``"video"``: ``(C, T, H, W)`` float (``"clip"``);
- ``"clips"``: ``(K, C, T, H, W)`` (``"multi_clip"``);
- ``"views"``: ``list[(C, T, H, W)]`` (``"two_clips"``, ``"sub_clips"``).

Every recipe takes the same shared keyword arguments (clip length, stride or target fps,
crop size, augmentation strength, normalisation, ``train``) plus its own, so the engine can
build ``RECIPES[name](**data_kwargs, **method.recipe_overrides)``. Training recipes draw
random clips and temporally consistent augmentations; with ``train=False`` clip positions
are deterministic (centre / uniform) and crops are centre crops of the short side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from vidssl.data import samplers
from vidssl.data.pretext import PRETEXT_RECIPES
from vidssl.data.recipe_base import ClipRecipe, RecipeBase, Sample
from vidssl.data.transforms import three_crop_boxes
from vidssl.data.two_stream import TWO_STREAM_RECIPES

if TYPE_CHECKING:  # sources imports PyAV; recipes only need the protocol for typing
    from vidssl.data.sources import VideoSource

__all__ = ["RECIPES", "ClipRecipe", "RecipeBase", "Sample"]


@dataclass
class Clip(RecipeBase):
    """One clip: ``{"video": (C, T, H, W)}``. Random clip when training, else the centre clip."""

    final_views: ClassVar[bool] = True

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        stride = self.stride_for(video)
        if self.train:
            idx = samplers.random_clip(video.num_frames, self.clip_len, stride, rng, self.short)
        else:
            idx = samplers.center_clip(video.num_frames, self.clip_len, stride, self.short)
        return {"video": self.transform(self.read(video, idx), rng)}


@dataclass
class MultiClip(RecipeBase):
    """``num_clips`` uniform clips x ``num_crops`` crops: ``{"clips": (K, C, T, H, W)}``.

    ``K = num_clips * num_crops`` (clip-major). With ``train=False`` the crops are the centre
    square (``num_crops=1``) or three squares along the long side (``num_crops=3``); with
    ``train=True`` each of the K views gets its own random augmentation.
    """

    num_clips: int = 4
    num_crops: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops={self.num_crops}: expected 1 or 3")

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        stride = self.stride_for(video)
        idx = samplers.uniform_clips(
            video.num_frames, self.clip_len, stride, self.num_clips, self.short
        )
        frames = self.read(video, idx)  # (K, T, H, W, 3)
        h, w = frames.shape[2:4]
        boxes = three_crop_boxes(h, w) if self.num_crops == 3 else [None]
        views = [
            self.augment(clip, rng) if self.train else self.eval_transform(clip, box=box)
            for clip in frames
            for box in boxes
        ]
        return {"clips": torch.stack(views)}  # K x (C, T, H, W) -> (K, C, T, H, W)


@dataclass
class TwoClips(RecipeBase):
    """Two augmented clips of one video: ``{"views": [(C, T, H, W)] * 2}``.

    ``gap`` names the distribution of the distance between the two clip starts
    (``samplers.GAP_DISTRIBUTIONS``: ``"random"`` uniform, ``"cvrl"`` linearly decreasing with
    ``c_ratio``); ``same_clip=True`` takes both views from one clip (SimCLR-style image pairs).
    ``view_p_blur`` / ``view_p_solarize`` give each view its own blur / solarisation
    probability (CVRL's released pipeline: blur (1.0, 0.1), solarisation (0.0, 0.2)). With
    either set (and training), a coin decides which of the two clips gets view 1's
    augmentation, as the released sampler shuffles the two clip offsets; without them the
    earlier clip comes first, as before (no extra random draw).
    """

    final_views: ClassVar[bool] = True

    gap: str = "random"
    c_ratio: float = 1.0
    same_clip: bool = False
    # per-view blur probabilities (view 1, view 2); () = p_blur for both views
    view_p_blur: tuple[float, ...] = ()
    # per-view solarisation probabilities (view 1, view 2); () = p_solarize for both views
    view_p_solarize: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gap not in samplers.GAP_DISTRIBUTIONS:
            raise ValueError(
                f"gap={self.gap!r}: expected one of {sorted(samplers.GAP_DISTRIBUTIONS)}"
            )
        per_view = {"p_blur": self.view_p_blur, "p_solarize": self.view_p_solarize}
        for name, probs in per_view.items():
            if probs and (len(probs) != 2 or not all(0.0 <= p <= 1.0 for p in probs)):
                raise ValueError(
                    f"data.recipe.view_{name}={list(probs)}: expected two probabilities in "
                    "[0, 1] (view 1, view 2) or [] for the shared value"
                )
        self.view_augments = [
            dataclasses.replace(
                self.augment, **{name: probs[i] for name, probs in per_view.items() if probs}
            )
            for i in range(2)
        ]

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        stride = self.stride_for(video)
        n = video.num_frames
        if self.same_clip:
            one = samplers.random_clip(n, self.clip_len, stride, rng, self.short)
            idx = np.stack([one, one])
        else:
            a, b = samplers.two_clips(
                n, self.clip_len, stride, rng, self.gap, self.c_ratio, self.short
            )
            idx = np.stack([a, b])  # (2, T)
        frames = self.read(video, idx)  # (2, T, H, W, 3)
        if not self.train:
            return {"views": [self.eval_transform(clip) for clip in frames]}
        if (self.view_p_blur or self.view_p_solarize) and rng.random() < 0.5:
            frames = frames[::-1]  # the later clip gets view 1's augmentation
        return {"views": [aug(clip, rng) for aug, clip in zip(self.view_augments, frames)]}


@dataclass
class SubClips(RecipeBase):
    """``num_clips`` non-overlapping sub-clips in temporal order: ``{"views": [...]}``.

    CVTCL's local clips (sec. 2.3): the sub-clips tile a random window (``window`` frames,
    default ``num_clips`` spans). With ``anchor_view=True`` a second, independently augmented
    view of the first sub-clip is appended (CVTCL's ``s_1^a``), so ``views`` has
    ``num_clips + 1`` entries.
    """

    final_views: ClassVar[bool] = True

    num_clips: int = 4
    window: int | None = None
    anchor_view: bool = False

    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample:
        stride = self.stride_for(video)
        idx = samplers.sub_clips(
            video.num_frames, self.num_clips, self.clip_len, stride, rng, self.window, self.short
        )  # (N, T)
        frames = self.read(video, idx)  # (N, T, H, W, 3)
        views = [self.transform(clip, rng) for clip in frames]
        if self.anchor_view:
            views.append(self.transform(frames[0], rng))
        return {"views": views}


# recipe name -> class; built as RECIPES[name](**data_kwargs, **method.recipe_overrides)
RECIPES: dict[str, type[RecipeBase]] = {
    "clip": Clip,
    "multi_clip": MultiClip,
    "two_clips": TwoClips,
    "sub_clips": SubClips,
    **PRETEXT_RECIPES,  # "pretext", "pretext_views", "stor" (vidssl.data.pretext)
    **TWO_STREAM_RECIPES,  # RGB + flow: "two_stream_sub_clips", "two_stream_multi_clip"
}
