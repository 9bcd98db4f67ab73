"""Clip transforms: layout, normalisation, temporal consistency, pretext ops, STOR crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidssl.data import transforms as T


def make_clip(t: int = 4, h: int = 20, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_to_float_layout_and_normalize_hand_values():
    clip = make_clip()
    x = T.to_float(clip)
    assert x.shape == (3, 4, 20, 24) and x.dtype == torch.float32
    assert torch.equal(x[1, 2], torch.from_numpy(clip[2, :, :, 1]).float() / 255)
    also = T.to_float(torch.from_numpy(clip))  # tensors work as well
    assert torch.equal(x, also)
    n = T.normalize(x, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    assert torch.allclose(n[0], (x[0] - 0.5) / 0.5)
    assert torch.allclose(n[1], (x[1] - 0.25) / 0.25)
    assert torch.allclose(n[2], x[2])
    with pytest.raises(ValueError, match="shape"):
        T.to_float(np.zeros((4, 20, 24), dtype=np.uint8))


def test_augment_without_randomness_is_resize_and_normalize():
    clip = make_clip(h=16, w=16)
    aug = T.ClipAugment(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0), p_flip=0, p_jitter=0, p_gray=0)
    out = aug(clip, rng())
    ref = T.normalize(T.to_float(clip), T.KINETICS_MEAN, T.KINETICS_STD)
    assert out.shape == (3, 4, 16, 16) and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-6)


def test_eval_transform_is_the_center_square():
    clip = make_clip(h=8, w=12)
    out = T.EvalTransform(size=8, mean=(0, 0, 0), std=(1, 1, 1))(clip)
    assert torch.allclose(out, T.to_float(clip[:, :, 2:10]))  # centre 8x8 of 8x12
    assert T.center_box(8, 12) == (0, 2, 8, 8)
    assert T.three_crop_boxes(8, 12) == [(0, 0, 8, 8), (0, 2, 8, 8), (0, 4, 8, 8)]
    assert T.three_crop_boxes(12, 8) == [(0, 0, 8, 8), (2, 0, 8, 8), (4, 0, 8, 8)]


STRONG = dict(size=16, p_flip=0.5, jitter_strength=1.0, p_jitter=1.0, p_gray=0.3, p_blur=0.5)


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_is_temporally_consistent(seed):
    """Identical frames in -> identical frames out: one draw for every frame."""
    frame = make_clip(t=1, h=24, w=32, seed=seed)
    clip = np.repeat(frame, 6, axis=0)
    out = T.ClipAugment(**STRONG)(clip, rng(seed))  # (C, T, H, W)
    for t in range(1, 6):
        assert torch.equal(out[:, t], out[:, 0])
    # per_frame=True draws every parameter per frame: identical frames come out different
    out_pf = T.ClipAugment(**STRONG, per_frame=True)(clip, rng(seed))
    assert not all(torch.equal(out_pf[:, t], out_pf[:, 0]) for t in range(1, 6))


def test_same_seed_same_output_and_flip_is_a_mirror():
    clip = make_clip()
    aug = T.ClipAugment(**STRONG)
    assert torch.equal(aug(clip, rng(3)), aug(clip, rng(3)))
    x = T.to_float(clip).permute(1, 0, 2, 3)  # (T, C, H, W)
    assert torch.equal(T.hflip(x, torch.tensor([True])), x.flip(-1))
    per = T.hflip(x, torch.tensor([True, False, True, False]))
    assert torch.equal(per[1], x[1]) and torch.equal(per[0], x[0].flip(-1))


def test_colour_ops_hand_values():
    x = T.to_float(make_clip()).permute(1, 0, 2, 3)  # (T, C, H, W)
    one = torch.ones(1)
    assert torch.allclose(T.adjust_brightness(x, one), x)
    assert torch.allclose(T.adjust_brightness(x, one * 0.5), x * 0.5)
    assert torch.allclose(T.adjust_contrast(x, one), x, atol=1e-6)
    assert torch.allclose(T.adjust_saturation(x, one), x, atol=1e-6)
    gray = T.adjust_saturation(x, torch.zeros(1))
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    assert torch.allclose(T.adjust_hue(x, torch.zeros(1)), x, atol=1e-5)
    # a grey image has no hue to rotate; a full turn is the identity
    g = x.mean(1, keepdim=True).expand_as(x).contiguous()
    assert torch.allclose(T.adjust_hue(g, torch.tensor([0.3])), g, atol=1e-5)
    assert torch.allclose(
        T.adjust_hue(x * 0.8 + 0.1, torch.tensor([1.0])), x * 0.8 + 0.1, atol=1e-5
    )
    # contrast 0 leaves each frame's mean luma everywhere
    flat = T.adjust_contrast(x, torch.zeros(1))
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).mean((1, 2))
    assert torch.allclose(flat[:, :, 3, 5], luma[:, None].expand(4, 3), atol=1e-6)


def test_gaussian_blur_keeps_constants_and_smooths():
    const = torch.full((2, 3, 9, 9), 0.3)
    assert torch.allclose(T.gaussian_blur(const, torch.tensor([1.5]), 5), const, atol=1e-6)
    x = T.to_float(make_clip()).permute(1, 0, 2, 3).contiguous()
    y = T.gaussian_blur(x, torch.tensor([2.0]), 7)
    assert y.shape == x.shape and y.std() < x.std()


def test_rotation_back_equals_original():
    x = T.to_float(make_clip(h=8, w=12))
    for k in range(4):
        r = T.rotate90(x, k)
        assert r.shape[-2:] == ((8, 12) if k % 2 == 0 else (12, 8))
        assert torch.equal(T.rotate90(r, -k), x)
    assert torch.equal(T.rotate90(T.rotate90(x, 1), 3), x)
    m = torch.tensor([[1, 2], [3, 4]])
    assert torch.equal(T.rotate90(m, 1), torch.tensor([[2, 4], [1, 3]]))  # counter-clockwise


def test_jigsaw_hand_written_and_unpermuted_equals_original():
    m = torch.arange(16).view(4, 4)
    # tiles: 0=[[0,1],[4,5]] 1=[[2,3],[6,7]] 2=[[8,9],[12,13]] 3=[[10,11],[14,15]]
    out = T.jigsaw(m, (3, 2, 1, 0))
    ref = torch.tensor([[10, 11, 8, 9], [14, 15, 12, 13], [2, 3, 0, 1], [6, 7, 4, 5]])
    assert torch.equal(out, ref)
    x = T.to_float(make_clip(h=8, w=12))
    assert len(T.JIGSAW_PERMUTATIONS) == 24
    for perm in T.JIGSAW_PERMUTATIONS:
        assert torch.equal(T.unjigsaw(T.jigsaw(x, perm), perm), x)
    with pytest.raises(ValueError, match="even"):
        T.jigsaw(torch.zeros(3, 7, 8), (0, 1, 2, 3))


def test_overlap_crop_pair_realises_the_rate():
    r = rng(11)
    for rate in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        for _ in range(60):
            b1, b2, realised = T.overlap_crop_pair(48, 64, rate, r)
            (t1, l1, h, w), (t2, l2, h2, w2) = b1, b2
            assert (h, w) == (h2, w2)
            for top, left in ((t1, l1), (t2, l2)):
                assert 0 <= top and top + h <= 48 and 0 <= left and left + w <= 64
            assert T.box_overlap_rate(b1, b2) == pytest.approx(realised)
            assert abs(realised - rate) <= 0.5 / min(h, w) + 1.0 / (h * w) + 1e-9, (
                rate,
                realised,
                b1,
                b2,
            )
    # a large crop in a small frame still gets a low overlap (the box shrinks)
    b1, b2, realised = T.overlap_crop_pair(16, 16, 0.2, r, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert abs(realised - 0.2) <= 0.5 / min(b1[2:]) + 1.0 / (b1[2] * b1[3]) + 1e-9
    with pytest.raises(ValueError, match="rate"):
        T.overlap_crop_pair(16, 16, -0.1, r)


def test_crop_pair_drives_the_augmentation():
    clip = make_clip(h=32, w=32)
    b1, b2, _ = T.overlap_crop_pair(32, 32, 1.0, rng(2))
    assert b1 == b2
    aug = T.ClipAugment(size=16, p_flip=0, p_jitter=0, p_gray=0)
    assert torch.equal(aug(clip, rng(0), box=b1), aug(clip, rng(1), box=b2))


def test_multiview_labels_undo_the_views():
    clip = make_clip(h=16, w=16)
    base = T.ClipAugment(**STRONG)
    jig_view = T.JigsawView(base, gap=0.0, jitter=0.0)  # invertible; gapped: test_jigsaw_gap
    mv = T.MultiView([T.PlainView(base), T.RotationView(base), jig_view])
    views, labels = mv(clip, rng(5))
    assert len(views) == 3 and labels[0] == {}
    assert set(labels[1]) == {"rotation"} and 0 <= labels[1]["rotation"] < 4
    assert set(labels[2]) == {"jigsaw"} and 0 <= labels[2]["jigsaw"] < 24
    # replaying the draws: the transform draws first, then the label
    r = rng(5)
    plain = base(clip, r)
    assert torch.equal(views[0], plain)
    rotated = base(clip, r)
    k = int(r.integers(0, 4))
    assert k == labels[1]["rotation"]
    assert torch.equal(T.rotate90(views[1], -k), rotated)
    jig = base(clip, r)
    perm = T.JIGSAW_PERMUTATIONS[int(r.integers(0, 24))]
    assert torch.equal(T.unjigsaw(views[2], perm), jig)
