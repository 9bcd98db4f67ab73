"""Resident-memory growth of the decoder over many random clips in one process.

Decodes ``--clips`` (default 2,000) random 16-frame clips (stride 1 or 2, full resolution)
from every file of ``/work/shared/videos``, opening and closing each video like a dataset
item does, and prints VmRSS (from /proc/self/status) along the way. Unreadable files are
counted, not fatal. Target: growth between clip 200 and the last clip < 50 MB.

    python benchmarks/bench_decoder_memory.py [--clips 2000]
"""

from __future__ import annotations

import argparse
import gc
import resource
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vidssl.data.sources import SOURCE_EXTENSIONS, open_video
from vidssl.data.video import VideoDecodeError

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
CLIP_LEN = 16
WARMUP = 200


def rss_mb() -> float:
    """Current resident set size in MB (VmRSS), falling back to the peak from ``resource``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = sorted(
        p for p in VIDEOS.rglob("*") if p.is_file() and p.suffix.lower() in SOURCE_EXTENSIONS
    )
    if not files:
        raise SystemExit(f"no videos under {VIDEOS}")
    rng = np.random.default_rng(args.seed)
    failures, marks = 0, {}
    start_rss = rss_mb()
    for i in tqdm(range(1, args.clips + 1), unit="clip"):
        path = files[int(rng.integers(len(files)))]
        try:
            video = open_video(path)
            try:
                stride = int(rng.integers(1, 3))
                span = min(video.num_frames, (CLIP_LEN - 1) * stride + 1)
                start = int(rng.integers(0, video.num_frames - span + 1))
                idx = np.minimum(start + stride * np.arange(CLIP_LEN), video.num_frames - 1)
                clip = video.get_frames(idx)
                assert clip.dtype == np.uint8 and clip.shape[0] == CLIP_LEN
            finally:
                video.close()
        except VideoDecodeError:
            failures += 1
        if i == WARMUP or i == args.clips or i % 500 == 0:
            gc.collect()
            marks[i] = rss_mb()
            tqdm.write(f"clip {i:5d}: RSS {marks[i]:7.1f} MB")
    print(f"\nstart RSS {start_rss:.1f} MB; {failures} clips from unreadable files (expected)")
    if WARMUP in marks and args.clips > WARMUP:
        growth = marks[args.clips] - marks[WARMUP]
        verdict = "meets" if growth < 50 else "MISSES"
        print(
            f"RSS growth clip {WARMUP} -> {args.clips}: {growth:+.1f} MB "
            f"({verdict} the < 50 MB target)"
        )


if __name__ == "__main__":
    main()
