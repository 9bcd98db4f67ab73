"""Photometric augmentation of a whole batch at once, same draws as the per-clip pipeline.

:class:`~vidssl.data.transforms.ClipAugment` runs ~40 small torch ops per clip (flip, four
jitter ops in a random order, grayscale, blur, solarisation, normalisation); on 8 x 32 x 32 clips their
dispatch overhead, not arithmetic, is most of the loader's time (docs/performance.md). Here
the crop (per clip, it changes the shape) runs as before, while every photometric parameter
is drawn from the clip's generator in exactly the order ``ClipAugment.photometric`` draws it
(:func:`draw_photometric`); the ops then run once over all clips of the batch
(:func:`apply_photometric`) with the same per-frame arithmetic. The same seed gives the same
draws, one draw per clip applied to all its frames (temporally consistent), and the same
values up to float rounding of the batched kernels (tested against the per-clip reference).

How a dataset uses it: inside :func:`deferred_augmentation` a recipe's ``augment`` is
replaced by a :class:`DeferredAugment` that crops, draws, and returns an empty output tensor;
when the block ends every recorded clip is augmented in one batch and written into its
output tensor, so the sample dicts the recipe built hold the final views (the sample
contract does not change). Only recipes whose augmented clips are their final views
(``RecipeBase.final_views``: ``clip``, ``two_clips``, ``sub_clips``) are deferred, and only
with one draw per clip (``per_frame=False``); ``batch_augment=False`` in the recipe's keyword
arguments turns it off. ``VideoDataset.__getitems__`` (the DataLoader's batched fetch) opens
the block around the samples of one batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vidssl.data.recipe_base import ClipRecipe, RecipeBase
from vidssl.data.transforms import (
    _JITTER_OPS,
    Box,
    ClipAugment,
    frames_tchw,
    gaussian_blur,
    hflip,
    solarize,
    to_grayscale,
)


@dataclass
class PhotometricDraw:
    """One clip's photometric parameters (what ``ClipAugment.photometric`` draws)."""

    flip: bool
    jitter: bool  # colour jitter applied
    factors: Tensor  # (4,) float32: brightness, contrast, saturation factors, hue shift
    order: list[int]  # the jitter ops' order, a permutation of 0..3
    gray: bool
    blur: bool
    sigma: float  # blur sigma in output pixels (float32 value)
    solarize: bool = False


def draw_photometric(aug: ClipAugment, rng: np.random.Generator, side: int) -> PhotometricDraw:
    """The draws of ``aug.photometric`` for one clip (``per_frame=False``), in its order.

    ``side``: the short side of the cropped clip (the blur sigma scales with it).
    """

    def uniform(lo: float, hi: float) -> float:
        return float(torch.from_numpy(rng.uniform(lo, hi, size=1)).float())

    def coin(p: float) -> bool:
        return bool(rng.random(size=1)[0] < p)

    flip = coin(aug.p_flip)
    jitter, factors, order = False, torch.zeros(4), [0, 1, 2, 3]
    s = aug.jitter_strength
    if s > 0 and aug.p_jitter > 0:
        jitter = coin(aug.p_jitter)
        lo = max(0.0, 1 - 0.8 * s)
        values = [uniform(lo, 1 + 0.8 * s) for _ in range(3)] + [uniform(-0.2 * s, 0.2 * s)]
        factors = torch.tensor(values, dtype=torch.float32)
        order = [int(i) for i in rng.permutation(4)]
    gray = coin(aug.p_gray) if aug.p_gray > 0 else False
    blur, sigma = False, 0.0
    if aug.p_blur > 0:
        blur = coin(aug.p_blur)
        sigma = float(torch.tensor(uniform(*aug.blur_sigma)) * (side / 224.0))
    solar = coin(aug.p_solarize) if aug.p_solarize > 0 else False
    return PhotometricDraw(flip, jitter, factors, order, gray, blur, sigma, solar)


def _frames_of(mask: Tensor, t: int) -> Tensor:
    return mask.repeat_interleave(t)  # (N,) -> (N * T,), clip-major


