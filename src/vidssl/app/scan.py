"""`vidssl scan DIR`: pre-flight check that every video under a folder decodes.

Every raw video is decoded through (``vidssl.data.video.probe``), because some damage only
shows partway through a file; ``.vfs`` stores get their index checked and three frames
decoded. Prints an aligned table, then the unreadable files; exits 1 if any is unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidssl.data.extensions import SOURCE_EXTENSIONS, find_video_files

_HELP_EXT = " ".join(sorted(s.lstrip(".") for s in SOURCE_EXTENSIONS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, metavar="DIR", help="folder to search recursively")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per file (path, ok, error, frames, fps, width, height, "
        "duration) instead of the table",
    )
    parser.epilog = (
        f"Files found by extension ({_HELP_EXT}); names starting with '.' are skipped. "
        "Exit status: 0 when every file decodes, 1 when any is unreadable or none is found, "
        "2 when DIR does not exist."
    )


@dataclass
class ScanResult:
    """One row of the scan. ``info`` is None when the file is unreadable."""

    path: Path
    info: Any  # vidssl.data.video.VideoInfo | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        i = self.info
        return {
            "path": str(self.path),
            "ok": self.error is None,
            "error": self.error,
            "frames": i.frames if i else None,
            "fps": i.fps if i else None,
            "width": i.width if i else None,
            "height": i.height if i else None,
            "duration": i.duration if i else None,
        }


def find_videos(root: Path) -> list[Path]:
    """Video and ``.vfs`` files under ``root`` (or ``root`` itself), sorted; hidden ones skipped."""
    return find_video_files(root)


def scan_file(path: Path) -> ScanResult:
    from vidssl.data.sources import probe_source
    from vidssl.data.video import VideoDecodeError

    try:
        return ScanResult(path, probe_source(path), None)
    except VideoDecodeError as exc:
        return ScanResult(path, None, exc.cause)


def format_table(results: Sequence[ScanResult], root: Path) -> str:
    """Aligned text table: path, stream, size, fps, duration, frames, status."""
    header = ("path", "stream", "size", "fps", "duration", "frames", "status")
    rows = [header]
    for r in results:
        name = str(r.path.relative_to(root))
        i = r.info
        if i is None:
            rows.append((name, "-", "-", "-", "-", "-", "UNREADABLE"))
            continue
        stream = f"#{i.stream_index} {i.codec}" + (f" rot{i.rotation:+d}" if i.rotation else "")
        duration = f"{i.duration:.2f}s" if i.duration is not None else "?"
        rows.append(
            (name, stream, f"{i.width}x{i.height}", f"{i.fps:.2f}", duration, str(i.frames), "ok")
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    numeric = {3, 4, 5}  # right-align numbers
    lines = [
        "  ".join(
            cell.rjust(w) if c in numeric else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from vidssl.app.progress import progress

    root: Path = args.dir
    if not root.exists():
        print(f"vidssl scan: {root} does not exist", file=sys.stderr)
        return 2
    files = find_videos(root)
    if not files:
        print(f"vidssl scan: no video files under {root}", file=sys.stderr)
        return 1
    results = []
    for path in progress(files, desc="scan", unit="video", leave=False):
        result = scan_file(path)
        results.append(result)
        if args.json:
            print(json.dumps(result.to_json()), flush=True)
    bad = [r for r in results if r.error is not None]
    if not args.json:
        print(format_table(results, root if root.is_dir() else root.parent))
        print(f"\n{len(results)} files, {len(results) - len(bad)} ok, {len(bad)} unreadable")
        if bad:
            print("\nUnreadable files:")
            for r in bad:
                print(f"  {r.path}: {r.error}")
    return 1 if bad else 0
