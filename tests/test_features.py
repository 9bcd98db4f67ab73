"""Feature extraction: multi-clip averaging on a known model, labels, shards, the disk cache."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vidssl.eval.features import (
    Features,
    cached_features,
    checkpoint_fingerprint,
    extract_features,
    features_are_constant,
    load_features,
    load_or_extract,
    merge_features,
    pool_clip_features,
    save_features,
    shard_range,
)


class MeanPixel(nn.Module):
    """A backbone whose pooled feature is the per-channel mean pixel value: (N, C, T, H, W) ->
    (N, C); its map is the clip itself."""

    feature_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward_features(self, x):
        self.calls += 1
        assert not torch.is_grad_enabled()
        assert not self.training
        return x

    def forward_head(self, x, pre_logits=False):
        return x.mean(dim=(2, 3, 4))


def _clip(channel_values, t=2, s=4):
    """(C, T, H, W) clip with a constant value per channel."""
    return torch.tensor(channel_values, dtype=torch.float32).view(3, 1, 1, 1).expand(3, t, s, s)


class ListDataset(Dataset):
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def _samples():
    # video 0: clip means (3, 4, 0) and (0, 0, 2); video 1: (1, 0, 0) twice; video 2: (0, 5, 0), (0, 0, 5)
    clips = [
        [(3.0, 4.0, 0.0), (0.0, 0.0, 2.0)],
        [(1.0, 0.0, 0.0), (1.0, 0.0, 0.0)],
        [(0.0, 5.0, 0.0), (0.0, 0.0, 5.0)],
    ]
    return [
        {
            "clips": torch.stack([_clip(c) for c in cs]),  # (K=2, C, T, H, W)
            "label": i % 2,
            "appearance": 10 + i,
            "index": i,
            "skipped": 0,
        }
        for i, cs in enumerate(clips)
    ]


def test_multi_clip_features_are_averaged_and_normalised_exactly():
    model = MeanPixel().train()
    loader = DataLoader(ListDataset(_samples()), batch_size=2)
    feats, labels, indices = extract_features(model, loader, "cpu", progress=False)
    # video 0, clip_norm: (0.6, 0.8, 0) and (0, 0, 1) -> mean (0.3, 0.4, 0.5) -> / sqrt(0.5)
    r = 1 / math.sqrt(0.5)
    expected = torch.tensor([[0.3 * r, 0.4 * r, 0.5 * r], [1.0, 0.0, 0.0], [0.0, r / 2, r / 2]])
    assert torch.allclose(feats, expected, atol=1e-6)
    assert feats.dtype == torch.float32
    assert set(labels) == {"label", "appearance"}  # "index" and "skipped" are not label sets
    assert labels["label"].tolist() == [0, 1, 0]
    assert labels["appearance"].tolist() == [10, 11, 12]
    assert indices.tolist() == [0, 1, 2]
    assert model.calls == 2  # K clips of a batch go through the backbone as one batch
    assert model.training  # mode restored


def test_plain_average_without_per_clip_norm():
    loader = DataLoader(ListDataset(_samples()[:1]), batch_size=1)
    feats = extract_features(MeanPixel(), loader, clip_norm=False, progress=False).feats
    # (3, 4, 0) and (0, 0, 2) -> mean (1.5, 2, 1) -> / sqrt(7.25)
    expected = torch.tensor([[1.5, 2.0, 1.0]]) / math.sqrt(7.25)
    assert torch.allclose(feats, expected, atol=1e-6)


def test_pool_clip_features_shapes_and_norm():
    z = torch.randn(4, 5, 7)
    pooled = pool_clip_features(z)
    assert pooled.shape == (4, 7)
    assert torch.allclose(pooled.norm(dim=1), torch.ones(4))


def test_bf16_autocast_and_single_clip_batches():
    samples = [
        {"video": s["clips"][0], "label": s["label"], "index": s["index"]} for s in _samples()
    ]
    loader = DataLoader(ListDataset(samples), batch_size=3)
    out = extract_features(MeanPixel(), loader, amp=True, progress=False)
    expected = torch.nn.functional.normalize(
        torch.tensor([[3.0, 4, 0], [1, 0, 0], [0, 5, 0]]), dim=1
    )
    assert out.feats.dtype == torch.float32
    assert torch.allclose(out.feats, expected, atol=1e-2)
    assert list(out.labels) == ["label"]


def test_missing_clips_key_is_a_clear_error():
    loader = DataLoader(
        ListDataset([{"views": [torch.zeros(3, 2, 4, 4)], "label": 0}]), batch_size=1
    )
    with pytest.raises(KeyError, match="multi_clip"):
        extract_features(MeanPixel(), loader, progress=False)


def test_shards_cover_everything_once_and_merge_in_index_order():
    ranges = [shard_range(10, k, 3) for k in range(3)]
    assert [list(r) for r in ranges] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    with pytest.raises(ValueError, match="shard"):
        shard_range(10, 3, 3)
    samples = _samples()
    parts = [
        extract_features(
            MeanPixel(),
            DataLoader(ListDataset([samples[i] for i in r]), batch_size=2),
            progress=False,
        )
        for r in (shard_range(3, 1, 2), shard_range(3, 0, 2))  # out of order on purpose
    ]
    merged = merge_features(parts)
    whole = extract_features(
        MeanPixel(), DataLoader(ListDataset(samples), batch_size=2), progress=False
    )
    assert torch.equal(merged.indices, whole.indices)
    assert torch.allclose(merged.feats, whole.feats)
    assert torch.equal(merged.labels["appearance"], whole.labels["appearance"])
    with pytest.raises(ValueError, match="overlap"):
        merge_features([whole, whole])


def test_checkpoint_fingerprint(tmp_path):
    assert checkpoint_fingerprint(None, seed=3) == "random-3"
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"weights A")
    b.write_bytes(b"weights B")
    assert checkpoint_fingerprint(a) == checkpoint_fingerprint(a)
    assert checkpoint_fingerprint(a) != checkpoint_fingerprint(b)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoint_fingerprint(tmp_path / "missing.pt")


def test_cache_path_depends_on_checkpoint_and_settings_not_key_order(tmp_path):
    settings = {"dataset": "synthetic", "split": "test", "num_clips": 10, "clip_norm": True}
    p1 = cached_features(tmp_path, {"checkpoint": "sha256-aaaa", **settings})
    p2 = cached_features(
        tmp_path, dict(reversed(list({"checkpoint": "sha256-aaaa", **settings}.items())))
    )
    assert p1 == p2
    assert p1.parent == tmp_path and "sha256-aaaa" in p1.name
    assert cached_features(tmp_path, {"checkpoint": "sha256-bbbb", **settings}) != p1
    assert (
        cached_features(tmp_path, {"checkpoint": "sha256-aaaa", **settings, "num_clips": 5}) != p1
    )
    with pytest.raises(KeyError, match="checkpoint"):
        cached_features(tmp_path, settings)


def test_load_or_extract_reuses_the_cache(tmp_path):
    loader = DataLoader(ListDataset(_samples()), batch_size=2)
    model = MeanPixel()
    calls = []

    def extract() -> Features:
        calls.append(1)
        return extract_features(model, loader, progress=False)

    path = cached_features(tmp_path / "cache", {"checkpoint": "random-0", "split": "test"})
    first = load_or_extract(path, extract)
    second = load_or_extract(path, extract)
    assert len(calls) == 1 and model.calls == 2  # the second call read the file
    assert torch.equal(first.feats, second.feats)
    assert torch.equal(first.labels["appearance"], second.labels["appearance"])
    assert torch.equal(first.indices, second.indices)
    other = cached_features(tmp_path / "cache", {"checkpoint": "sha256-ffff", "split": "test"})
    load_or_extract(other, extract)
    assert len(calls) == 2 and other != path
    # the file holds plain tensors: loadable with weights_only=True
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"feats", "labels", "indices"}


def test_load_features_rejects_foreign_files(tmp_path):
    torch.save({"something": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="x.pt"):
        load_features(tmp_path / "x.pt")
    f = Features(torch.zeros(2, 3), {"label": torch.tensor([0, 1])}, torch.tensor([0, 1]))
    assert torch.equal(load_features(save_features(tmp_path / "ok.pt", f)).feats, f.feats)


def test_constant_features_are_detected():
    feats = F.normalize(torch.randn(6, 8), dim=1)
    assert not features_are_constant(feats)
    assert features_are_constant(feats[:1].expand(6, 8))
    assert features_are_constant(torch.zeros(5, 8))  # a dead network's normalised zeros
    assert not features_are_constant(feats[:1])  # one video: nothing to compare
