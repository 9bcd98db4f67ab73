"""Clips/s for 16x112x112 clips: raw video (PyAV) vs prepared ``.vfs`` storage.

Same files, same clip indices, same process: a subset of ``/work/shared/videos`` (the
320x240 / 340x256 H.264 and XviD files) is prepared into a temporary folder with
``vidssl prepare``'s worker (short side 128), then random 16-frame clips are read both ways
and centre-cropped to 112x112. Raw reads open the video, seek to the key frame before the
clip and decode forward, resizing to short side 128 in swscale, i.e. the best PyAV can do
for one clip. Blocks of both alternate so that load from other processes hits both alike.

Target: prepared JPEG storage >= 10x raw.

    python benchmarks/bench_decode.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vidssl.app.prepare import Job, prepare_one
from vidssl.data.storage import FrameStore
from vidssl.data.video import VideoReader

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
SUBSET = ("test.avi", "test.mp4", "demo.mp4", "part_0.mp4")  # XviD 320x240, H.264 340x256
CLIP_LEN, CROP, SHORT_SIDE = 16, 112, 128


def centre_crop(clip: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, C) -> (T, size, size, C)."""
    _, h, w, _ = clip.shape
    top, left = (h - size) // 2, (w - size) // 2
    return clip[:, top : top + size, left : left + size]


def read_raw(path: Path, indices: np.ndarray) -> np.ndarray:
    with VideoReader(path, short_side=SHORT_SIDE) as reader:
        return centre_crop(reader.get_frames(indices), CROP)


def read_store(path: Path, indices: np.ndarray) -> np.ndarray:
    with FrameStore(path) as store:
        return centre_crop(store.get_frames(indices), CROP)


def random_clips(
    lengths: list[int], rng: np.random.Generator, n: int = 500
) -> list[tuple[int, np.ndarray]]:
    """``n`` random ``CLIP_LEN``-frame clips: (file index, frame indices) over files of
    ``lengths`` frames."""
    clips = []
    for _ in range(n):
        f = int(rng.integers(len(lengths)))
        start = int(rng.integers(0, lengths[f] - CLIP_LEN + 1))
        clips.append((f, np.arange(start, start + CLIP_LEN)))
    return clips


def time_block(
    read: Callable[[Path, np.ndarray], np.ndarray],
    paths: list[Path],
    clips: list[tuple[int, np.ndarray]],
    seconds: float,
) -> tuple[int, float]:
    """Read clips in order until ``seconds`` have passed; returns (clips read, elapsed)."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        file_index, indices = clips[n % len(clips)]
        clip = read(paths[file_index], indices)
        assert clip.shape == (CLIP_LEN, CROP, CROP, 3), clip.shape
        n += 1
    return n, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one timed block")
    parser.add_argument("--rounds", type=int, default=3, help="raw/prepared block pairs")
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()

    sources = [VIDEOS / name for name in SUBSET]
    missing = [p for p in sources if not p.exists()]
    if missing:
        raise SystemExit(f"missing benchmark videos: {missing}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="vidssl_bench_") as tmp:
        stores: dict[str, list[Path]] = {}
        for codec in ("jpeg", "raw"):
            stores[codec] = []
            t0 = time.perf_counter()
            for src in sources:
                dst = Path(tmp) / codec / (src.name + ".vfs")
                error = prepare_one(Job(str(src), str(dst), SHORT_SIDE, codec, args.quality))
                if error:
                    raise SystemExit(f"prepare failed for {src}: {error}")
                stores[codec].append(dst)
            size_mb = sum(p.stat().st_size for p in stores[codec]) / 2**20
            print(
                f"prepared {len(sources)} videos as {codec}: {time.perf_counter() - t0:.2f} s, {size_mb:.1f} MB"
            )

        clips = random_clips([FrameStore(p).num_frames for p in stores["jpeg"]], rng)

        # same clip from both paths: prepared frames are the raw ones after JPEG
        f, idx = clips[0]
        diff = np.abs(read_raw(sources[f], idx).astype(int) - read_store(stores["jpeg"][f], idx))
        print(f"raw vs prepared jpeg, same clip: mean |diff| {diff.mean():.2f} / 255")

        totals = {name: [0, 0.0] for name in ("raw video", "prepared jpeg", "prepared raw")}
        readers = {
            "raw video": (read_raw, sources),
            "prepared jpeg": (read_store, stores["jpeg"]),
            "prepared raw": (read_store, stores["raw"]),
        }
        for _ in range(args.rounds):
            for name, (read, paths) in readers.items():
                n, dt = time_block(read, paths, clips, args.seconds)
                totals[name][0] += n
                totals[name][1] += dt

    rates = {name: n / dt for name, (n, dt) in totals.items()}
    print(f"\n{CLIP_LEN}x{CROP}x{CROP} clips/s over {args.rounds} x {args.seconds:.0f} s blocks")
    for name, rate in rates.items():
        print(f"  {name:14s} {rate:8.1f} clips/s   {rate / rates['raw video']:6.1f}x raw")
    ratio = rates["prepared jpeg"] / rates["raw video"]
    verdict = "meets" if ratio >= 10 else "MISSES"
    print(f"\nprepared jpeg / raw = {ratio:.1f}x ({verdict} the >= 10x target)")


if __name__ == "__main__":
    main()
