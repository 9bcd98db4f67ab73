"""PyAV decoding on the real files of ../shared/videos and on broken files made here."""

from __future__ import annotations

import pickle
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from conftest import SHARED_VIDEOS as VIDEOS
from vidssl.data.synthetic import write_video
from vidssl.data.video import (
    VideoDecodeError,
    VideoReader,
    frame_table,
    indices_at_fps,
    indices_for_times,
    probe,
)

needs_videos = pytest.mark.skipif(
    not VIDEOS.is_dir(), reason=f"shared test videos not found at {VIDEOS}"
)

# (frames that really decode, displayed height, displayed width), from manifest.tsv and a
# full decode with the ffmpeg CLI semantics; None = not pinned
EXPECTED: dict[str, tuple[int | None, int, int]] = {
    "S001C001P001R001A001_rgb.avi": (103, 1080, 1920),
    "big_buck_bunny_432_433.webm": (24, 720, 1280),
    "bikes.mp4": (250, 272, 640),
    "carphone_distorted.mp4": (120, 144, 176),
    "carphone_pristine.mp4": (120, 144, 176),
    "chaplin.mp4": (241, 360, 640),
    "demo.mp4": (280, 256, 340),
    "flipping_a_pancake.mkv": (310, 240, 426),
    "nasa_13013.mp4": (325, 180, 320),
    "no_duration.webm": (74, 720, 1280),
    "part_0.mp4": (32, 256, 340),
    "test.avi": (164, 240, 320),
    "test.mp4": (300, 256, 340),
    "tree.avi": (68, 240, 320),
    "unordered.mov": (4, 50, 50),
    "video_0.mov": (3, 320, 568),
    "video_90.mov": (3, 568, 320),
    "video_with_failing_audio.mp4": (280, 360, 640),
    "vtest.avi": (795, 576, 768),
}
ASL = sorted(p.name for p in (VIDEOS / "asl_gestures").glob("*.mkv")) if VIDEOS.is_dir() else []
EXPECTED.update({f"asl_gestures/{name}": (None, 480, 640) for name in ASL})


