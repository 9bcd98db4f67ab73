"""Clip transforms: uint8 ``(T, H, W, C)`` frames -> float ``(C, T, H, W)`` tensors.

Spatial augmentations (random resized crop, horizontal flip, colour jitter, grayscale,
gaussian blur) are *temporally consistent* by default: one random draw per clip, applied to
every frame (CVRL, Qian et al. 2021, sec. 3.2). ``per_frame=True`` draws independently for
every frame (CVRL's ablation, Table 1 "w/o temporal consistency").

All randomness comes from the ``np.random.Generator`` passed in. Pure helper functions take
explicit parameters (a crop box, a flip flag, jitter factors) so that callers such as the STOR
recipe can control them; :class:`ClipAugment` draws the parameters and applies them.

Implementation: plain torch, not kornia. Measured on this machine (shared 2-core CPU, one
torch thread as in a DataLoader worker, torch 2.13, kornia 0.9; crop + flip + colour jitter +
grayscale, min / median over 60 interleaved calls):

- (3, 16, 112, 112) -> 112 px: this module 2.7 / 5.2 ms, kornia 18.9 / 22.5 ms;
- (3, 8, 112, 112) -> 64 px (the CPU default): this module 0.7 / 1.4 ms, kornia 4.8 / 8.9 ms,

with kornia as ``VideoSequential(..., same_on_frame=True)``. Kornia costs 4-7x more per
clip, which the data-loading budget (loader >= 3x faster than the CPU model step) cannot
afford. The difference is kornia's per-call parameter machinery and HSV round trip; here the crop is taken on uint8 frames first, the whole clip is resized
by one ``torch.nn.functional.interpolate`` call and hue is rotated in YIQ space by one 3x3
matrix per frame.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Box = tuple[int, int, int, int]  # (top, left, height, width) in pixels
Size = int | tuple[int, int]
PretextLabels = dict[str, int | float]

KINETICS_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
KINETICS_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)

# 2x2 jigsaw: tile positions in row-major order (top-left, top-right, bottom-left, bottom-right);
# a permutation's label is its index in this list
JIGSAW_PERMUTATIONS: list[tuple[int, int, int, int]] = list(itertools.permutations(range(4)))

# jigsaw tiles cut with a gap and a per-tile jitter against the tile-border shortcut (Noroozi &
# Favaro 2016, "Training the CFN": 64 px tiles at random positions in 75 px cells), as
# fractions of the cell side: the tile is 1 - gap - jitter = 85 % of the cell (their 64 / 75);
# neighbouring tiles are gap to gap + 2 jitter apart (mean 15 % of the cell, their 11 / 75), so
# never closer than ``gap`` (theirs can touch: we keep a minimum gap and halve the jitter)
JIGSAW_GAP: float = 0.075
JIGSAW_JITTER: float = 0.075

# RGB <-> YIQ (NTSC); hue rotation is a rotation of the (I, Q) chroma plane
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float32
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_GRAY = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)


def _pair(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


# --- layout conversions ----------------------------------------------------------------------


def frames_tchw(clip: np.ndarray | Tensor) -> Tensor:
    """uint8 ``(T, H, W, C)`` numpy or tensor -> ``(T, C, H, W)`` tensor view (no copy)."""
    x = torch.from_numpy(np.asarray(clip)) if not isinstance(clip, Tensor) else clip
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected a clip of shape (T, H, W, C) with C in (1, 3), got {tuple(x.shape)}"
        )
    return x.permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)


def to_float(clip: np.ndarray | Tensor) -> Tensor:
    """uint8 ``(T, H, W, C)`` -> float ``(C, T, H, W)`` in ``[0, 1]``, no augmentation."""
    return frames_tchw(clip).float().div_(255.0).permute(1, 0, 2, 3).contiguous()


@functools.lru_cache(maxsize=16)
def _channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """``(C, 1, 1, 1)`` mean and std tensors, made once per (mean, std, dtype); read only.

    Made outside inference mode even when first asked for inside it, so that a normalised
    tensor that requires grad can save them for its backward pass.
    """
    with torch.inference_mode(False):
        m = torch.as_tensor(mean, dtype=dtype).view(-1, 1, 1, 1)  # (C,) -> (C, 1, 1, 1)
        s = torch.as_tensor(std, dtype=dtype).view(-1, 1, 1, 1)  # (C,) -> (C, 1, 1, 1)
    return m, s


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``x: (C, T, H, W)`` -> ``(x - mean) / std`` per channel."""
    m, s = _channel_stats(tuple(mean), tuple(std), x.dtype)
    return torch.sub(x, m).div_(s)