def apply_photometric(x: Tensor, draws: list[PhotometricDraw], aug: ClipAugment) -> Tensor:
    """``x: (N, T, C, h, w)`` float in [0, 1] (cropped clips), one draw per clip ->
    ``(N, C, T, h, w)`` augmented and normalised, as ``aug`` does it clip by clip."""
    n, t, c, h, w = x.shape
    y = x.reshape(n * t, c, h, w)  # (N, T, C, h, w) -> (N*T, C, h, w): frames, clip-major

    def mask(values: list[bool]) -> Tensor:
        return _frames_of(torch.tensor(values, dtype=torch.bool), t)  # (N*T,)

    y = hflip(y, mask([d.flip for d in draws]))
    jittered = [i for i, d in enumerate(draws) if d.jitter]
    if jittered:
        factors = torch.stack([d.factors for d in draws])  # (N, 4)
        y = y.clone()  # written in place below, one op's frames at a time
        for position in range(4):  # every clip applies its own op order
            for op in range(4):
                clips = [i for i in jittered if draws[i].order[position] == op]
                if not clips:
                    continue
                frames = _frames_of(torch.tensor(clips), t) * t + torch.arange(t).repeat(
                    len(clips)
                )  # (n_sel * T,) frame rows of the selected clips
                out = _JITTER_OPS[op](y[frames], _frames_of(factors[clips, op], t))
                y.index_copy_(0, frames, out)
    y = to_grayscale(y, mask([d.gray for d in draws]))
    if any(d.blur for d in draws):
        side = min(h, w)
        sigma = torch.tensor([d.sigma for d in draws], dtype=torch.float32).clamp_min(1e-3)
        blurred = gaussian_blur(y, _frames_of(sigma, t), max(3, round(0.1 * side)))
        y = torch.where(mask([d.blur for d in draws]).view(-1, 1, 1, 1), blurred, y)
    y = solarize(y, mask([d.solarize for d in draws]))
    m = torch.as_tensor(aug.mean, dtype=y.dtype).view(1, -1, 1, 1, 1)
    s = torch.as_tensor(aug.std, dtype=y.dtype).view(1, -1, 1, 1, 1)
    y = y.view(n, t, c, h, w).permute(0, 2, 1, 3, 4)  # (N, T, C, h, w) -> (N, C, T, h, w)
    return (y - m) / s


@dataclass
class DeferredAugment:
    """Stands in for a recipe's ``ClipAugment`` inside :func:`deferred_augmentation`: crops and
    draws now, returns the (still empty) output tensor; :meth:`finish` fills them all."""

    aug: ClipAugment
    pending: list[tuple[Tensor, PhotometricDraw, Tensor]] = field(default_factory=list)

    def __call__(
        self, clip: np.ndarray | Tensor, rng: np.random.Generator, box: Box | None = None
    ) -> Tensor:
        x = self.aug.crop(frames_tchw(clip), rng, box)  # (T, C, h, w) float in [0, 1]
        draw = draw_photometric(self.aug, rng, min(x.shape[-2:]))
        t, c, h, w = x.shape
        out = torch.empty(c, t, h, w)
        self.pending.append((x, draw, out))
        return out

    def finish(self) -> None:
        """Augment every recorded clip (grouped by shape) and write it into its output."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (x, _, _) in enumerate(self.pending):
            groups.setdefault(tuple(x.shape), []).append(i)
        for members in groups.values():
            x = torch.stack([self.pending[i][0] for i in members])  # (N, T, C, h, w)
            y = apply_photometric(x, [self.pending[i][1] for i in members], self.aug)
            for i, view in zip(members, y, strict=True):
                self.pending[i][2].copy_(view)
        self.pending.clear()


@contextlib.contextmanager
def deferred_augmentation(recipe: ClipRecipe) -> Iterator[None]:
    """Within the block, ``recipe``'s augmentation is recorded and applied to all recorded
    clips at its end (see the module docstring); other recipes run unchanged."""
    if not (
        isinstance(recipe, RecipeBase)
        and recipe.final_views
        and recipe.batch_augment
        and recipe.train
        and isinstance(recipe.augment, ClipAugment)
        and not recipe.augment.per_frame
    ):
        yield
        return
    aug = recipe.augment
    deferred = DeferredAugment(aug)
    recipe.augment = deferred  # type: ignore[assignment]
    try:
        yield
        deferred.finish()
    finally:
        recipe.augment = aug