def pyav_frames(path: Path, stream: int = 0) -> list[np.ndarray]:
    """Reference: every frame of a video stream, decoded sequentially, no rotation."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=stream)]


@needs_videos
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_file_decodes_a_short_clip(name: str) -> None:
    frames, height, width = EXPECTED[name]
    with VideoReader(VIDEOS / name) as reader:
        if frames is not None:
            assert reader.num_frames == frames
        n = reader.num_frames
        idx = [n // 2, min(n // 2 + 2, n - 1), n - 1, 0]
        clip = reader.get_frames(idx)
    assert clip.dtype == np.uint8
    assert clip.shape == (4, height, width, 3)
    assert clip.max() > 0  # pictures, not zeroed buffers (unordered.mov is all white)


@needs_videos
def test_corrupted_file_raises_naming_the_file() -> None:
    path = VIDEOS / "corrupted.mp4"
    with VideoReader(path) as reader:  # opens and demuxes fine: the damage is in frame data
        with pytest.raises(VideoDecodeError) as err:
            reader.get_frames(range(reader.num_frames - 4, reader.num_frames))
    assert "corrupted.mp4" in str(err.value) and err.value.path == str(path)
    assert "InvalidData" in err.value.cause
    with pytest.raises(VideoDecodeError, match=r"corrupted\.mp4.*decoding failed after"):
        probe(path)


@needs_videos
def test_rotation_metadata_gives_upright_frames() -> None:
    raw = np.stack(pyav_frames(VIDEOS / "video_90.mov"))  # stored sideways: (3, 320, 568, 3)
    assert raw.shape == (3, 320, 568, 3)
    with VideoReader(VIDEOS / "video_90.mov") as reader:
        upright = reader.get_frames([0, 1, 2])
    assert upright.shape == (3, 568, 320, 3)
    # rotation -90 (counter-clockwise) = one clockwise quarter turn; checked by eye that the
    # key labels then read upright. video_0.mov is different footage, not this clip unrotated,
    # so it serves as the no-rotation case instead.
    np.testing.assert_array_equal(upright, np.rot90(raw, k=-1, axes=(1, 2)))
    info = probe(VIDEOS / "video_90.mov")
    assert (info.width, info.height, info.rotation) == (320, 568, -90)
    with VideoReader(VIDEOS / "video_0.mov") as reader:
        np.testing.assert_array_equal(
            reader.get_frames([0, 1, 2]), np.stack(pyav_frames(VIDEOS / "video_0.mov"))
        )


@needs_videos
def test_reads_the_first_of_several_video_streams() -> None:
    path = VIDEOS / "nasa_13013.mp4"
    with av.open(str(path)) as container:
        sizes = [(s.codec_context.height, s.codec_context.width) for s in container.streams.video]
    assert sizes == [(180, 320), (270, 480)]
    with VideoReader(path) as reader:
        clip = reader.get_frames([0, 1, 2])
    np.testing.assert_array_equal(clip, np.stack(pyav_frames(path, stream=0)[:3]))
    assert probe(path).stream_index == 0


@needs_videos
def test_no_duration_webm_counts_frames_and_reads_the_end() -> None:
    path = VIDEOS / "no_duration.webm"
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    with VideoReader(path, short_side=24) as reader:
        assert reader.num_frames == 74
        assert reader.fps == pytest.approx(15000 / 1001)
        every = np.stack(list(reader.iter_frames()))
        np.testing.assert_array_equal(reader.get_frames([73, 70, 71]), every[[73, 70, 71]])
    info = probe(path)
    assert info.frames == 74 and info.duration == pytest.approx(74 * 1001 / 15000, abs=0.08)


@needs_videos
def test_tree_avi_counts_what_decodes_not_the_header() -> None:
    path = VIDEOS / "tree.avi"
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 444  # the header's promise
    with VideoReader(path) as reader:
        assert reader.num_frames == 68
        every = np.stack(list(reader.iter_frames()))
        assert every.shape[0] == 68
        np.testing.assert_array_equal(reader.get_frames(range(64, 68)), every[64:68])
        with pytest.raises(IndexError, match="tree.avi"):
            reader.get_frames([67, 68])  # past the end: an error, not a hang
    assert probe(path).frames == 68


@needs_videos
@pytest.mark.parametrize(
    "name", ["test.mp4", "flipping_a_pancake.mkv", "test.avi", "tree.avi", "unordered.mov"]
)
def test_seeking_matches_a_sequential_decode(name: str) -> None:
    with VideoReader(VIDEOS / name, short_side=24) as reader:
        every = np.stack(list(reader.iter_frames()))
        n = reader.num_frames
        assert every.shape[0] == n
        rng = np.random.default_rng(0)
        requests = [list(range(s, min(s + 6, n))) for s in rng.integers(0, n, size=8)]
        requests += [[n - 1, 0, n // 2, n // 2, 1 % n], [0], [n - 1]]  # any order, repeats
        for keys in frame_table(VIDEOS / name).key_ranks[1:]:  # windows across key frames
            requests.append(list(range(max(int(keys) - 3, 0), min(int(keys) + 3, n))))
        for idx in requests:
            np.testing.assert_array_equal(reader.get_frames(idx), every[idx], err_msg=str(idx))


@needs_videos
def test_a_clip_near_the_end_does_not_decode_the_whole_file() -> None:
    path = VIDEOS / "test.mp4"  # 300 frames, key frames at 0 and 235
    reader = VideoReader(path, short_side=24)
    delivered = 0
    decoded = reader._decoded

    def counting():  # wraps the decoder loop to count the frames it delivers
        nonlocal delivered
        for frame in decoded():
            delivered += 1
            yield frame

    reader._decoded = counting
    clip = reader.get_frames(range(290, 296))
    reader.close()
    assert clip.shape[0] == 6
    assert delivered <= 296 - 235 + 8  # from the key frame at 235, not from frame 0


@needs_videos
def test_decodes_the_video_stream_of_a_file_with_broken_audio() -> None:
    with VideoReader(VIDEOS / "video_with_failing_audio.mp4", short_side=24) as reader:
        assert reader.get_frames(range(reader.num_frames - 3, reader.num_frames)).shape[0] == 3


def test_empty_garbage_and_missing_files_raise(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mkv"
    text.write_text("not a video at all\n" * 20)
    for path in (empty, garbage, text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError, match=path.name):
            VideoReader(path)
        with pytest.raises(VideoDecodeError, match=path.name):
            probe(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(800, dtype=np.int16).tobytes())
    with pytest.raises(VideoDecodeError, match=r"sound\.wav.*no video stream"):
        VideoReader(path)


@needs_videos
def test_truncated_files(tmp_path: Path) -> None:
    data = (VIDEOS / "test.mp4").read_bytes()  # index (moov) at the end: unreadable when cut
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4"):
        VideoReader(cut)
    tiny = tmp_path / "tiny.mp4"
    tiny.write_bytes(data[:64])
    with pytest.raises(VideoDecodeError, match=r"tiny\.mp4"):
        probe(tiny)
    # an AVI streams its frames first: the first half still decodes, and only that is counted
    avi = (VIDEOS / "test.avi").read_bytes()
    half = tmp_path / "half.avi"
    half.write_bytes(avi[: len(avi) // 2])
    with VideoReader(half, short_side=24) as reader:
        assert 0 < reader.num_frames < 164
        assert reader.get_frames([reader.num_frames - 1]).shape == (1, 24, 32, 3)


def test_video_decode_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(VideoDecodeError("a/b.mp4", "broken")))
    assert (err.path, err.cause, str(err)) == (
        "a/b.mp4",
        "broken",
        "cannot decode video 'a/b.mp4': broken",
    )


def test_time_to_index_helpers() -> None:
    np.testing.assert_array_equal(indices_at_fps(0.0, 4, 10.0, 30.0, 300), [0, 3, 6, 9])
    np.testing.assert_array_equal(indices_at_fps(1.0, 4, 60.0, 30.0, 300), [30, 30, 31, 31])
    np.testing.assert_array_equal(indices_at_fps(9.9, 4, 10.0, 30.0, 300), [297, 299, 299, 299])
    np.testing.assert_array_equal(indices_for_times([0.0, 0.5, 1 / 3], 30.0, 100), [0, 15, 10])
    with pytest.raises(ValueError, match="target_fps"):
        indices_at_fps(0.0, 4, 0.0, 30.0, 300)


def test_reader_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="short_side"):
        VideoReader(tmp_path / "x.mp4", short_side=0)


@needs_videos
def test_quick_probe_without_full_decode() -> None:
    full, quick = probe(VIDEOS / "test.avi"), probe(VIDEOS / "test.avi", decode=False)
    assert (quick.frames, quick.width, quick.height, quick.codec) == (164, 320, 240, "mpeg4")
    assert quick.duration == pytest.approx(full.duration) and quick.fps == full.fps == 25.0
    # the quick probe cannot see damage past the first frame; the full one does
    assert probe(VIDEOS / "corrupted.mp4", decode=False).frames == 50


class _FirstFrames(torch.utils.data.Dataset):
    """Item i: the first two frames of the file (decoded and converted in a loader worker)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> np.ndarray:
        with VideoReader(self.path) as video:
            return video.get_frames([0, 1])


def test_forked_loader_workers_convert_after_the_parent_did(tmp_path: Path) -> None:
    # PyAV 18.1.1 keeps its frame converter in a thread-local; with its default thread pool a
    # forked worker inherited it without the threads and hung in its first conversion
    path = tmp_path / "clip.mp4"
    frames = np.random.default_rng(0).integers(0, 255, (4, 96, 128, 3), dtype=np.uint8)
    write_video(path, frames, fps=10)
    with VideoReader(path) as video:
        want = video.get_frames([0, 1])  # the parent converts first
    loader = torch.utils.data.DataLoader(
        _FirstFrames(path),
        batch_size=None,
        num_workers=1,
        multiprocessing_context="fork",
        timeout=60,  # a hung worker fails the test instead of hanging the run
    )
    got = list(loader)
    assert len(got) == 2 and all(np.array_equal(g.numpy(), want) for g in got)
