"""The recipe protocol and the keyword arguments every recipe shares.

Kept apart from ``recipes.py`` so that recipe families in other modules (``pretext.py``) can
subclass ``RecipeBase`` while ``recipes.RECIPES`` imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from torch import Tensor

from vidssl.data import samplers
from vidssl.data.transforms import KINETICS_MEAN, KINETICS_STD, ClipAugment, EvalTransform

if TYPE_CHECKING:  # sources imports PyAV; recipes only need the protocol for typing
    from vidssl.data.sources import VideoSource

Sample = dict[str, Any]


class ClipRecipe(Protocol):
    def __call__(self, video: VideoSource, rng: np.random.Generator) -> Sample: ...


@dataclass
class RecipeBase:
    """Shared keyword arguments of every recipe.

    Args:
        clip_len: frames per clip.
        stride: source frames between clip frames (ignored when ``target_fps`` is set).
        target_fps: if set, the stride is ``video.fps / target_fps`` (playback rate).
        size: crop output side in pixels.
        train: random clips + augmentation (True) or deterministic centre clips/crops.
        scale, ratio: random-resized-crop area fraction and aspect range (CVRL defaults).
        jitter_strength: SimCLR colour-jitter strength ``s`` (0 disables jitter).
        p_flip, p_jitter, p_gray, p_blur, p_solarize: augmentation probabilities.
        per_frame: independent augmentation per frame (CVRL ablation) instead of per clip.
        mean, std: normalisation.
        short: how short videos are padded, a key of ``samplers.SHORT_VIDEO_MODES``.
        batch_augment: in a DataLoader's batched fetch, apply the photometric augmentation
            to all clips of the batch at once (``vidssl.data.batch_augment``; same draws, same
            values up to float rounding); only recipes with ``final_views`` use it. Off by
            default: on 8 x 32 x 32 clips it cost more CPU per clip than the per-clip path
            (docs/performance.md).

    ``final_views`` (class attribute): True for recipes that return their augmented clips
    unchanged as the sample's views, so that the augmentation may finish after the recipe
    returned (``vidssl.data.batch_augment.deferred_augmentation``).
    """

    final_views: ClassVar[bool] = False

    clip_len: int = 8
    stride: float = 2
    target_fps: float | None = None
    size: int = 64
    train: bool = True
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (0.5, 2.0)
    jitter_strength: float = 1.0
    p_flip: float = 0.5
    p_jitter: float = 0.8
    p_gray: float = 0.2
    p_blur: float = 0.0
    per_frame: bool = False
    mean: Sequence[float] = KINETICS_MEAN
    std: Sequence[float] = KINETICS_STD
    short: str = "loop"
    p_solarize: float = 0.0  # probability of solarising a clip (one draw per clip, as blur)
    batch_augment: bool = False

    def __post_init__(self) -> None:
        if self.clip_len < 1:
            raise ValueError(f"clip_len={self.clip_len}: must be >= 1")
        if not self.stride > 0:
            raise ValueError(f"stride={self.stride}: must be > 0")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"target_fps={self.target_fps}: must be > 0")
        if self.size < 1:
            raise ValueError(f"size={self.size}: must be >= 1")
        if self.short not in samplers.SHORT_VIDEO_MODES:
            raise ValueError(
                f"short={self.short!r}: expected one of {sorted(samplers.SHORT_VIDEO_MODES)}"
            )
        self.augment = ClipAugment(
            size=self.size,
            scale=tuple(self.scale),
            ratio=tuple(self.ratio),
            p_flip=self.p_flip,
            jitter_strength=self.jitter_strength,
            p_jitter=self.p_jitter,
            p_gray=self.p_gray,
            p_blur=self.p_blur,
            mean=self.mean,
            std=self.std,
            per_frame=self.per_frame,
            p_solarize=self.p_solarize,
        )
        self.eval_transform = EvalTransform(size=self.size, mean=self.mean, std=self.std)

    def stride_for(self, video: VideoSource) -> float:
        """Stride in source frames for ``video``."""
        if self.target_fps is None:
            return float(self.stride)
        return samplers.stride_for_fps(video.fps, self.target_fps)

    def transform(self, frames: np.ndarray, rng: np.random.Generator) -> Tensor:
        """``(T, H, W, 3)`` uint8 -> ``(C, T, size, size)`` float, augmented when training."""
        return self.augment(frames, rng) if self.train else self.eval_transform(frames)

    def read(self, video: VideoSource, indices: np.ndarray) -> np.ndarray:
        """Frames for ``indices`` of any shape ``S`` in one read: ``S -> (*S, H, W, 3)``."""
        frames = video.get_frames(indices.reshape(-1))  # (prod(S), H, W, 3)
        return frames.reshape(*indices.shape, *frames.shape[1:])
