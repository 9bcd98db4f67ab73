"""`vidssl flow SRC DST`: optical flow of every video into ``.vfs`` storage, like `prepare`.

``SRC`` holds raw videos and/or prepared RGB ``.vfs`` files (recursively). ``SRC/a/b.mp4``
becomes ``DST/a/b.mp4.vfs`` and ``SRC/a/b.mp4.vfs`` becomes ``DST/a/b.mp4.vfs``, so the flow
of a prepared RGB file sits at the same relative path under ``DST``. Frames are resized so
that the short side is ``--short-side`` pixels before the flow is computed; flow is clipped to
``+-bound`` and stored as 2-channel uint8 (see ``vidssl.data.flow_extract``). Outputs appear
atomically, so a re-run skips finished files and resumes an interrupted job; failures are
listed at the end and do not stop the other files.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidssl.app.progress import add_shard_argument

if TYPE_CHECKING:
    from vidssl.flow import FlowFn

# per-process cache of built flow functions: (method, device) -> FlowFn
_FLOW_FNS: dict[tuple[str, str], FlowFn] = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vidssl.flow import FLOW_METHODS

    methods = ", ".join(f"{k} ({m.summary})" for k, m in FLOW_METHODS.items())
    parser.add_argument("src", type=Path, metavar="SRC", help="folder of videos / .vfs files")
    parser.add_argument("dst", type=Path, metavar="DST", help="output folder, mirrors SRC")
    parser.add_argument(
        "--method",
        choices=sorted(FLOW_METHODS),
        default="dis",
        help=f"flow estimator: {methods} (default: dis)",
    )
    parser.add_argument(
        "--short-side",
        type=int,
        default=128,
        metavar="PX",
        help="resize frames so that the shorter side is PX pixels before computing flow; "
        "0 keeps the size (default: 128)",
    )
    parser.add_argument(
        "--bound",
        type=float,
        default=20.0,
        metavar="PX",
        help="clip flow to +-PX pixels before mapping it to 0..255 (default: 20)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="parallel processes; 1 runs in this process (default: number of CPUs)",
    )
    parser.add_argument(
        "--codec",
        choices=("png", "jpeg", "raw"),
        default="png",
        help="flow frame encoding: png (lossless, default), jpeg (smaller, lossy), raw",
    )
    parser.add_argument(
        "--quality", type=int, default=90, metavar="Q", help="JPEG quality 1-95 (default: 90)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device for tvl1-torch: auto (cuda if available), cpu, cuda, cuda:1 ...",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=16,
        metavar="B",
        help="frame pairs per flow call (the GPU/CPU batch of tvl1-torch; default: 16)",
    )
    add_shard_argument(parser)
    parser.epilog = (
        "Exit status: 0 when every video has its flow (now or from an earlier run), 1 when "
        "any video failed (each failure is listed with its cause), 2 on bad arguments or a "
        "missing OpenCV (pip install 'vidssl[flow]')."
    )


@dataclass(frozen=True)
class Job:
    src: str
    dst: str
    method: str
    device: str
    short_side: int | None
    bound: float
    codec: str
    quality: int
    batch: int
    threads: int  # 0: leave torch / OpenCV thread pools alone


def output_path(src_root: Path, dst_root: Path, source: Path) -> Path:
    """``SRC/a/b.mp4`` -> ``DST/a/b.mp4.vfs``; ``SRC/a/b.mp4.vfs`` -> ``DST/a/b.mp4.vfs``."""
    from vidssl.app.prepare import output_path as raw_output_path
    from vidssl.data.extensions import STORE_SUFFIX

    if source.suffix.lower() == STORE_SUFFIX:
        return dst_root / source.relative_to(src_root)
    return raw_output_path(src_root, dst_root, source)


def find_sources(root: Path, exclude: Path | None = None) -> list[Path]:
    """Raw videos and ``.vfs`` files under ``root``, sorted; hidden names and anything under
    ``exclude`` (the output folder, when it lies inside ``root``) are skipped."""
    from vidssl.data.extensions import find_video_files

    return find_video_files(root, exclude=exclude)


def _flow_fn(method: str, device: str) -> FlowFn:
    from vidssl.flow import create_flow

    key = (method, device)
    if key not in _FLOW_FNS:
        _FLOW_FNS[key] = create_flow(method, device=device)
    return _FLOW_FNS[key]


def flow_one(job: Job) -> str | None:
    """Compute and store the flow of ``job.src``; returns None or the cause of failure."""
    from vidssl.data.flow_extract import extract_flow
    from vidssl.data.video import describe_exception

    try:
        if job.threads:
            from vidssl.flow import FLOW_METHODS
            from vidssl.flow.opencv import set_threads

            set_threads(job.threads)
            if FLOW_METHODS[job.method].uses_device:  # a torch method: no torch import otherwise
                import torch

                torch.set_num_threads(job.threads)
        extract_flow(
            job.src,
            job.dst,
            _flow_fn(job.method, job.device),
            method=job.method,
            bound=job.bound,
            short_side=job.short_side,
            codec=job.codec,
            quality=job.quality,
            batch=job.batch,
        )
    except Exception as exc:  # report every failure at the end instead of aborting the run
        return getattr(exc, "cause", None) or describe_exception(exc)
    return None


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    from vidssl.app.progress import print_failures, progress, run_jobs, shard_items
    from vidssl.flow import FLOW_METHODS
    from vidssl.flow.opencv import OpenCVUnavailableError

    src, dst = args.src, args.dst
    if not src.is_dir():
        print(f"vidssl flow: SRC {src} is not a folder", file=sys.stderr)
        return 2
    if args.short_side < 0 or args.workers < 1 or args.batch < 1 or not args.bound > 0:
        print(
            "vidssl flow: need --short-side >= 0, --workers >= 1, --batch >= 1, --bound > 0",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.quality <= 95:
        print("vidssl flow: need 1 <= --quality <= 95", file=sys.stderr)
        return 2
    uses_device = FLOW_METHODS[args.method].uses_device
    device = _resolve_device(args.device) if uses_device else "cpu"
    try:
        _flow_fn(args.method, device)  # fail fast: missing OpenCV, bad device
    except (OpenCVUnavailableError, ValueError, RuntimeError) as exc:
        print(f"vidssl flow: --method {args.method}: {exc}", file=sys.stderr)
        return 2
    k, n = args.shard
    sources = shard_items(find_sources(src, exclude=dst), k, n)
    threads = 1 if args.workers > 1 else 0
    jobs: list[Job] = []
    done = 0
    failures: list[tuple[str, str]] = []
    claimed: dict[Path, Path] = {}  # output -> source (a.mp4 and a.mp4.vfs would collide)
    for source in sources:
        out = output_path(src, dst, source)
        if out in claimed:
            failures.append((str(source), f"same output {out} as {claimed[out]}"))
            continue
        claimed[out] = source
        if out.exists():
            done += 1  # written atomically: an existing output is complete
            continue
        jobs.append(
            Job(
                str(source),
                str(out),
                args.method,
                device,
                args.short_side or None,
                args.bound,
                args.codec,
                args.quality,
                args.batch,
                threads,
            )
        )
    shard = f" (shard {k + 1}/{n})" if n > 1 else ""
    print(
        f"vidssl flow: {len(sources)} videos{shard}, {done} already done, {len(jobs)} to do "
        f"(method {args.method}{', ' + device if uses_device else ''})",
        file=sys.stderr,
    )
    computed = 0
    with progress(total=len(jobs), desc=f"flow {args.method}", unit="video") as bar:
        for job, error in run_jobs(flow_one, jobs, args.workers):
            if error is None:
                computed += 1
            else:
                failures.append((job.src, error))
                bar.set_postfix(failed=len(failures))
            bar.update(1)
    print(f"computed {computed}, skipped {done} (already done), failed {len(failures)}")
    print_failures(failures)
    return 1 if failures else 0
