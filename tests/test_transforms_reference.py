"""The per-clip augmentation equals the implementation it replaced, kept here as the reference.

``vidssl.data.transforms`` was made cheaper per clip (docs/performance.md, section 2). The
functions below are the code as it was before (commit cf25283), op for op; the tests check
that the new code draws the same random numbers in the same order and gives *bitwise* the same
clips. Bitwise, not up to float rounding: the tiny preset's saved outputs
(``tests/test_tiny_outputs.py``) change beyond their 1e-6 tolerance when any jitter op rounds
differently in the last bit (tried: luma by matmul, saturation and hue as one colour matrix
built in float64, contrast's mean from channel means; each alone changed the simclr row's
retrieval scores), so only changes that keep every float operation were kept. Unchanged
helpers (crop box sampler, blur, solarisation) are imported.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from vidssl.data import transforms as T

# --- the reference: the previous implementation -------------------------------------------------

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float32
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_GRAY = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)


def ref_crop_resize(frames: Tensor, box: T.Box, size: T.Size, antialias: bool = False) -> Tensor:
    top, left, h, w = box
    x = frames[:, :, top : top + h, left : left + w].contiguous()
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    out = T._pair(size)
    if (h, w) != out:
        x = F.interpolate(x, size=out, mode="bilinear", align_corners=False, antialias=antialias)
    return x.contiguous()


def _per_frame(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)  # (n,) -> (n, 1, 1, 1)


def ref_grayscale_of(x: Tensor) -> Tensor:
    return (x * _GRAY.view(1, 3, 1, 1)).sum(1, keepdim=True)  # (T, 3, H, W) -> (T, 1, H, W)


def ref_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * _per_frame(factor)).clamp_(0.0, 1.0)


def ref_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = ref_grayscale_of(x).mean(dim=(1, 2, 3), keepdim=True)  # (T, 1, 1, 1)
    return ((x - mean) * _per_frame(factor) + mean).clamp_(0.0, 1.0)


def ref_saturation(x: Tensor, factor: Tensor) -> Tensor:
    gray = ref_grayscale_of(x)
    return ((x - gray) * _per_frame(factor) + gray).clamp_(0.0, 1.0)


def ref_hue(x: Tensor, shift: Tensor) -> Tensor:
    theta = shift.to(torch.float32) * (2.0 * math.pi)
    cos, sin = torch.cos(theta), torch.sin(theta)
    one, zero = torch.ones_like(theta), torch.zeros_like(theta)
    rot = torch.stack(
        [
            torch.stack([one, zero, zero], -1),
            torch.stack([zero, cos, -sin], -1),
            torch.stack([zero, sin, cos], -1),
        ],
        -2,
    )  # (n, 3, 3)
    m = torch.einsum("ij,njk,kl->nil", _YIQ_TO_RGB, rot, _RGB_TO_YIQ)  # (n, 3, 3)
    t, c, h, w = x.shape
    y = torch.matmul(m, x.reshape(t, c, h * w))  # (n, 3, 3) @ (T, 3, H*W) -> (T, 3, H*W)
    return y.view(t, c, h, w).clamp_(0.0, 1.0)


REF_JITTER = [ref_brightness, ref_contrast, ref_saturation, ref_hue]


def ref_to_grayscale(x: Tensor, mask: Tensor) -> Tensor:
    if not bool(mask.any()):
        return x
    gray = ref_grayscale_of(x).expand_as(x)
    return gray.contiguous() if bool(mask.all()) else torch.where(_per_frame(mask), gray, x)


def ref_hflip(x: Tensor, mask: Tensor) -> Tensor:
    if not bool(mask.any()):
        return x
    return x.flip(-1) if bool(mask.all()) else torch.where(_per_frame(mask), x.flip(-1), x)


def ref_crop(aug: T.ClipAugment, frames: Tensor, rng: np.random.Generator) -> Tensor:
    t, _, h, w = frames.shape
    if not aug.per_frame:
        box = T.random_resized_crop_box(h, w, rng, aug.scale, aug.ratio)
        return ref_crop_resize(frames, box, aug.size, aug.antialias)
    boxes = [T.random_resized_crop_box(h, w, rng, aug.scale, aug.ratio) for _ in range(t)]
    return torch.cat(
        [
            ref_crop_resize(frames[i : i + 1], b, aug.size, aug.antialias)
            for i, b in enumerate(boxes)
        ]
    )


def ref_photometric(aug: T.ClipAugment, x: Tensor, rng: np.random.Generator) -> Tensor:
    n = x.shape[0] if aug.per_frame else 1

    def draw(lo: float, hi: float) -> Tensor:
        return torch.from_numpy(rng.uniform(lo, hi, size=n)).float()

    def coin(p: float) -> Tensor:
        return torch.from_numpy(rng.random(size=n) < p)

    x = ref_hflip(x, coin(aug.p_flip))
    s = aug.jitter_strength
    if s > 0 and aug.p_jitter > 0:
        apply = coin(aug.p_jitter)
        lo = max(0.0, 1 - 0.8 * s)
        factors = [draw(lo, 1 + 0.8 * s) for _ in range(3)] + [draw(-0.2 * s, 0.2 * s)]
        order = rng.permutation(4)
        if bool(apply.any()):
            y = x
            for i in order:
                y = REF_JITTER[int(i)](y, factors[int(i)])
            x = torch.where(_per_frame(apply), y, x)
    if aug.p_gray > 0:
        x = ref_to_grayscale(x, coin(aug.p_gray))
    if aug.p_blur > 0:
        apply = coin(aug.p_blur)
        side = min(x.shape[-2:])
        sigma = draw(*aug.blur_sigma) * (side / 224.0)
        if bool(apply.any()):
            blurred = T.gaussian_blur(x, sigma.clamp_min(1e-3), max(3, round(0.1 * side)))
            x = torch.where(_per_frame(apply), blurred, x)
    if aug.p_solarize > 0:
        x = T.solarize(x, coin(aug.p_solarize))
    return x


def ref_augment(aug: T.ClipAugment, clip: np.ndarray, rng: np.random.Generator) -> Tensor:
    """``clip: (T, H, W, C)`` uint8 -> ``(C, T, h, w)``, as ``ClipAugment.__call__`` was."""
    x = ref_photometric(aug, ref_crop(aug, T.frames_tchw(clip), rng), rng)  # (T, C, h, w)
    m = torch.as_tensor(aug.mean, dtype=x.dtype).view(-1, 1, 1, 1)
    s = torch.as_tensor(aug.std, dtype=x.dtype).view(-1, 1, 1, 1)
    return (x.permute(1, 0, 2, 3) - m) / s  # (T, C, h, w) -> (C, T, h, w), normalised


# --- the tests ------------------------------------------------------------------------------------

# every branch: flips, jitter (several strengths), grayscale, blur, solarisation, per-frame draws
CONFIGS = {
    "default 32 px": dict(size=32),
    "all ops": dict(size=16, p_gray=0.5, p_blur=0.5, p_solarize=0.5, blur_sigma=(2.0, 20.0)),
    "per frame": dict(size=16, per_frame=True, p_gray=0.3, p_blur=0.3, p_solarize=0.3),
    "weak jitter": dict(size=(12, 20), jitter_strength=0.5, p_jitter=1.0),
    "antialias": dict(size=16, antialias=True, p_jitter=1.0, mean=(0.4, 0.5, 0.6)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_clip_augment_equals_the_reference_over_many_seeds(name: str) -> None:
    aug = T.ClipAugment(**CONFIGS[name])
    gen = np.random.default_rng(7)
    shapes = [(8, 64, 64), (8, 48, 64), (4, 20, 24), (1, 30, 17)]
    for seed in range(120):
        t, h, w = shapes[seed % len(shapes)]
        clip = gen.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
        got_rng, want_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        got, want = aug(clip, got_rng), ref_augment(aug, clip, want_rng)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert torch.equal(got, want), (name, seed)
        # the same random numbers were drawn: both generators are at the same state
        assert got_rng.bit_generator.state == want_rng.bit_generator.state, (name, seed)


@pytest.mark.parametrize("antialias", [False, True])
def test_crop_resize_is_bitwise_the_reference(antialias: bool) -> None:
    gen = np.random.default_rng(1)
    for i in range(60):
        h, w = [(64, 64), (48, 64), (20, 24), (32, 32)][i % 4]
        c = [3, 2, 1][i % 3]  # RGB, flow, gray
        frames = torch.from_numpy(gen.integers(0, 256, size=(5, h, w, c), dtype=np.uint8))
        box = T.random_resized_crop_box(h, w, gen) if i % 5 else T.center_box(h, w)
        for x in (frames, frames.float() / 7.0):  # uint8 frames, float frames (flow)
            tchw = x.permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W) view
            for size in (32, 16, (24, 20)):
                got = T.crop_resize(tchw, box, size, antialias)
                assert got.is_contiguous()
                assert torch.equal(got, ref_crop_resize(tchw, box, size, antialias)), (i, size)


@pytest.mark.parametrize("frames_drawn", [1, 6])
def test_jitter_ops_equal_the_reference(frames_drawn: int) -> None:
    """One factor for the clip (n = 1) or one per frame (n = T, the ablation and the batch)."""
    gen = np.random.default_rng(2)
    ops = zip(T._JITTER_OPS, REF_JITTER, [(0.0, 2.0), (0.0, 2.0), (0.0, 2.0), (-0.5, 0.5)])
    for op, ref, (lo, hi) in ops:
        for _ in range(20):
            x = torch.from_numpy(gen.random((6, 3, 9, 11), dtype=np.float32))  # (T, 3, H, W)
            factor = torch.from_numpy(gen.uniform(lo, hi, size=frames_drawn)).float()
            before = x.clone()
            got = op(x, factor)
            assert torch.equal(x, before)  # the input is left alone
            assert torch.equal(got, ref(x, factor))
            if frames_drawn == 1:  # one Python float for the clip, as ClipAugment passes it
                assert torch.equal(op(x, float(factor)), got)
    x = torch.from_numpy(gen.random((6, 3, 9, 11), dtype=np.float32))
    assert torch.equal(T.grayscale_of(x), ref_grayscale_of(x))


@pytest.mark.parametrize("side", [9, 16, 32])
def test_identical_frames_stay_bitwise_identical(side: int) -> None:
    """Temporal consistency survives the fused ops: one draw gives every frame the same
    arithmetic (no product over all pixels at once that rounds frames differently)."""
    aug = T.ClipAugment(size=side, p_jitter=1.0, p_gray=0.3, p_blur=0.3, p_solarize=0.3)
    gen = np.random.default_rng(side)
    for seed in range(40):
        frame = gen.integers(0, 256, size=(1, 40, 36, 3), dtype=np.uint8)
        out = aug(np.repeat(frame, 7, axis=0), np.random.default_rng(seed))  # (C, 7, h, w)
        for k in range(1, 7):
            assert torch.equal(out[:, k], out[:, 0]), (seed, k)


def test_hue_equals_the_reference_einsum_for_batches_of_frames() -> None:
    """adjust_hue builds its matrices with the two products einsum made: bitwise the same for
    a batch's worth of per-frame shifts too (batch_augment passes N * T of them)."""
    gen = np.random.default_rng(3)
    for frames in (1, 32, 256):
        x = torch.from_numpy(gen.random((frames, 3, 2, 3), dtype=np.float32))
        shift = torch.from_numpy(gen.uniform(-0.5, 0.5, size=frames)).float()
        assert torch.equal(T.adjust_hue(x, shift), ref_hue(x, shift)), frames


def test_augmented_clip_is_an_ordinary_tensor() -> None:
    """ClipAugment crops and jitters in inference mode; what it returns is not an inference
    tensor: later code may write into it and train on it."""
    aug = T.ClipAugment(size=16, p_jitter=1.0, p_gray=0.5)
    clip = np.random.default_rng(4).integers(0, 256, size=(4, 20, 24, 3), dtype=np.uint8)
    out = aug(clip, np.random.default_rng(0))
    assert not out.is_inference()
    weight = torch.ones(3, 1, 1, 1, requires_grad=True)
    (out.add_(1.0) * weight).sum().backward()  # in place, then saved for backward
    assert weight.grad is not None
    with torch.inference_mode():  # the normalisation's cached constants are ordinary too
        T.normalize(torch.zeros(3, 1, 2, 2), (0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    x = torch.rand(3, 1, 2, 2, requires_grad=True)
    T.normalize(x, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5)).sum().backward()
    assert x.grad is not None
