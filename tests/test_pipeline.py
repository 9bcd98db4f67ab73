"""The cheaper input pipeline: synthetic frame cache, lazy retries, training threads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from vidssl.app.train.data import ResumableSampler, make_loader
from vidssl.app.train.threads import auto_threads, torch_threads
from vidssl.data import synthetic as SY
from vidssl.data.datasets import DATASETS, VideoDataset
from vidssl.data.recipes import RECIPES
from vidssl.data.synthetic_cache import CachedSyntheticOpener


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
    recipe = RECIPES["two_clips"](clip_len=4, stride=1.0, size=16, jitter_strength=0.5)
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
