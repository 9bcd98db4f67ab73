"""Prepared frame storage (.vfs): round trips, atomic writes, damaged files, open_video."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_VIDEOS as VIDEOS
from vidssl.data.sources import VideoSource, open_video, probe_source
from vidssl.data.storage import FrameStore, FrameStoreWriter, write_frames
from vidssl.data.video import VideoDecodeError, VideoReader


def noise(t: int, c: int, h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, c), dtype=np.uint8)


def smooth(t: int, c: int, h: int = 24, w: int = 32) -> np.ndarray:
    """Gradients that move over time: (t, h, w, c) uint8, JPEG-friendly."""
    y, x = np.mgrid[0:h, 0:w]
    frames = [
        np.stack([x * 2 + y * (k + 1) + 15 * i + 25 * k for k in range(c)], axis=-1)
        for i in range(t)
    ]
    return np.stack(frames).astype(np.uint8)


@pytest.mark.parametrize("codec", ["raw", "png"])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_lossless_round_trip(tmp_path: Path, codec: str, channels: int) -> None:
    frames = noise(5, channels)
    header = write_frames(tmp_path / "a.vfs", frames, fps=12.5, codec=codec, source="src.mp4")
    assert (header.num_frames, header.height, header.width, header.channels) == (
        5,
        12,
        20,
        channels,
    )
    with FrameStore(tmp_path / "a.vfs") as store:
        assert (store.num_frames, store.fps, store.header.source) == (5, 12.5, "src.mp4")
        idx = [4, 0, 2, 2, 4]  # any order, repeats
        np.testing.assert_array_equal(store.get_frames(idx), frames[idx])


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_jpeg_round_trip_is_close_and_matches_pillow(tmp_path: Path, channels: int) -> None:
    frames = smooth(4, channels)
    write_frames(tmp_path / "a.vfs", frames, fps=30, codec="jpeg", quality=90)
    with FrameStore(tmp_path / "a.vfs") as store:
        got = store.get_frames([3, 1])
        assert got.shape == (2, 24, 32, channels) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - frames[[3, 1]]).mean() < 4
        # reference decode of the same bytes through Image.open
        planes = store.header.planes
        assert planes == (1 if channels == 3 else channels)
        for c in range(planes):
            payload = store._payload(3 * planes + c)
            ref = np.asarray(Image.open(io.BytesIO(payload)))
            ref = ref if ref.ndim == 3 else ref[:, :, None]
            np.testing.assert_array_equal(got[0, :, :, c : c + ref.shape[2]], ref)


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.vfs"
    with pytest.raises(RuntimeError, match="decoder died"):
        with FrameStoreWriter(target, fps=30) as writer:
            writer.add(noise(1, 3)[0])
            assert not target.exists()  # nothing visible until close()
            raise RuntimeError("decoder died")
    assert list(target.parent.iterdir()) == []
    with pytest.raises(ValueError, match="no frames"):
        write_frames(target, [], fps=30)
    assert list(target.parent.iterdir()) == []


def test_writer_rejects_bad_frames(tmp_path: Path) -> None:
    with FrameStoreWriter(tmp_path / "a.vfs", fps=30, codec="raw") as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.add(np.zeros((4, 4, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="C in 1..3"):
            writer.add(np.zeros((4, 4, 4), dtype=np.uint8))
        writer.add(np.zeros((4, 4), dtype=np.uint8))  # (H, W) is one channel
        with pytest.raises(ValueError, match="first"):
            writer.add(np.zeros((4, 5, 1), dtype=np.uint8))
    with FrameStore(tmp_path / "a.vfs") as store:
        assert store.get_frames([0]).shape == (1, 4, 4, 1)
        with pytest.raises(IndexError, match="a.vfs"):
            store.get_frames([1])
    with pytest.raises(ValueError, match="codec"):
        FrameStoreWriter(tmp_path / "b.vfs", fps=30, codec="webp")


def test_damaged_stores_raise_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.vfs"
    write_frames(good, smooth(3, 3), fps=30)
    data = good.read_bytes()
    cases = {
        "empty.vfs": b"",
        "garbage.vfs": b"x" * 100,
        "cut.vfs": data[:-10],
        "cut_middle.vfs": data[: len(data) // 2],
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(VideoDecodeError, match=name):
            FrameStore(tmp_path / name)
    # payload damage that the index cannot see shows when the frame is decoded
    bad = bytearray(data)
    bad[8:200] = b"\0" * 192
    (tmp_path / "bad_jpeg.vfs").write_bytes(bytes(bad))
    with FrameStore(tmp_path / "bad_jpeg.vfs") as store:
        with pytest.raises(VideoDecodeError, match=r"bad_jpeg\.vfs.*frame 0"):
            store.get_frames([0])


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"shared test videos not found at {VIDEOS}")
def test_open_video_dispatches_on_suffix(tmp_path: Path) -> None:
    raw = open_video(VIDEOS / "unordered.mov")
    assert isinstance(raw, VideoReader) and isinstance(raw, VideoSource)
    frames = raw.get_frames(range(raw.num_frames))
    raw.close()
    write_frames(tmp_path / "u.mov.vfs", frames, fps=raw.fps, codec="raw")
    store = open_video(tmp_path / "u.mov.vfs")
    assert isinstance(store, FrameStore) and isinstance(store, VideoSource)
    np.testing.assert_array_equal(store.get_frames([3, 0]), frames[[3, 0]])
    store.close()
    info = probe_source(tmp_path / "u.mov.vfs")
    assert (info.frames, info.width, info.height, info.codec) == (4, 50, 50, "vfs/raw")
