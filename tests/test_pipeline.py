"""The cheaper input pipeline: synthetic frame cache, lazy retries, training threads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from vidssl.app.train.data import ResumableSampler, make_loader
from vidssl.app.train.threads import auto_threads, torch_threads
from vidssl.data import synthetic as SY
from vidssl.data.batch_augment import DeferredAugment
from vidssl.data.datasets import DATASETS, VideoDataset
from vidssl.data.recipes import RECIPES
from vidssl.data.synthetic_cache import CachedSyntheticOpener
from vidssl.data.transforms import ClipAugment


def _cfg(upright: bool = True) -> SY.SyntheticConfig:
    return SY.SyntheticConfig(num_videos=12, frames=12, size=32, upright=upright)


@pytest.mark.parametrize("upright", [False, True])
def test_cached_frames_are_bitwise_the_rendered_frames(upright: bool) -> None:
    cfg = _cfg(upright)
    opener = CachedSyntheticOpener(cfg)
    for item in SY.synthetic_index(cfg, "all").items[:5]:
        direct = SY.SyntheticVideo(cfg, item.path)
        for idx in ([3, 1, 1, 11], list(range(12)), [0]):
            got = opener(item.path).get_frames(idx)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, direct.get_frames(idx))
    assert opener.cached_videos() == 5


def test_cached_video_checks_indices_and_returns_copies() -> None:
    cfg = _cfg()
    path = SY.synthetic_index(cfg).items[0].path
    video = CachedSyntheticOpener(cfg)(path)
    with pytest.raises(IndexError, match="out of range"):
        video.get_frames([0, 12])
    frames = video.get_frames([0, 1])
    frames[:] = 0  # a caller's in-place edit must not reach the cache
    assert video.get_frames([0, 1]).any()


def test_pickled_opener_starts_with_an_empty_cache() -> None:
    cfg = _cfg()
    opener = CachedSyntheticOpener(cfg)
    path = SY.synthetic_index(cfg).items[0].path
    opener(path).get_frames([0])
    copy = pickle.loads(pickle.dumps(opener))
    assert copy == opener and copy.cached_videos() == 0
    np.testing.assert_array_equal(copy(path).get_frames([2]), opener(path).get_frames([2]))


def _batches(opener, workers: int, epochs: int = 2) -> list[dict]:
    cfg = _cfg()
    index = SY.synthetic_index(cfg)
    recipe = RECIPES["two_clips"](
        clip_len=4, stride=1.0, size=16, jitter_strength=0.5, batch_augment=True
    )
    dataset = VideoDataset(index, recipe, seed=3, opener=opener)
    out = []
    for epoch in range(epochs):
        sampler = ResumableSampler(dataset, 1, 0, shuffle=True, seed=3, drop_last=True)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        loader = make_loader(dataset, sampler, batch_size=3, workers=workers, seed=3, epoch=epoch)
        out += list(loader)
    return out


def test_cached_batches_equal_uncached_with_0_and_1_workers_and_cache_is_shared() -> None:
    reference = _batches(SY.SyntheticOpener(_cfg()), workers=0)
    opener = CachedSyntheticOpener(_cfg())
    in_worker = _batches(opener, workers=1)
    # the forked worker filled the shared cache: the parent sees every training video
    assert opener.cached_videos() == len(SY.synthetic_index(_cfg()).items)
    in_process = _batches(opener, workers=0)
    assert len(reference) == len(in_worker) == len(in_process) == 6
    for ref, a, b in zip(reference, in_worker, in_process, strict=True):
        for k in range(2):
            assert torch.equal(ref["views"][k], a["views"][k])
            assert torch.equal(ref["views"][k], b["views"][k])
        assert torch.equal(ref["index"], a["index"])


def test_synthetic_builder_caches_by_default() -> None:
    _, opener = DATASETS["synthetic"](num_videos=8, frames=8, size=16)
    assert isinstance(opener, CachedSyntheticOpener)
    _, plain = DATASETS["synthetic"](num_videos=8, frames=8, size=16, cache=False)
    assert isinstance(plain, SY.SyntheticOpener)


def test_auto_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert auto_threads(3, workers=1) == 3  # asked for
    assert auto_threads(0, workers=1) == 3  # the cores the loader leaves
    assert auto_threads(0, workers=8) == 1  # at least one
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert auto_threads(0, workers=1) == 2
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# --- batched photometric augmentation ----------------------------------------------------------


def _augment() -> ClipAugment:
    return ClipAugment(
        size=16, p_flip=0.5, p_gray=0.3, p_blur=0.5, p_solarize=0.5, jitter_strength=1.0
    )


def test_batched_augmentation_equals_the_per_clip_reference() -> None:
    aug = _augment()
    gen = np.random.default_rng(0)
    clips = [gen.integers(0, 256, size=(4, 20, 24, 3), dtype=np.uint8) for _ in range(24)]
    reference = [aug(clip, np.random.default_rng(i)) for i, clip in enumerate(clips)]
    deferred = DeferredAugment(aug)
    outs = [deferred(clip, np.random.default_rng(i)) for i, clip in enumerate(clips)]
    draws = [d for _, d, _ in deferred.pending]
    deferred.finish()
    # every branch is exercised: flips, jitter in several op orders, grayscale, blur, solarise
    assert {d.flip for d in draws} == {True, False} and {d.blur for d in draws} == {True, False}
    assert any(d.gray for d in draws) and len({tuple(d.order) for d in draws if d.jitter}) > 3
    assert {d.solarize for d in draws} == {True, False}
    for out, ref in zip(outs, reference, strict=True):
        assert out.shape == ref.shape == (3, 4, 16, 16)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_batched_augmentation_is_temporally_consistent() -> None:
    frame = np.random.default_rng(1).integers(0, 256, size=(1, 20, 24, 3), dtype=np.uint8)
    clip = np.repeat(frame, 5, axis=0)  # 5 identical frames
    deferred = DeferredAugment(_augment())
    outs = [deferred(clip, np.random.default_rng(i)) for i in range(12)]
    deferred.finish()
    for out in outs:  # (C, T, h, w): every frame got the same draw
        for t in range(1, 5):
            assert torch.equal(out[:, t], out[:, 0])


def test_batched_fetch_matches_items_and_leaves_other_recipes_alone() -> None:
    cfg = _cfg()
    index, opener = SY.synthetic_index(cfg), CachedSyntheticOpener(cfg)
    two = RECIPES["two_clips"](clip_len=4, size=16, p_blur=0.5, batch_augment=True)
    ds = VideoDataset(index, two, seed=5, opener=opener)
    batch = ds.__getitems__([4, 0, 7])
    assert ds.recipe.augment.__class__ is ClipAugment  # restored after the batch
    again = ds.__getitems__([4, 0, 7])
    for i, b, b2 in zip([4, 0, 7], batch, again, strict=True):
        single = ds[i]
        for k in range(2):
            assert torch.equal(b["views"][k], b2["views"][k])  # same seed: bitwise
            torch.testing.assert_close(b["views"][k], single["views"][k], rtol=0, atol=1e-5)
    pretext = RECIPES["pretext"](clip_len=4, size=16, tasks=("rotation",))
    ds = VideoDataset(index, pretext, seed=5, opener=opener)
    for b, i in zip(ds.__getitems__([1, 2]), [1, 2], strict=True):
        assert torch.equal(b["video"], ds[i]["video"])  # not deferred: per clip, unchanged


# --- one loader for the whole run ----------------------------------------------------------------


def test_epoch_batches_are_the_per_epoch_loaders_batches() -> None:
    from vidssl.app.train.data import EpochBatches

    cfg = _cfg()
    recipe = RECIPES["two_clips"](clip_len=4, stride=1.0, size=16)
    dataset = VideoDataset(SY.synthetic_index(cfg), recipe, seed=2, opener=SY.SyntheticOpener(cfg))
    n, b, per_epoch = len(dataset), 2, 3  # 9 videos: 4 batches of 2, 3 of them trained on
    for start_epoch, start_batch in ((0, 0), (1, 2)):  # a fresh run and a resume mid-epoch
        stream = iter(
            EpochBatches(
                dataset,
                1,
                0,
                seed=2,
                batch_size=b,
                batches_per_epoch=per_epoch,
                epoch=start_epoch,
                start_batch=start_batch,
            )
        )
        for epoch in range(start_epoch, start_epoch + 3):
            sampler = ResumableSampler(dataset, 1, 0, shuffle=True, seed=2, drop_last=True)
            sampler.set_epoch(epoch)
            first = start_batch if epoch == start_epoch else 0
            sampler.start = first * b
            order = list(sampler)
            for k in range(per_epoch - first):
                assert next(stream) == [(epoch, i) for i in order[k * b : (k + 1) * b]]
    assert n == 9
    dataset.set_epoch(3)
    a, key = dataset[4], dataset[(3, 4)]
    dataset.set_epoch(0)
    assert torch.equal(a["views"][0], key["views"][0]) and key["index"] == 4
    assert not torch.equal(dataset[4]["views"][0], key["views"][0])
