"""Optical flow on real frames from ``/work/shared/videos``: speed, agreement, whole runs.

1. Pairs/s of every method (dis, farneback, tvl1, tvl1-torch) at short side 112 and 240 on
   consecutive grey frames of demo.mp4 (340x256 Kinetics clip). OpenCV methods run one pair
   at a time; tvl1-torch runs all pairs as one batch. Ratios are against OpenCV's tvl1
   measured in the same process.
2. Mean end-point error (EPE, px) of tvl1-torch against OpenCV tvl1 at short side 112 on
   consecutive pairs of several videos (target <= 0.5 px); dis and farneback against tvl1
   are shown for scale (how far a *different* method lands).
3. Videos/s of whole ``vidssl flow`` runs (short side 128, PNG) over a few shared videos.

The machine may be shared with other jobs: figures are noisy, ratios less so.

    python benchmarks/bench_flow.py [--pairs 8] [--threads 1] [--workers 2] [--parts speed,epe,runs]

Threads default to 1: on this shared 2-core machine, torch with 2 intra-op threads ran
tvl1-torch 7-15x slower than with 1 (its many small kernels wait on a descheduled thread).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidssl.app import cli
from vidssl.data.video import VideoReader
from vidssl.flow import FLOW_METHODS, FlowFn, create_flow, to_gray
from vidssl.flow.opencv import set_threads

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
SPEED_VIDEO = "demo.mp4"
EPE_VIDEOS = ("demo.mp4", "bikes.mp4", "chaplin.mp4", "test.avi", "carphone_pristine.mp4")
RUN_VIDEOS = ("carphone_pristine.mp4", "part_0.mp4", "tree.avi", "unordered.mov", "video_0.mov")
BASELINE = "tvl1"


def grey_frames(name: str, indices: list[int], short_side: int) -> np.ndarray:
    """Grey frames of a shared video: (T, H, W) uint8."""
    with VideoReader(VIDEOS / name, short_side=short_side) as reader:
        return to_gray(reader.get_frames(indices))


def pairs_per_second(fn: FlowFn, grey: np.ndarray, min_seconds: float) -> float:
    """Consecutive pairs of ``grey`` (T, H, W) through ``fn``, repeated for ``min_seconds``."""
    fn(grey[:2], grey[1:3])  # warm-up (allocations, OpenCV / torch thread pools)
    done, start = 0, time.perf_counter()
    while True:
        fn(grey[:-1], grey[1:])
        done += grey.shape[0] - 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def bench_speed(pairs: int, min_seconds: float) -> None:
    print(f"\n== pairs/s on {SPEED_VIDEO}, {pairs} consecutive pairs ==")
    for short in (112, 240):
        grey = grey_frames(SPEED_VIDEO, list(range(pairs + 1)), short)
        rates = {m: pairs_per_second(create_flow(m), grey, min_seconds) for m in FLOW_METHODS}
        h, w = grey.shape[1:]
        for method, rate in rates.items():
            ratio = rate / rates[BASELINE]
            print(f"  {h}x{w}  {method:<11} {rate:8.2f} pairs/s   {ratio:6.2f}x {BASELINE}")


def bench_epe(pairs: int) -> None:
    print("\n== mean end-point error vs OpenCV tvl1 at short side 112 (px) ==")
    fns = {m: create_flow(m) for m in FLOW_METHODS}
    print(f"  {'video':<24} {'|flow|':>7} " + " ".join(f"{m:>11}" for m in fns if m != BASELINE))
    per_method: dict[str, list[float]] = {m: [] for m in fns if m != BASELINE}
    for name in EPE_VIDEOS:
        with VideoReader(VIDEOS / name) as reader:
            n = reader.num_frames
        starts = np.linspace(0, n - 2, pairs).astype(int).tolist()
        grey = grey_frames(name, [i for s in starts for i in (s, s + 1)], 112)
        prev, nxt = grey[0::2], grey[1::2]  # (pairs, H, W) each
        ref = fns[BASELINE](prev, nxt)
        row = []
        for method in per_method:
            epe = float(np.linalg.norm(fns[method](prev, nxt) - ref, axis=-1).mean())
            per_method[method].append(epe)
            row.append(f"{epe:11.3f}")
        mag = float(np.linalg.norm(ref, axis=-1).mean())
        print(f"  {name:<24} {mag:7.2f} " + " ".join(row))
    means = " ".join(f"{np.mean(v):11.3f}" for v in per_method.values())
    print(f"  {'mean':<24} {'':>7} {means}")
    verdict = "met" if np.mean(per_method["tvl1-torch"]) <= 0.5 else "MISSED"
    print(f"  tvl1-torch target <= 0.5 px: {verdict}")


def bench_runs(methods: list[str], workers: int) -> None:
    print(f"\n== whole `vidssl flow` runs, short side 128, {workers} workers ==")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        frames = 0
        for name in RUN_VIDEOS:
            (src / name).symlink_to(VIDEOS / name)
            with VideoReader(VIDEOS / name) as reader:
                frames += reader.num_frames
        print(f"  {len(RUN_VIDEOS)} videos, {frames} frames: {', '.join(RUN_VIDEOS)}")
        for method in methods:
            dst = Path(tmp) / f"out-{method}"
            argv = ["flow", str(src), str(dst), "--method", method, "--workers", str(workers)]
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                rc = cli.main([*argv, "--device", "cpu"])
            elapsed = time.perf_counter() - start
            print(
                f"  {method:<11} {len(RUN_VIDEOS) / elapsed:6.3f} videos/s "
                f"{frames / elapsed:7.1f} frames/s  ({elapsed:.1f} s, exit {rc})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs per measurement")
    parser.add_argument("--seconds", type=float, default=2.0, help="min seconds per rate")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch / OpenCV threads (default 1: see notes)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for the whole runs")
    parser.add_argument(
        "--run-methods", default="dis,tvl1,tvl1-torch", help="methods for the whole runs"
    )
    parser.add_argument("--parts", default="speed,epe,runs", help="which measurements to run")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        raise SystemExit(f"shared videos not found at {VIDEOS}")
    torch.set_num_threads(args.threads)
    set_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; methods: {', '.join(FLOW_METHODS)}")
    parts = set(args.parts.split(","))
    if "speed" in parts:
        bench_speed(args.pairs, args.seconds)
    if "epe" in parts:
        bench_epe(args.pairs)
    if "runs" in parts:
        bench_runs(args.run_methods.split(","), args.workers)


if __name__ == "__main__":
    main()
