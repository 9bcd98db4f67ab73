"""Synthetic set: determinism, balance, motion invisible in one frame, disk round trip."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from vidssl.data import synthetic as SY
from vidssl.data.datasets import DATASETS, VideoDataset
from vidssl.data.layouts import class_folders
from vidssl.data.recipes import RECIPES
from vidssl.data.transforms import EvalTransform


def test_deterministic_from_seed_and_frame_subsets_agree():
    cfg = SY.SyntheticConfig()
    a = SY.render_frames(cfg, 3, 2, 1, range(16))
    b = SY.render_frames(cfg, 3, 2, 1, range(16))
    assert a.shape == (16, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.array_equal(SY.render_frames(cfg, 3, 2, 1, [5, 0, 5]), a[[5, 0, 5]])
    other = SY.render_frames(SY.SyntheticConfig(seed=1), 3, 2, 1, range(16))
    assert not np.array_equal(a, other)
    assert not np.array_equal(a[0], a[1])  # it moves


def test_labels_balanced_per_subset_and_index_paths():
    cfg = SY.SyntheticConfig(num_videos=40, num_motions=8, num_appearances=4, test_fraction=0.2)
    motion, appearance = SY.synthetic_labels(cfg)
    for subset, size in (("train", 32), ("test", 8)):
        ids = cfg.subset_ids(subset)
        assert len(ids) == size
        m = Counter(motion[ids.start : ids.stop].tolist())
        a = Counter(appearance[ids.start : ids.stop].tolist())
        assert max(m.values()) - min(m.values()) <= 1 and len(m) == min(8, size)
        assert max(a.values()) - min(a.values()) <= 1 and len(a) == 4
    index = SY.synthetic_index(cfg, "test")
    assert index.classes == list(SY.MOTIONS)
    item = index.items[0]
    assert item.path == f"synthetic://32/{motion[32]}/{appearance[32]}"
    assert item.label == motion[32] and item.extra == {"appearance": appearance[32]}
    with pytest.raises(ValueError, match="synthetic video path"):
        SY.parse_synthetic_path("synthetic://x")
    with pytest.raises(ValueError, match="num_motions"):
        SY.SyntheticConfig(num_motions=9)


def nearest_centroid_accuracy(feat: np.ndarray, y: np.ndarray, n_train: int, k: int) -> float:
    mu, sd = feat[:n_train].mean(0), feat[:n_train].std(0) + 1e-6
    f = (feat - mu) / sd
    cents = np.stack([f[:n_train][y[:n_train] == c].mean(0) for c in range(k)])
    pred = ((f[n_train:, None] - cents[None]) ** 2).sum(-1).argmin(1)
    return float((pred == y[n_train:]).mean())


def affine_motion(f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """Least-squares affine flow on the changed pixels: (vx, vy, curl, divergence)."""
    g0, g1 = f0.mean(-1), f1.mean(-1)
    it = g1 - g0
    gy, gx = np.gradient((g0 + g1) / 2)
    y, x = np.mgrid[0 : g0.shape[0], 0 : g0.shape[1]].astype(np.float64)
    w = np.abs(it) > 0.02
    if w.sum() < 6:
        return np.zeros(4)
    x, y = x - x[w].mean(), y - y[w].mean()
    a = np.stack([gx, gx * x, gx * y, gy, gy * x, gy * y], -1)[w]
    p = np.linalg.lstsq(a, -it[w], rcond=None)[0]
    return np.array([p[0], p[3], p[2] - p[4], p[1] + p[5]])


def test_motion_is_invisible_in_one_frame_but_visible_in_two():
    cfg = SY.SyntheticConfig(num_videos=240, frames=8, size=24, test_fraction=0.5, seed=1)
    motion, appearance = SY.synthetic_labels(cfg)
    vids = np.stack(
        [SY.render_frames(cfg, i, motion[i], appearance[i], range(8)) for i in range(240)]
    ).astype(np.float32)
    vids /= 255.0  # (N, T, H, W, 3)
    n_train = len(cfg.subset_ids("train"))
    frame = vids[np.arange(240), np.random.default_rng(0).integers(0, 8, 240)]  # (N, H, W, 3)
    pixels = frame.reshape(240, -1)
    saturated = (frame.max(-1) - frame.min(-1) > 0.25)[..., None]
    colour = (frame * saturated).sum((1, 2)) / np.maximum(saturated.sum((1, 2)), 1)
    stats = np.concatenate([colour, frame.mean((1, 2)), frame.std((1, 2))], 1)
    chance_m, chance_a = 1 / 8, 1 / 4
    for feat in (pixels, stats):
        assert nearest_centroid_accuracy(feat, motion, n_train, 8) < chance_m + 0.15
    assert nearest_centroid_accuracy(stats, appearance, n_train, 4) > 0.8  # measured 0.93-1.0
    # two-frame differences: a global affine flow fit, median over consecutive pairs
    flow = np.stack(
        [np.median([affine_motion(v[t], v[t + 1]) for t in range(7)], axis=0) for v in vids]
    )
    flow = np.sign(flow) * np.sqrt(np.abs(flow))
    assert nearest_centroid_accuracy(flow, motion, n_train, 8) > 0.6  # measured 0.78-0.82
    assert nearest_centroid_accuracy(flow, appearance, n_train, 4) < chance_a + 0.2


def _up_minus_down(frames: np.ndarray) -> float:
    """Mean brightness of the upper minus the lower half: (T, H, W, 3) -> scalar."""
    h = frames.shape[1] // 2
    return float(frames[:, :h].mean() - frames[:, h:].mean())


def test_upright_makes_rotations_visible_but_no_label():
    plain = SY.SyntheticConfig(num_videos=64, frames=4, size=24, seed=2)
    upright = SY.SyntheticConfig(num_videos=64, frames=4, size=24, seed=2, upright=True)
    motion, appearance = SY.synthetic_labels(plain)
    up_minus_down = {}
    for cfg in (plain, upright):
        clips = [SY.render_frames(cfg, i, motion[i], appearance[i], range(4)) for i in range(64)]
        clips = [c.astype(np.float32) / 255.0 for c in clips]  # (T, H, W, 3)
        # a rotation by 180 degrees flips the sign of the vertical brightness difference
        up_minus_down[cfg.upright] = (
            np.array([_up_minus_down(c) for c in clips]),
            np.array([_up_minus_down(np.rot90(c, 2, axes=(1, 2))) for c in clips]),
        )
    upright_up, upright_rot = up_minus_down[True]
    assert (upright_up > 0).mean() > 0.95 and (upright_rot < 0).mean() > 0.95
    plain_up, _ = up_minus_down[False]
    assert 0.2 < (plain_up > 0).mean() < 0.8  # no canonical up without the option
    # objects are lit from above: their upper half is brighter than their lower half
    frame = SY.render_frames(upright, 0, 6, 0, [0])[0].astype(np.float32)  # class 6 = expand
    plain_frame = SY.render_frames(plain, 0, 6, 0, [0])[0].astype(np.float32)
    changed = np.abs(frame - plain_frame).sum(-1) > 0  # (H, W) object pixels (and the sky)
    assert changed.any()
    # light from above adds no label information: a first frame's brightness changes by
    # the same small amount (the sky and shading average out) for every motion class
    shift = [
        np.mean(
            [
                SY.render_frames(upright, i, m, appearance[i], [0]).mean()
                - SY.render_frames(plain, i, m, appearance[i], [0]).mean()
                for i in range(64)
                if motion[i] == m
            ]
        )
        for m in range(8)
    ]
    assert np.abs(shift).max() < 2.0
    assert SY.SyntheticConfig(upright=True) != SY.SyntheticConfig()


def test_in_memory_dataset_with_every_recipe():
    index, opener = DATASETS["synthetic"](num_videos=8, frames=16, size=32)
    assert opener is not None
    cases = {
        "clip": ({"clip_len": 8}, "video", (3, 8, 16, 16)),
        "multi_clip": ({"clip_len": 8, "num_clips": 2}, "clips", (2, 3, 8, 16, 16)),
        "two_clips": ({"clip_len": 8, "gap": "cvrl"}, "views", [(3, 8, 16, 16)] * 2),
        "sub_clips": ({"clip_len": 4, "num_clips": 4}, "views", [(3, 4, 16, 16)] * 4),
        "pretext": ({"clip_len": 6, "tasks": ("rotation", "jigsaw")}, "video", (3, 6, 16, 16)),
        "pretext_views": ({"clip_len": 6}, "views", [(3, 6, 16, 16)] * 4),
        "stor": ({"clip_len": 8}, "views", [(3, 8, 16, 16)] * 2),
        # flow computed on the fly from the in-memory frames (Farneback)
        "two_stream_sub_clips": (
            {"clip_len": 8, "stride": 2, "sub_len": 2},  # global 8 x 2 frames, 4 sub-clips of 2
            "flow_views",
            [(2, 8, 16, 16)] * 2 + [(2, 2, 16, 16)] * 5,
        ),
        "two_stream_multi_clip": ({"clip_len": 4, "num_clips": 2}, "clips", (2, 5, 4, 16, 16)),
    }
    assert set(cases) == set(RECIPES)
    for name, (kwargs, key, shape) in cases.items():
        ds = VideoDataset(index, RECIPES[name](size=16, **kwargs), seed=0, opener=opener)
        sample = ds[1]
        got = sample[key]
        got_shape = [tuple(v.shape) for v in got] if isinstance(got, list) else tuple(got.shape)
        assert got_shape == shape, name
        assert sample["appearance"] == index.items[1].extra["appearance"]
        assert sample["label"] == index.items[1].label and sample["skipped"] == 0


def test_vidssl_synth_writes_a_set_that_loads(tmp_path):
    pytest.importorskip("av")
    from vidssl.app.cli import main

    out = tmp_path / "synth"
    argv = ["synth", str(out), "--videos", "8", "--frames", "8", "--size", "32", "--seed", "3"]
    assert main([*argv, "--no-progress"]) == 0
    assert (out / "classes.json").is_file() and (out / "labels.csv").is_file()
    folders = class_folders(out / "train")
    assert len(folders.items) == 6 and all(
        p.endswith(".mp4") for p in [i.path for i in folders.items]
    )
    index, opener = DATASETS["synthetic"](root=out, subset="train")
    assert opener is None and index.classes == list(SY.MOTIONS)
    cfg = SY.SyntheticConfig(num_videos=8, frames=8, size=32, seed=3)
    motion, appearance = SY.synthetic_labels(cfg)
    ds = VideoDataset(index, RECIPES["clip"](clip_len=8, stride=1, size=32, train=False), seed=0)
    for k, item in enumerate(index.items):
        vid = int(item.path[-10:-4])
        assert item.label == motion[vid] and item.extra["appearance"] == appearance[vid]
        sample = ds[k]
        assert sample["skipped"] == 0
        # the decoded clip matches the rendered one (near-lossless coding keeps the motion)
        ref = SY.render_frames(cfg, vid, motion[vid], appearance[vid], range(8))
        expected = EvalTransform(size=32)(ref)
        assert torch.mean(torch.abs(sample["video"] - expected)).item() < 0.1
