"""Blur and solarisation: temporally consistent (one draw per clip), per-view probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidssl.config import load_config
from vidssl.data.recipes import RECIPES, TwoClips
from vidssl.data.transforms import ClipAugment, solarize

REPO = Path(__file__).resolve().parents[1]
UNIT = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # outputs stay in [0, 1]


class ArrayVideo:
    """A VideoSource over an in-memory (T, H, W, 3) uint8 array."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames, self.path, self.fps = frames, "array", 25.0
        self.num_frames = len(frames)

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        return self.frames[np.asarray(indices) % self.num_frames]

    def close(self) -> None:
        pass


def noise_clip(t: int = 6, side: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, side, side, 3), dtype=np.uint8)


def blur_and_solarize(**kw: object) -> ClipAugment:
    return ClipAugment(size=16, p_blur=1.0, p_solarize=1.0, blur_sigma=(20.0, 40.0), **UNIT, **kw)


def test_solarize_inverts_values_at_or_above_the_threshold() -> None:
    x = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.8, 1.0]).view(1, 1, 1, 6)
    expected = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.2, 0.0]).view(1, 1, 1, 6)
    torch.testing.assert_close(solarize(x, torch.tensor([True])), expected)
    assert torch.equal(solarize(x, torch.tensor([False])), x)
    two = torch.cat([x, x])  # (2, 1, 1, 6): only the masked frame changes
    out = solarize(two, torch.tensor([False, True]))
    assert torch.equal(out[0], x[0]) and torch.allclose(out[1], expected[0])


def test_identical_frames_stay_identical() -> None:
    frame = noise_clip(t=1)
    clip = np.repeat(frame, 5, axis=0)  # (5, H, W, 3), every frame the same
    for seed in range(4):
        out = blur_and_solarize()(clip, np.random.default_rng(seed))  # (C, T, h, w)
        for k in range(1, 5):
            assert torch.equal(out[:, k], out[:, 0]), (seed, k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_k_equals_the_transform_of_frame_k_alone(seed: int) -> None:
    clip = noise_clip(t=6)
    augment = blur_and_solarize()
    whole = augment(clip, np.random.default_rng(seed))  # (C, 6, h, w)
    plain = ClipAugment(size=16, p_blur=0.0, p_solarize=0.0, blur_sigma=(20.0, 40.0), **UNIT)
    unblurred = plain(clip, np.random.default_rng(seed))
    assert not torch.allclose(whole, unblurred)  # blur and solarisation did something
    for k in range(6):
        alone = augment(clip[k : k + 1], np.random.default_rng(seed))  # (C, 1, h, w)
        torch.testing.assert_close(whole[:, k], alone[:, 0], rtol=0, atol=1e-6)


def test_per_frame_draws_differ_across_frames() -> None:
    """The ablation path still draws per frame (so the consistency above is not trivial)."""
    clip = np.repeat(noise_clip(t=1), 8, axis=0)
    augment = ClipAugment(
        size=16, p_flip=0, p_jitter=0, p_gray=0, p_solarize=0.5, per_frame=True, **UNIT
    )
    out = augment(clip, np.random.default_rng(3))
    solarised = [not torch.equal(out[:, k], out[:, 0]) for k in range(8)]
    assert any(solarised)


def test_two_clips_per_view_probabilities() -> None:
    """view 1 always blurred, never solarised; view 2 always solarised, never blurred."""
    # at 112 px the blur sigma is 0.05-1 px (0.1-2 px at 224 px)
    kw = dict(clip_len=4, stride=1, size=112, p_flip=0, p_jitter=0, p_gray=0, **UNIT)
    off = 1e-12  # never applied, but drawn: both recipes consume the same random numbers
    recipe = TwoClips(**kw, view_p_blur=(1.0, off), view_p_solarize=(off, 1.0))
    assert [a.p_blur for a in recipe.view_augments] == [1.0, off]
    assert [a.p_solarize for a in recipe.view_augments] == [off, 1.0]
    plain = TwoClips(**kw, view_p_blur=(off, off), view_p_solarize=(off, off))
    video = ArrayVideo(noise_clip(t=8, side=128))
    v1, v2 = recipe(video, np.random.default_rng(0))["views"]
    p1, p2 = plain(video, np.random.default_rng(0))["views"]
    assert (v1 - p1).abs().max() > 0.05 and float(v1.max()) > 0.5  # blurred, not solarised
    # (C, T, H, W) -> (T, C, H, W) for solarize, and back
    solarised = solarize(p2.transpose(0, 1), torch.tensor([True])).transpose(0, 1)
    torch.testing.assert_close(v2, solarised)  # solarised, not blurred
    shared = TwoClips(**kw, p_blur=0.3)
    assert [a.p_blur for a in shared.view_augments] == [0.3, 0.3]
    with pytest.raises(ValueError, match="data.recipe.view_p_blur"):
        TwoClips(**kw, view_p_blur=(1.0,))


def test_per_view_augmentation_goes_to_either_clip() -> None:
    """Which clip gets view 1's augmentation is a coin flip (the released sampler shuffles)."""
    frames = np.repeat(np.arange(64, dtype=np.uint8)[:, None, None, None] * 4, 8, axis=1)
    video = ArrayVideo(np.repeat(np.repeat(frames, 8, axis=2), 3, axis=3))  # (64, 8, 8, 3)
    kw = dict(clip_len=2, stride=1, size=8, p_flip=0, p_jitter=0, p_gray=0, **UNIT)
    recipe = TwoClips(**kw, view_p_blur=(0.0, 0.0))  # per-view, but nothing applied
    first_is_earlier = set()
    for seed in range(12):
        v1, v2 = recipe(video, np.random.default_rng(seed))["views"]
        if not torch.equal(v1, v2):
            first_is_earlier.add(bool(v1.mean() < v2.mean()))  # brightness = frame index
    assert first_is_earlier == {True, False}
    plain = TwoClips(**kw)  # no per-view fields: the earlier clip is always view 1
    for seed in range(6):
        v1, v2 = plain(video, np.random.default_rng(seed))["views"]
        assert float(v1.mean()) <= float(v2.mean())


def test_cvrl_config_uses_the_released_per_view_probabilities() -> None:
    cfg = load_config(str(REPO / "configs/cvrl.yaml"))
    assert cfg.data.recipe["view_p_blur"] == (1.0, 0.1)
    assert cfg.data.recipe["view_p_solarize"] == (0.0, 0.2)
    recipe = RECIPES["two_clips"](clip_len=4, stride=1, size=16, **cfg.data.recipe)
    assert [a.p_blur for a in recipe.view_augments] == [1.0, 0.1]
    assert [a.p_solarize for a in recipe.view_augments] == [0.0, 0.2]
