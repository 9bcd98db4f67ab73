"""One definition of the video file extensions: scan, prepare, flow, layouts and embed agree."""

from pathlib import Path

import av
import numpy as np
import pytest

from vidssl.app.cli import main
from vidssl.app.flow import find_sources
from vidssl.app.prepare import find_raw_videos
from vidssl.app.scan import find_videos
from vidssl.data import extensions
from vidssl.data.layouts import unlabelled
from vidssl.data.sources import open_video


def write_ts(path: Path, frames: int = 12, size: int = 32) -> Path:
    """A tiny MPEG-TS (MPEG-2 video) file: a bright square moving right."""
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.zeros((size, size, 3), np.uint8)
            img[8:16, 2 * i : 2 * i + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_one_definition_of_suffixes():
    from vidssl.data import layouts, sources, storage, two_stream, video

    assert ".ts" in extensions.VIDEO_EXTENSIONS
    assert extensions.SOURCE_EXTENSIONS == extensions.VIDEO_EXTENSIONS | {".vfs"}
    assert video.VIDEO_EXTENSIONS is extensions.VIDEO_EXTENSIONS
    assert sources.SOURCE_EXTENSIONS is extensions.SOURCE_EXTENSIONS
    assert storage.STORE_SUFFIX is layouts.STORE_SUFFIX is two_stream.STORE_SUFFIX
    assert storage.STORE_SUFFIX is extensions.STORE_SUFFIX


def test_ts_file_is_found_by_every_command_and_decodes(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    ts = write_ts(src / "clip.ts")
    (src / "notes.txt").write_text("not a video")
    (src / ".hidden.mp4").write_bytes(b"")
    assert find_videos(src) == [ts]
    assert find_raw_videos(src) == [ts]
    assert find_sources(src) == [ts]
    assert [Path(i.path) for i in unlabelled(src).items] == [ts]
    with open_video(ts) as video:
        assert video.num_frames == 12
        assert video.get_frames([0, 11]).shape == (2, 32, 32, 3)
    assert main(["scan", str(src)]) == 0
    dst = tmp_path / "prepared"
    assert main(["prepare", str(src), str(dst), "--workers", "1", "--short-side", "0"]) == 0
    assert [p.name for p in dst.iterdir()] == ["clip.ts.vfs"]
    # the prepared file is found too, and a raw file with its prepared twin counts once
    (dst / "clip.ts").write_bytes(ts.read_bytes())
    assert [Path(i.path).name for i in unlabelled(dst).items] == ["clip.ts.vfs"]


@pytest.mark.parametrize("name", ["A.TS", "b.Mp4", "c.vfs"])
def test_suffix_case_does_not_matter(name: str):
    assert extensions.is_source_file(name)
    assert extensions.is_raw_video(name) == (not name.endswith(".vfs"))