# --- crops -----------------------------------------------------------------------------------


def center_box(height: int, width: int, frac: float = 1.0) -> Box:
    """The centred square of side ``frac * min(height, width)`` (resize-short-side + center crop)."""
    side = max(1, round(min(height, width) * frac))
    return ((height - side) // 2, (width - side) // 2, side, side)


def three_crop_boxes(height: int, width: int) -> list[Box]:
    """Three squares of the short side along the long side (start, centre, end): 3-crop testing."""
    side = min(height, width)
    if width >= height:
        lefts = [0, (width - side) // 2, width - side]
        return [(0, left, side, side) for left in lefts]
    tops = [0, (height - side) // 2, height - side]
    return [(top, 0, side, side) for top in tops]


def _random_crop_size(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int]:
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return h, w
    # fallback: the largest crop with the aspect ratio clamped into `ratio`
    aspect = min(max(width / height, ratio[0]), ratio[1])
    if width / height > aspect:
        h = height
        w = round(h * aspect)
    else:
        w = width
        h = round(w / aspect)
    return max(1, h), max(1, w)


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (0.5, 2.0),
) -> Box:
    """A random box with area fraction in ``scale`` and aspect (w/h) log-uniform in ``ratio``.

    Defaults follow CVRL (area 30-100 %, aspect 1:2 to 2:1).
    """
    h, w = _random_crop_size(height, width, scale, ratio, rng)
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    return (top, left, h, w)


def crop_resize(frames: Tensor, box: Box, size: Size, antialias: bool = False) -> Tensor:
    """Crop every frame to ``box`` and resize to ``size``.

    ``frames: (T, C, H, W)`` uint8 or float -> ``(T, C, h, w)`` float (uint8 input is scaled
    to ``[0, 1]``). Cropping happens before the float conversion, so only the box is converted.
    """
    top, left, h, w = box
    # no contiguous copy first: frames_tchw's (T, C, H, W) view of (T, H, W, C) frames has
    # channels-last strides, which the float conversion keeps, and interpolate's channels-last
    # kernel is ~1.7x faster on 8 x 3 x 32 x 32 clips, with bitwise the same values (tested)
    x = frames[:, :, top : top + h, left : left + w]
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    out = _pair(size)
    if (h, w) != out:
        x = F.interpolate(x, size=out, mode="bilinear", align_corners=False, antialias=antialias)
    return x.contiguous()


def overlap_crop_pair(
    height: int,
    width: int,
    rate: float,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (0.5, 2.0),
) -> tuple[Box, Box, float]:
    """Two equal-size boxes with spatial overlap rate ``rate`` (CSTP's STOR).

    CSTP defines the spatial overlap rate as ``gamma_s = sigma_o / sigma``: the overlap area
    over the area of one box, both boxes having the same size (w, h) (CSTP Fig. 3). For
    offsets ``(dx, dy)`` that is ``(1 - dx/w) * (1 - dy/h)``. Step 1 draws the box size as
    a random resized crop; step 2 splits ``rate = a * b`` with ``log a`` uniform over the
    feasible range, sets ``dx`` to ``(1 - a) w`` rounded down or up, then
    ``dy = round((1 - rate / a') h)`` from the rounded ``a'`` so that ``dy`` absorbs the
    rounding of ``dx`` (whichever rounding of ``dx`` leaves the smaller error). The union of the two
    boxes is placed at a random position and the offset signs are random. If the frame is
    too small for ``rate`` at the drawn size, the box shrinks by 10 % steps until it fits.

    Returns ``(box1, box2, realised_rate)``; the realised rate is within pixel rounding of
    ``rate`` (measured: ``|realised - rate| <= 0.5 / min(h, w) + 1 / (h w)``).
    (IoU would be ``realised / (2 - realised)``.)
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate={rate}: a spatial overlap rate must be in [0, 1]")
    h, w = _random_crop_size(height, width, scale, ratio, rng)
    while True:
        # smallest per-axis overlap factors the frame allows: offset <= frame - box
        a_min = max(0.0, 1.0 - (width - w) / w)
        b_min = max(0.0, 1.0 - (height - h) / h)
        if rate == 0.0:
            if a_min == 0.0 or b_min == 0.0:
                break
        elif max(rate, a_min) <= (1.0 if b_min == 0.0 else min(1.0, rate / b_min)):
            break
        if h == 1 and w == 1:
            raise ValueError(f"overlap rate {rate} is not realisable in a {height}x{width} frame")
        h, w = max(1, int(h * 0.9)), max(1, int(w * 0.9))
    if rate == 0.0:
        axes = [i for i, m in enumerate((a_min, b_min)) if m == 0.0]
        zero_x = axes[int(rng.integers(0, len(axes)))] == 0
        a = 0.0 if zero_x else math.exp(rng.uniform(math.log(max(a_min, 1e-6)), 0.0))
        b = 0.0 if not zero_x else math.exp(rng.uniform(math.log(max(b_min, 1e-6)), 0.0))
        dx = min(width - w, round((1.0 - a) * w))
        dy = min(height - h, round((1.0 - b) * h))
    else:
        lo = max(rate, a_min)
        hi = 1.0 if b_min == 0.0 else min(1.0, rate / b_min)
        a = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        # round dx down or up, whichever lets dy absorb the rounding best
        best = None
        for dx_c in {math.floor((1.0 - a) * w), math.ceil((1.0 - a) * w)}:
            dx_c = min(width - w, max(0, dx_c))
            b = min(1.0, rate * w / max(w - dx_c, 1))
            dy_c = min(height - h, max(0, round((1.0 - b) * h)))
            err = abs((w - dx_c) * (h - dy_c) / (w * h) - rate)
            if best is None or err < best[0]:
                best = (err, dx_c, dy_c)
        _, dx, dy = best
    # place the union (h + dy, w + dx) at random; random corner for the first box
    top = int(rng.integers(0, height - (h + dy) + 1))
    left = int(rng.integers(0, width - (w + dx) + 1))
    sy, sx = (int(s) for s in rng.integers(0, 2, size=2))
    box1 = (top + dy * sy, left + dx * sx, h, w)
    box2 = (top + dy * (1 - sy), left + dx * (1 - sx), h, w)
    realised = (w - dx) * (h - dy) / (w * h)
    return box1, box2, realised


def box_overlap_rate(box1: Box, box2: Box) -> float:
    """CSTP spatial overlap rate: overlap area / area of ``box1``."""
    t1, l1, h1, w1 = box1
    t2, l2, h2, w2 = box2
    oh = max(0, min(t1 + h1, t2 + h2) - max(t1, t2))
    ow = max(0, min(l1 + w1, l2 + w2) - max(l1, l2))
    return oh * ow / (h1 * w1)


# --- photometric ops on (T, C, H, W) float in [0, 1] --------------------------------------------

# A mask or factor is one value per frame ((T,) tensor), one for all frames ((1,) tensor), or,
# cheaper, one Python bool / float for all frames (a float32 value: the float ops compute in
# float32 either way). On 8 x 3 x 32 x 32 clips each torch call costs more in dispatch than in
# arithmetic: ClipAugment passes Python values when it draws once per clip.
Mask = Tensor | bool
Factor = Tensor | float


def _per_frame(v: Factor) -> Tensor | float:
    return v if isinstance(v, float) else v.view(-1, 1, 1, 1)  # (n,) -> (n, 1, 1, 1)


def _any(mask: Mask) -> bool:
    return mask if isinstance(mask, bool) else bool(mask.any())


def _all(mask: Mask) -> bool:
    return mask if isinstance(mask, bool) else bool(mask.all())


def grayscale_of(x: Tensor) -> Tensor:
    """``x: (T, 3, H, W)`` -> luma ``(T, 1, H, W)``."""
    return (x * _GRAY.to(x.dtype).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )  # (T, 3, H, W) -> (T, 1, H, W)


# The ops below write into the tensor they created (``mul_``, ``add_``) instead of allocating
# one per step: the same float operations in the same order, so bitwise the same result.


def adjust_brightness(x: Tensor, factor: Factor) -> Tensor:
    return (x * _per_frame(factor)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Factor) -> Tensor:
    mean = grayscale_of(x).mean(dim=(1, 2, 3), keepdim=True)  # (T, 1, 1, 1)
    return (x - mean).mul_(_per_frame(factor)).add_(mean).clamp_(0.0, 1.0)


def adjust_saturation(x: Tensor, factor: Factor) -> Tensor:
    gray = grayscale_of(x)
    return (x - gray).mul_(_per_frame(factor)).add_(gray).clamp_(0.0, 1.0)


def adjust_hue(x: Tensor, shift: Factor) -> Tensor:
    """Rotate hue by ``shift`` turns (in ``[-0.5, 0.5]``) as a rotation of YIQ's chroma plane.

    A cheap linear stand-in for torchvision's HSV hue shift (one 3x3 matrix per frame).
    """
    shift = torch.tensor([shift], dtype=torch.float32) if isinstance(shift, float) else shift
    theta = shift.to(torch.float32) * (2.0 * math.pi)  # (n,) float32
    cos, sin = torch.cos(theta).numpy(), torch.sin(theta).numpy()
    n = len(cos)
    # the rotation's entries are 0, 1, cos, +-sin: set in numpy, exactly as stacked in torch
    rot = np.zeros((3, n, 3), dtype=np.float32)  # (j, n, k): row j of every frame's rotation
    rot[0, :, 0] = 1.0
    rot[1, :, 1], rot[1, :, 2] = cos, -sin
    rot[2, :, 1], rot[2, :, 2] = sin, cos
    # m = YIQ_TO_RGB @ rot @ RGB_TO_YIQ as the two products torch.einsum("ij,njk,kl->nil")
    # computes, in its order and layouts (bitwise equal, tested), without its ~15 us of setup
    right = torch.from_numpy(rot).view(1, 3, n * 3)  # (j, n, k) -> (1, j, n*k)
    left = torch.bmm(_YIQ_TO_RGB[None], right)  # (1, i, j) @ (1, j, n*k) -> (1, i, n*k)
    left = left.view(3, n, 3).permute(1, 0, 2).reshape(1, n * 3, 3)  # -> (1, n*i, k)
    m = torch.bmm(left, _RGB_TO_YIQ[None]).view(n, 3, 3).to(x.dtype)  # (1, n*i, l) -> (n, 3, 3)
    t, c, h, w = x.shape
    y = torch.matmul(m, x.reshape(t, c, h * w))  # (n, 3, 3) @ (T, 3, H*W) -> (T, 3, H*W)
    return y.view(t, c, h, w).clamp_(0.0, 1.0)


def to_grayscale(x: Tensor, mask: Mask) -> Tensor:
    """Replace frames where ``mask`` ((T,) or (1,) bool, or one bool) is set by their luma."""
    if not _any(mask):
        return x
    gray = grayscale_of(x).expand_as(x)
    return gray.contiguous() if _all(mask) else torch.where(_per_frame(mask), gray, x)


def hflip(x: Tensor, mask: Mask) -> Tensor:
    """Mirror frames (``x: (T, C, H, W)``) where ``mask`` ((T,) or (1,) bool, or one bool) is set."""
    if not _any(mask):
        return x
    return x.flip(-1) if _all(mask) else torch.where(_per_frame(mask), x.flip(-1), x)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable gaussian blur with reflect padding; ``sigma``: (T,) or (1,) pixels."""
    t, c, h, w = x.shape
    k = kernel_size | 1  # odd
    r = k // 2
    pos = torch.arange(k, dtype=x.dtype) - r  # (k,)
    kern = torch.exp(-(pos[None, :] ** 2) / (2.0 * sigma.to(x.dtype)[:, None] ** 2))  # (n, k)
    kern = (kern / kern.sum(-1, keepdim=True)).expand(t, k).repeat_interleave(c, 0)  # (T*C, k)
    y = x.reshape(1, t * c, h, w)  # (T, C, H, W) -> (1, T*C, H, W)
    y = F.pad(y, (r, r, 0, 0), mode="reflect" if w > r else "replicate")
    y = F.conv2d(y, kern.view(t * c, 1, 1, k), groups=t * c)
    y = F.pad(y, (0, 0, r, r), mode="reflect" if h > r else "replicate")
    y = F.conv2d(y, kern.view(t * c, 1, k, 1), groups=t * c)
    return y.view(t, c, h, w)  # (1, T*C, H, W) -> (T, C, H, W)


def solarize(x: Tensor, mask: Mask, threshold: float = 0.5) -> Tensor:
    """Solarise frames (``x: (T, C, H, W)`` float in [0, 1]) where ``mask`` ((T,) or (1,)
    bool, or one bool) is set: values >= ``threshold`` become ``1 - value`` (BYOL; CVRL's
    released code)."""
    if not _any(mask):
        return x
    y = torch.where(x < threshold, x, 1.0 - x)
    return y if _all(mask) else torch.where(_per_frame(mask), y, x)


# colour-jitter ops in a fixed order; ClipAugment applies them in a random permutation
_JITTER_OPS: list[Callable[[Tensor, Factor], Tensor]] = [
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_hue,
]


# --- geometric pretext transforms on (C, T, H, W) ----------------------------------------------


def rotate90(x: Tensor, k: int) -> Tensor:
    """Rotate every frame by ``k * 90`` degrees counter-clockwise. ``(..., H, W)``."""
    return torch.rot90(x, k % 4, dims=(-2, -1))


def jigsaw(x: Tensor, perm: Sequence[int]) -> Tensor:
    """2x2 spatial jigsaw: output tile ``p`` (row-major) is input tile ``perm[p]``.

    ``x: (..., H, W)`` with even ``H`` and ``W``.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"jigsaw needs even height and width, got {h}x{w}")
    if sorted(perm) != [0, 1, 2, 3]:
        raise ValueError(f"perm={list(perm)}: must be a permutation of 0..3")
    hh, hw = h // 2, w // 2
    tiles = [x[..., i * hh : (i + 1) * hh, j * hw : (j + 1) * hw] for i in (0, 1) for j in (0, 1)]
    out = [tiles[p] for p in perm]
    return torch.cat([torch.cat(out[0:2], -1), torch.cat(out[2:4], -1)], -2)


def unjigsaw(x: Tensor, perm: Sequence[int]) -> Tensor:
    """Undo :func:`jigsaw` with the same ``perm``."""
    inverse = [0] * 4
    for pos, src in enumerate(perm):
        inverse[src] = pos
    return jigsaw(x, inverse)


def jigsaw_margins(cell: int, gap: float, jitter: float) -> tuple[int, int, int]:
    """``(gap_px, jitter_px, tile_px)`` for a jigsaw cell of ``cell`` pixels.

    ``gap`` and ``jitter`` are fractions of the cell side, rounded to pixels (at least 1 px
    when > 0); the tile side is ``cell - gap_px - jitter_px``. Raises if no pixel is left.
    """
    if not (0.0 <= gap < 1.0 and 0.0 <= jitter < 1.0):
        raise ValueError(f"jigsaw gap={gap}, jitter={jitter}: fractions of the cell in [0, 1)")
    gap_px = max(1, round(gap * cell)) if gap > 0 else 0
    jitter_px = max(1, round(jitter * cell)) if jitter > 0 else 0
    tile = cell - gap_px - jitter_px
    if tile < 1:
        raise ValueError(
            f"jigsaw gap={gap}, jitter={jitter}: no tile left in a {cell} px cell "
            f"({gap_px} px gap + {jitter_px} px jitter)"
        )
    return gap_px, jitter_px, tile


def jigsaw_tile_boxes(
    height: int, width: int, gap: float, jitter: float, rng: np.random.Generator
) -> list[Box]:
    """Source boxes of the four 2x2 jigsaw tiles (row-major), cut with a gap and jitter.

    Each ``(H/2, W/2)`` cell keeps ``floor(gap_px / 2)`` pixels before its tile, and the
    tile is shifted by a random ``0..jitter_px`` pixels per axis (one draw per tile, so one
    per clip when applied to all frames). Neighbouring tiles then have between ``gap_px`` and
    ``gap_px + 2 jitter_px`` pixels between them (:func:`jigsaw_margins`), so no tile border
    continues into another tile. With ``jitter == 0`` nothing is drawn from ``rng``.
    """
    if height % 2 or width % 2:
        raise ValueError(f"jigsaw needs even height and width, got {height}x{width}")
    ch, cw = height // 2, width // 2
    gy, jy, th = jigsaw_margins(ch, gap, jitter)
    gx, jx, tw = jigsaw_margins(cw, gap, jitter)
    shifts = rng.integers(0, (jy + 1, jx + 1), size=(4, 2)) if jy or jx else np.zeros((4, 2))
    return [
        (
            i * ch + gy // 2 + int(shifts[2 * i + j, 0]),
            j * cw + gx // 2 + int(shifts[2 * i + j, 1]),
            th,
            tw,
        )
        for i in (0, 1)
        for j in (0, 1)
    ]


def jigsaw_gapped(
    x: Tensor, perm: Sequence[int], boxes: Sequence[Box], fill: float = 0.0
) -> Tensor:
    """2x2 jigsaw of tiles cut at ``boxes`` (:func:`jigsaw_tile_boxes`): output cell ``p``
    (row-major) holds source tile ``perm[p]``, centred; the rest of the cell is ``fill`` (0 = the
    normalisation mean for normalised clips). ``x: (..., H, W)`` -> ``(..., H, W)``; every
    leading index (channels, frames) gets the same tiles."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"jigsaw needs even height and width, got {h}x{w}")
    if sorted(perm) != [0, 1, 2, 3] or len(boxes) != 4:
        raise ValueError(f"perm={list(perm)}: must be a permutation of 0..3 (4 boxes)")
    ch, cw = h // 2, w // 2
    out = torch.full_like(x, fill)
    for pos, src in enumerate(perm):
        top, left, th, tw = boxes[src]
        oy = (pos // 2) * ch + (ch - th) // 2
        ox = (pos % 2) * cw + (cw - tw) // 2
        out[..., oy : oy + th, ox : ox + tw] = x[..., top : top + th, left : left + tw]
    return out


# --- the augmentation pipeline -----------------------------------------------------------------


@dataclass
class ClipAugment:
    """Random spatial augmentation of one clip, uint8 ``(T, H, W, C)`` -> float ``(C, T, h, w)``.

    Order (SimCLR/CVRL): random resized crop -> horizontal flip -> colour jitter (brightness,
    contrast, saturation, hue in random order, with probability ``p_jitter``) -> grayscale ->
    gaussian blur -> solarisation -> normalise. Jitter ranges follow SimCLR's strength ``s``:
    brightness, contrast and saturation factors in ``[1 - 0.8 s, 1 + 0.8 s]``, hue shift in
    ``[-0.2 s, 0.2 s]`` turns. ``blur_sigma`` is in pixels at 224 px output and scales with
    ``size`` (kernel 10 % of the side, as SimCLR). Solarisation (``p_solarize``) inverts values
    >= 0.5, as CVRL's released pipeline (which solarises its second view with p = 0.2).

    With ``per_frame=False`` (default) one draw is applied to every frame; ``per_frame=True``
    draws every parameter (crop box included) independently per frame.
    """

    size: Size = 64
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (0.5, 2.0)
    p_flip: float = 0.5
    jitter_strength: float = 1.0
    p_jitter: float = 0.8
    p_gray: float = 0.2
    p_blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    mean: Sequence[float] = KINETICS_MEAN
    std: Sequence[float] = KINETICS_STD
    per_frame: bool = False
    antialias: bool = False
    p_solarize: float = 0.0  # probability of solarising the clip (after the blur)

    def crop(self, frames: Tensor, rng: np.random.Generator, box: Box | None = None) -> Tensor:
        """``frames: (T, C, H, W)`` uint8 -> ``(T, C, h, w)`` float cropped + resized."""
        t, _, h, w = frames.shape
        if box is not None:
            return crop_resize(frames, box, self.size, self.antialias)
        if not self.per_frame:
            box = random_resized_crop_box(h, w, rng, self.scale, self.ratio)
            return crop_resize(frames, box, self.size, self.antialias)
        boxes = [random_resized_crop_box(h, w, rng, self.scale, self.ratio) for _ in range(t)]
        return torch.cat(
            [
                crop_resize(frames[i : i + 1], b, self.size, self.antialias)
                for i, b in enumerate(boxes)
            ]
        )

    def photometric(self, x: Tensor, rng: np.random.Generator) -> Tensor:
        """Flip, jitter, grayscale and blur ``x: (T, C, h, w)`` float in [0, 1]."""
        n = x.shape[0] if self.per_frame else 1

        # one draw per frame: (T,) tensors; one per clip: a Python float32 value / bool
        def draw(lo: float, hi: float) -> Factor:
            v = rng.uniform(lo, hi, size=n).astype(np.float32)
            return torch.from_numpy(v) if self.per_frame else float(v[0])

        def coin(p: float) -> Mask:
            v = rng.random(size=n) < p
            return torch.from_numpy(v) if self.per_frame else bool(v[0])

        x = hflip(x, coin(self.p_flip))
        s = self.jitter_strength
        if s > 0 and self.p_jitter > 0:
            apply = coin(self.p_jitter)
            lo = max(0.0, 1 - 0.8 * s)
            factors = [draw(lo, 1 + 0.8 * s) for _ in range(3)] + [draw(-0.2 * s, 0.2 * s)]
            order = rng.permutation(4)
            if _any(apply):
                y = x
                for i in order:
                    y = _JITTER_OPS[int(i)](y, factors[int(i)])
                x = y if _all(apply) else torch.where(_per_frame(apply), y, x)
        if self.p_gray > 0:
            x = to_grayscale(x, coin(self.p_gray))
        if self.p_blur > 0:
            apply = coin(self.p_blur)
            side = min(x.shape[-2:])
            sigma = torch.as_tensor(draw(*self.blur_sigma), dtype=torch.float32).view(-1)
            sigma = sigma * (side / 224.0)  # (n,)
            if _any(apply):
                blurred = gaussian_blur(x, sigma.clamp_min(1e-3), max(3, round(0.1 * side)))
                x = blurred if _all(apply) else torch.where(_per_frame(apply), blurred, x)
        if self.p_solarize > 0:
            x = solarize(x, coin(self.p_solarize))
        return x

    def __call__(
        self, clip: np.ndarray | Tensor, rng: np.random.Generator, box: Box | None = None
    ) -> Tensor:
        """``clip: (T, H, W, C)`` uint8 -> ``(C, T, h, w)`` float, normalised.

        Crop and photometric ops run in inference mode (no autograd bookkeeping: ~7 % of this
        call's CPU on 8 x 32 x 32 clips); the normalisation outside it returns an ordinary
        tensor, which later code may modify in place or train on.
        """
        with torch.inference_mode():
            x = self.photometric(self.crop(frames_tchw(clip), rng, box), rng)  # (T, C, h, w)
        return normalize(x.permute(1, 0, 2, 3), self.mean, self.std)  # -> (C, T, h, w)


@dataclass
class EvalTransform:
    """Deterministic: resize the short side to ``size`` and take the centre square (or ``box``)."""

    size: Size = 64
    mean: Sequence[float] = KINETICS_MEAN
    std: Sequence[float] = KINETICS_STD
    antialias: bool = True

    def __call__(
        self,
        clip: np.ndarray | Tensor,
        rng: np.random.Generator | None = None,
        box: Box | None = None,
    ) -> Tensor:
        """``clip: (T, H, W, C)`` uint8 -> ``(C, T, size, size)`` float, normalised."""
        frames = frames_tchw(clip)
        box = center_box(frames.shape[-2], frames.shape[-1]) if box is None else box
        x = crop_resize(frames, box, self.size, self.antialias)  # (T, C, s, s)
        return normalize(x.permute(1, 0, 2, 3), self.mean, self.std)  # -> (C, T, s, s)


# --- multi-view with pretext labels ------------------------------------------------------------

ClipTransform = Callable[[np.ndarray, np.random.Generator], Tensor]
ViewTransform = Callable[[np.ndarray, np.random.Generator], tuple[Tensor, PretextLabels]]


@dataclass
class PlainView:
    """A view without pretext labels."""

    transform: ClipTransform

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> tuple[Tensor, PretextLabels]:
        return self.transform(clip, rng), {}


@dataclass
class RotationView:
    """A view rotated by ``k * 90`` degrees, ``k`` uniform in 0..3; label ``"rotation": k``."""

    transform: ClipTransform

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> tuple[Tensor, PretextLabels]:
        x = self.transform(clip, rng)
        k = int(rng.integers(0, 4))
        return rotate90(x, k), {"rotation": k}


@dataclass
class JigsawView:
    """A 2x2 jigsaw of the view; label ``"jigsaw"``: index into ``permutations``.

    Tiles are cut with ``gap`` and per-tile ``jitter`` (fractions of the cell,
    :func:`jigsaw_tile_boxes`); ``gap = jitter = 0`` gives the plain :func:`jigsaw`.
    """

    transform: ClipTransform
    permutations: Sequence[Sequence[int]] = field(default_factory=lambda: JIGSAW_PERMUTATIONS)
    gap: float = JIGSAW_GAP  # fraction of the cell between neighbouring tiles (at least)
    jitter: float = JIGSAW_JITTER  # fraction of the cell by which each tile shifts at random

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> tuple[Tensor, PretextLabels]:
        x = self.transform(clip, rng)
        label = int(rng.integers(0, len(self.permutations)))
        if self.gap == 0 and self.jitter == 0:
            return jigsaw(x, self.permutations[label]), {"jigsaw": label}
        boxes = jigsaw_tile_boxes(x.shape[-2], x.shape[-1], self.gap, self.jitter, rng)
        return jigsaw_gapped(x, self.permutations[label], boxes), {"jigsaw": label}


@dataclass
class MultiView:
    """Apply each view transform to the same clip: returns ``(views, labels)``.

    ``views``: list of ``(C, T, H, W)``; ``labels``: one pretext-label dict per view.
    """

    views: Sequence[ViewTransform]

    def __call__(
        self, clip: np.ndarray, rng: np.random.Generator
    ) -> tuple[list[Tensor], list[PretextLabels]]:
        outs = [view(clip, rng) for view in self.views]
        return [v for v, _ in outs], [lab for _, lab in outs]


def make_transform(train: bool, **kwargs: Any) -> ClipTransform:
    """``ClipAugment(**kwargs)`` when training, else ``EvalTransform`` with the shared fields."""
    if train:
        return ClipAugment(**kwargs)
    shared = {k: kwargs[k] for k in ("size", "mean", "std") if k in kwargs}
    return EvalTransform(**shared)
