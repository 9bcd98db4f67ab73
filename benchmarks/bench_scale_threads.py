"""Raw-video clips/s with frame conversion (swscale) on one thread vs PyAV's default pool.

vidssl converts decoded frames on one thread (``vidssl.data.video.SCALE_THREADS``): PyAV 18.1.1
hangs a forked data-loader worker otherwise. This measures what that costs where it matters
most, one process reading clips with nobody else converting: the same random 16-frame clips
(resized to short side 128 in swscale, centre crop 112) are read with ``threads=1`` and with
``threads=0`` (PyAV >= 17's default, one thread per CPU), in alternating blocks in one process,
and the two must give the same pixels. Prints clips/s of each and the ratio.

    python benchmarks/bench_scale_threads.py [--seconds 4] [--rounds 3] [--videos a.mp4 ...]
"""

from __future__ import annotations

import argparse

import av
import numpy as np

from bench_decode import SUBSET, VIDEOS, random_clips, read_raw, time_block
from vidssl.data import video
from vidssl.data.video import VideoReader

SETTINGS = {"one thread (vidssl)": {"threads": 1}, "PyAV default pool": {"threads": 0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one timed block")
    parser.add_argument("--rounds", type=int, default=3, help="block pairs")
    parser.add_argument(
        "--videos", nargs="+", default=list(SUBSET), help="files in ../shared/videos"
    )
    args = parser.parse_args()
    if int(av.__version__.split(".")[0]) < 17:
        raise SystemExit(
            f"PyAV {av.__version__} has no conversion threads to compare (needs >= 17)"
        )
    paths = [VIDEOS / name for name in args.videos]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"missing benchmark videos: {missing}")

    lengths = []
    for p in paths:
        with VideoReader(p) as reader:
            lengths.append(reader.num_frames)
    clips = random_clips(lengths, np.random.default_rng(0))

    outputs = []
    for kwargs in SETTINGS.values():
        video.SCALE_THREADS = kwargs
        outputs.append(read_raw(paths[clips[0][0]], clips[0][1]))
    same = np.array_equal(*outputs)
    print(f"same clip with both settings: {'identical pixels' if same else 'DIFFERENT pixels'}")

    totals = {name: [0, 0.0] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, kwargs in SETTINGS.items():
            video.SCALE_THREADS = kwargs
            n, dt = time_block(read_raw, paths, clips, args.seconds)
            totals[name][0] += n
            totals[name][1] += dt
    rates = {name: n / dt for name, (n, dt) in totals.items()}
    print(
        f"PyAV {av.__version__}, {', '.join(args.videos)}; {args.rounds} x {args.seconds:.0f} s blocks"
    )
    for name, rate in rates.items():
        print(f"  {name:22s} {rate:7.1f} clips/s")
    one, pool = rates.values()
    print(f"one thread / default pool: {one / pool:.2f}x")


if __name__ == "__main__":
    main()
