"""VideoDataset: determinism, corrupt-file skipping, no fd leaks, pickling, DATASETS."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidssl.data.datasets import DATASETS, VideoDataset
from vidssl.data.layouts import DatasetIndex, VideoItem, unlabelled
from vidssl.data.recipes import RECIPES
from vidssl.data.video import VideoDecodeError


class FakeSource:
    """A VideoSource whose frame t has channel 0 = item id (the file stem), channel 1 = t."""

    open_count = 0

    def __init__(self, path: str) -> None:
        self.path = path
        self.item = int(Path(path).stem)
        self.num_frames = 30
        self.fps = 30.0
        self.closed = False
        FakeSource.open_count += 1

    def get_frames(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        frames = np.zeros((len(idx), 12, 16, 3), dtype=np.uint8)
        frames[..., 0] = self.item
        frames[..., 1] = idx[:, None, None]
        return frames

    def close(self) -> None:
        assert not self.closed
        self.closed = True
        FakeSource.open_count -= 1


class FakeOpener:
    """Picklable opener; paths whose stem is in ``bad`` raise VideoDecodeError."""

    def __init__(self, bad: set[int] = frozenset(), fail_on_read: bool = False) -> None:
        self.bad = set(bad)
        self.fail_on_read = fail_on_read

    def __call__(self, path: str) -> FakeSource:
        src = FakeSource(path)
        if src.item in self.bad:
            if not self.fail_on_read:
                src.close()
                raise VideoDecodeError(path, "InvalidDataError: broken on purpose")
            src.get_frames = lambda indices: (_ for _ in ()).throw(  # type: ignore[method-assign]
                VideoDecodeError(path, "InvalidDataError: broken partway")
            )
        return src


def fake_index(n: int = 10) -> DatasetIndex:
    items = [VideoItem(f"/fake/{i}.mp4", i % 3, {"appearance": i % 2}) for i in range(n)]
    return DatasetIndex(items, ["a", "b", "c"])


def recipe(name: str = "clip", **kw):
    return RECIPES[name](clip_len=4, stride=2, size=8, **kw)


def test_deterministic_given_seed_epoch_index():
    ds = VideoDataset(fake_index(), recipe("two_clips", gap="cvrl"), seed=3, opener=FakeOpener())
    a, b = ds[4], ds[4]
    for va, vb in zip(a["views"], b["views"]):
        assert torch.equal(va, vb)
    assert (a["label"], a["index"], a["appearance"], a["skipped"]) == (1, 4, 0, 0)
    ds.set_epoch(1)
    c = ds[4]
    assert not all(torch.equal(va, vc) for va, vc in zip(a["views"], c["views"]))
    ds.set_epoch(0)
    assert torch.equal(ds[4]["views"][0], a["views"][0])
    other = VideoDataset(fake_index(), recipe("two_clips", gap="cvrl"), seed=4, opener=FakeOpener())
    assert not torch.equal(other[4]["views"][0], a["views"][0])


def test_eval_clip_reads_the_right_frames():
    ds = VideoDataset(
        fake_index(), recipe(train=False, mean=(0, 0, 0), std=(1, 1, 1)), opener=FakeOpener()
    )
    video = ds[2]["video"]  # the centre clip of 30 frames, span 8: frames 11, 13, 15, 17
    assert video.shape == (3, 4, 8, 8)
    assert torch.allclose(video[1, :, 0, 0] * 255, torch.tensor([11.0, 13.0, 15.0, 17.0]))
    assert torch.allclose(video[0] * 255, torch.full((4, 8, 8), 2.0))


@pytest.mark.parametrize("fail_on_read", [False, True])
def test_corrupt_files_are_counted_logged_once_and_replaced(caplog, fail_on_read):
    FakeSource.open_count = 0
    plain = recipe(train=False, mean=(0, 0, 0), std=(1, 1, 1))
    ds = VideoDataset(fake_index(), plain, seed=0, opener=FakeOpener({3, 7}, fail_on_read))
    with caplog.at_level(logging.WARNING, logger="vidssl.data.datasets"):
        samples = [ds[i] for i in range(10)] + [ds[3], ds[7]]
    assert FakeSource.open_count == 0  # every source closed, failed ones included
    for i in (3, 7):
        assert samples[i]["skipped"] >= 1 and samples[i]["index"] == i
        # the replacement's own label and extras travel with its clip
        item = round(samples[i]["video"][0, 0, 0, 0].item() * 255)
        assert item not in (3, 7)
        assert samples[i]["label"] == item % 3 and samples[i]["appearance"] == item % 2
        assert samples[i]["item"] == item  # which video the clip came from (CVTCL's own-video)
    assert all(samples[i]["skipped"] == 0 for i in range(10) if i not in (3, 7))
    assert all(samples[i]["item"] == i for i in range(10) if i not in (3, 7))
    assert sum(s["skipped"] for s in samples[:10]) >= 2
    assert ds.skipped_count == sum(s["skipped"] for s in samples)
    assert ds.failed_files == {"/fake/3.mp4", "/fake/7.mp4"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per file, although each failed twice
    assert any("/fake/3.mp4" in r.getMessage() for r in warnings)
    # the replacement is deterministic
    again = VideoDataset(fake_index(), plain, seed=0, opener=FakeOpener({3, 7}, fail_on_read))
    assert torch.equal(again[3]["video"], samples[3]["video"])


def test_all_corrupt_raises_instead_of_hanging():
    ds = VideoDataset(fake_index(4), recipe(), opener=FakeOpener({0, 1, 2, 3}))
    with pytest.raises(
        RuntimeError, match="(?s)4 consecutive unreadable videos.*broken on purpose"
    ):
        ds[0]
    bounded = VideoDataset(
        fake_index(50), recipe(), opener=FakeOpener(set(range(50))), max_retries=5
    )
    with pytest.raises(RuntimeError, match="6 consecutive unreadable"):
        bounded[10]
    with pytest.raises(IndexError):
        ds[4]


def test_pickles_and_collates():
    ds = VideoDataset(fake_index(), recipe("two_clips"), seed=1, opener=FakeOpener({5}))
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[5]["views"][1], ds[5]["views"][1])
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert len(batch["views"]) == 2 and batch["views"][0].shape == (4, 3, 4, 8, 8)
    assert batch["label"].tolist() == [0, 1, 2, 0] and batch["skipped"].shape == (4,)


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def test_datasets_dict_builds_indexes(tmp_path):
    assert set(DATASETS) == {"synthetic", "folder", "unlabelled", "ucf101", "hmdb51", "kinetics"}
    touch(tmp_path / "f", "train/walk/a.mp4", "train/run/b.mp4", "test/run/c.mp4")
    index, opener = DATASETS["folder"](root=tmp_path / "f", subset="train")
    assert index.classes == ["run", "walk"] and opener is None
    index, _ = DATASETS["unlabelled"](root=tmp_path / "f")
    assert len(index) == 3 and {it.label for it in index.items} == {-1}
    index, opener = DATASETS["synthetic"](root="", num_videos=12, subset="test")
    assert len(index) == 3 and opener is not None
    # UCF101 / HMDB51 find their split folders next to the videos
    touch(tmp_path / "UCF-101", "Archery/v_Archery_g01_c01.avi")
    (tmp_path / "ucfTrainTestlist").mkdir()
    (tmp_path / "ucfTrainTestlist/classInd.txt").write_text("1 Archery\n")
    (tmp_path / "ucfTrainTestlist/testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    index, _ = DATASETS["ucf101"](root=tmp_path / "UCF-101", subset="test")
    assert [it.label for it in index.items] == [0]
    touch(tmp_path / "hmdb", "kiss/k.avi")
    (tmp_path / "hmdb/testTrainMulti_7030_splits").mkdir()
    (tmp_path / "hmdb/testTrainMulti_7030_splits/kiss_test_split1.txt").write_text("k.avi 1\n")
    index, _ = DATASETS["hmdb51"](root=tmp_path / "hmdb", subset="train")
    assert index.classes == ["kiss"] and len(index) == 1
    # Kinetics: the CVDF layout root/annotations/<subset>.csv + root/<subset>/<file>
    touch(tmp_path / "k400", "val/abc_000001_000011.mp4")
    (tmp_path / "k400/annotations").mkdir()
    (tmp_path / "k400/annotations/val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nyoga,abc,1,11,val\n"
    )
    index, _ = DATASETS["kinetics"](root=tmp_path / "k400", subset="val")
    assert index.classes == ["yoga"] and len(index) == 1
    with pytest.raises(FileNotFoundError, match="splits_dir"):
        DATASETS["hmdb51"](root=tmp_path / "f")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_real_folder_skips_only_the_corrupt_file(caplog, shared_videos):
    root = shared_videos
    index = unlabelled(root)
    names = [Path(it.path).name for it in index.items]
    assert "corrupted.mp4" in names and "again.mkv" in names  # recursive
    # two uniform clips touch the start and the end of every file: corrupted.mp4 breaks at
    # frame 28 of 50, so it fails whatever the seed
    ds = VideoDataset(index, recipe("multi_clip", num_clips=2, train=False), seed=0)
    fds = open_fds()
    with caplog.at_level(logging.WARNING, logger="vidssl.data.datasets"):
        samples = [ds[i] for i in range(len(ds))]
    assert open_fds() == fds  # every source closed
    bad = names.index("corrupted.mp4")
    assert [i for i, s in enumerate(samples) if s["skipped"]] == [bad]
    assert samples[bad]["skipped"] == 1
    assert ds.skipped_count == 1 and ds.failed_files == {str(root / "corrupted.mp4")}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupted.mp4" in warnings[0]
    for s in samples:
        assert s["clips"].shape == (2, 3, 4, 8, 8) and torch.isfinite(s["clips"]).all()
