"""`vidssl scan` and `vidssl prepare` through the CLI entry point, plus --shard helpers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_VIDEOS as VIDEOS
from vidssl.app.cli import main
from vidssl.app.progress import parse_shard, shard_items
from vidssl.data.storage import FrameStore
from vidssl.data.video import VideoReader

needs_videos = pytest.mark.skipif(
    not VIDEOS.is_dir(), reason=f"shared test videos not found at {VIDEOS}"
)
JSON_FIELDS = {"path", "ok", "error", "frames", "fps", "width", "height", "duration"}


def link(folder: Path, *names: str) -> Path:
    """A folder of symlinks to shared videos (``names`` may hold a sub-folder)."""
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(VIDEOS / Path(name).name)
    return folder


# -- --shard helpers -----------------------------------------------------------------------


def test_parse_shard_is_one_based_and_validated() -> None:
    assert parse_shard("2/4") == (1, 4)
    assert parse_shard("1/1") == (0, 1)
    for bad in ("0/4", "5/4", "x/4", "2", "1/2/3", "-1/2", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="K/N"):
            parse_shard(bad)


def test_shards_partition_the_items() -> None:
    items = [f"v{i:02d}" for i in range(11)]
    shards = [shard_items(items, k, 4) for k in range(4)]
    assert sorted(sum(shards, [])) == items
    assert [len(s) for s in shards] == [3, 3, 3, 2]
    assert shard_items(items, 1, 4) == ["v01", "v05", "v09"]


def test_bad_shard_is_an_argparse_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", str(tmp_path), str(tmp_path / "out"), "--shard", "3/2"])
    assert exit_info.value.code == 2
    assert "--shard must be K/N" in capsys.readouterr().err


# -- scan ----------------------------------------------------------------------------------


@needs_videos
def test_scan_json_marks_only_the_broken_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    link(tmp_path, "video_90.mov", "unordered.mov", "corrupted.mp4", "deep/tree.avi")
    (tmp_path / "garbage.webm").write_bytes(b"\x1a\x45\xdf\xa3" + b"junk" * 50)
    (tmp_path / "notes.txt").write_text("not a video")  # ignored: not a video suffix
    code = main(["scan", str(tmp_path), "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert all(set(row) == JSON_FIELDS for row in rows)
    by_name = {Path(row["path"]).name: row for row in rows}
    assert sorted(by_name) == [
        "corrupted.mp4",
        "garbage.webm",
        "tree.avi",
        "unordered.mov",
        "video_90.mov",
    ]
    assert {n for n, row in by_name.items() if not row["ok"]} == {"corrupted.mp4", "garbage.webm"}
    assert "InvalidData" in by_name["corrupted.mp4"]["error"]
    assert by_name["corrupted.mp4"]["frames"] is None
    v90 = by_name["video_90.mov"]
    assert (v90["width"], v90["height"], v90["frames"], v90["error"]) == (320, 568, 3, None)
    assert by_name["tree.avi"]["frames"] == 68
    assert by_name["unordered.mov"]["fps"] == pytest.approx(32.0)


@needs_videos
def test_scan_table_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = link(tmp_path / "good", "unordered.mov", "video_0.mov")
    assert main(["scan", str(good)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["path", "stream", "size", "fps", "duration", "frames", "status"]
    assert lines[2].split() == ["unordered.mov", "#0", "h264", "50x50", "32.00", "0.12s", "4", "ok"]
    assert len({line.index(" ok") for line in lines[2:4]}) == 1  # aligned columns
    assert "0 unreadable" in out

    bad = link(tmp_path / "bad", "unordered.mov", "corrupted.mp4")
    assert main(["scan", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "UNREADABLE" in out
    assert out.split("Unreadable files:")[1].strip().startswith(str(bad / "corrupted.mp4"))

    (tmp_path / "empty").mkdir()
    assert main(["scan", str(tmp_path / "empty")]) == 1
    assert "no video files" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "missing")]) == 2


# -- prepare -------------------------------------------------------------------------------


@needs_videos
def test_prepare_mirrors_resumes_and_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = link(tmp_path / "src", "unordered.mov", "sub/video_90.mov", "corrupted.mp4")
    dst = tmp_path / "dst"
    args = ["prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]
    assert main([*args, "--codec", "raw"]) == 1  # corrupted.mp4 fails, the others go on
    out = capsys.readouterr().out
    assert "prepared 2, skipped 0 (already done), failed 1" in out
    assert f"{src / 'corrupted.mp4'}: " in out and "InvalidData" in out
    outputs = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert outputs == ["sub/video_90.mov.vfs", "unordered.mov.vfs"]  # no temp files left

    with FrameStore(dst / "sub" / "video_90.mov.vfs") as store:
        stored = store.get_frames(range(store.num_frames))
        assert store.header.source == str(src / "sub" / "video_90.mov")
    with VideoReader(src / "sub" / "video_90.mov", short_side=16) as reader:
        expected = reader.get_frames(range(reader.num_frames))
    assert stored.shape == (3, 28, 16, 3)  # upright portrait, short side 16
    np.testing.assert_array_equal(stored, expected)  # raw codec: exact

    mtime = (dst / "unordered.mov.vfs").stat().st_mtime_ns
    assert main(args) == 1  # only the broken file is tried again
    assert "prepared 0, skipped 2 (already done), failed 1" in capsys.readouterr().out
    assert (dst / "unordered.mov.vfs").stat().st_mtime_ns == mtime


@needs_videos
def test_prepare_shards_split_the_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = link(tmp_path / "src", "unordered.mov", "video_0.mov", "video_90.mov")
    done = []
    for k in (1, 2):
        dst = tmp_path / f"dst{k}"
        argv = ["prepare", str(src), str(dst), "--short-side", "8", "--workers", "1"]
        assert main([*argv, "--shard", f"{k}/2"]) == 0
        done.append({p.name for p in dst.rglob("*.vfs")})
    capsys.readouterr()
    assert done[0].isdisjoint(done[1])
    assert done[0] | done[1] == {"unordered.mov.vfs", "video_0.mov.vfs", "video_90.mov.vfs"}
    assert done[0] == {"unordered.mov.vfs", "video_90.mov.vfs"}  # sorted list, items 1 and 3


@needs_videos
@pytest.mark.slow
def test_prepare_with_a_process_pool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = link(tmp_path / "src", "unordered.mov", "video_0.mov", "corrupted.mp4")
    dst = tmp_path / "dst"
    argv = ["prepare", str(src), str(dst), "--short-side", "8", "--workers", "2"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "prepared 2, skipped 0 (already done), failed 1" in out
    assert "corrupted.mp4" in out
    with FrameStore(dst / "video_0.mov.vfs") as store:
        assert store.get_frames([0, 2]).shape == (2, 8, 14, 3)
