"""`vidssl prepare SRC DST`: decode every video once into fast ``.vfs`` frame storage.

``SRC/a/b.mp4`` becomes ``DST/a/b.mp4.vfs`` (frames resized so the short side is
``--short-side`` pixels, stored as JPEG by default). Outputs appear atomically, so a re-run
skips finished files and resumes an interrupted job. Failures are listed at the end; they
do not stop the other files.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from vidssl.app.progress import add_shard_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, metavar="SRC", help="folder of videos (recursive)")
    parser.add_argument("dst", type=Path, metavar="DST", help="output folder, mirrors SRC")
    parser.add_argument(
        "--short-side",
        type=int,
        default=128,
        metavar="PX",
        help="resize frames so that the shorter side is PX pixels; 0 keeps the size (default: 128)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="parallel processes; 1 runs in this process (default: number of CPUs)",
    )
    parser.add_argument(
        "--quality", type=int, default=90, metavar="Q", help="JPEG quality 1-95 (default: 90)"
    )
    parser.add_argument(
        "--codec",
        choices=("jpeg", "png", "raw"),
        default="jpeg",
        help="frame encoding: jpeg (small, fast), png (lossless), raw (fastest, largest)",
    )
    add_shard_argument(parser)
    parser.epilog = (
        "Exit status: 0 when every video was prepared (or already was), 1 when any video "
        "failed (each failure is listed with its cause), 2 on bad arguments."
    )


@dataclass(frozen=True)
class Job:
    src: str
    dst: str
    short_side: int | None
    codec: str
    quality: int


def output_path(src_root: Path, dst_root: Path, video: Path) -> Path:
    """``SRC/a/b.mp4`` -> ``DST/a/b.mp4.vfs`` (the source suffix is kept: no collisions)."""
    from vidssl.data.extensions import STORE_SUFFIX

    rel = video.relative_to(src_root)
    return dst_root / rel.parent / (rel.name + STORE_SUFFIX)


def find_raw_videos(root: Path) -> list[Path]:
    """Raw video files under ``root``, sorted; names starting with '.' are skipped."""
    from vidssl.data.extensions import find_video_files

    return find_video_files(root, raw_only=True)


def prepare_one(job: Job) -> str | None:
    """Decode ``job.src`` and write ``job.dst``; returns None or the cause of failure."""
    from vidssl.data.storage import FrameStoreWriter
    from vidssl.data.video import VideoReader, describe_exception

    try:
        with VideoReader(job.src, short_side=job.short_side, threads=1) as reader:
            extra = {"short_side": job.short_side, "source_frames": reader.num_frames}
            with FrameStoreWriter(
                job.dst, reader.fps, job.codec, job.quality, source=job.src, extra=extra
            ) as writer:
                writer.extend(reader.iter_frames())
    except Exception as exc:  # report every failure at the end instead of aborting the run
        return getattr(exc, "cause", None) or describe_exception(exc)
    return None


def run(args: argparse.Namespace) -> int:
    from vidssl.app.progress import print_failures, progress, run_jobs, shard_items

    src, dst = args.src, args.dst
    if not src.is_dir():
        print(f"vidssl prepare: SRC {src} is not a folder", file=sys.stderr)
        return 2
    if args.short_side < 0 or args.workers < 1 or not 1 <= args.quality <= 95:
        print(
            "vidssl prepare: need --short-side >= 0, --workers >= 1, 1 <= --quality <= 95",
            file=sys.stderr,
        )
        return 2
    k, n = args.shard
    videos = shard_items(find_raw_videos(src), k, n)
    jobs, done = [], 0
    for video in videos:
        out = output_path(src, dst, video)
        if out.exists():
            done += 1  # written atomically: an existing output is complete
            continue
        jobs.append(Job(str(video), str(out), args.short_side or None, args.codec, args.quality))
    shard = f" (shard {k + 1}/{n})" if n > 1 else ""
    print(
        f"vidssl prepare: {len(videos)} videos{shard}, {done} already prepared, {len(jobs)} to do",
        file=sys.stderr,
    )
    failures: list[tuple[str, str]] = []
    with progress(total=len(jobs), desc="prepare", unit="video") as bar:
        for job, error in run_jobs(prepare_one, jobs, args.workers):
            if error is not None:
                failures.append((job.src, error))
                bar.set_postfix(failed=len(failures))
            bar.update(1)
    print(
        f"prepared {len(jobs) - len(failures)}, skipped {done} (already done), "
        f"failed {len(failures)}"
    )
    print_failures(failures)
    return 1 if failures else 0
