"""Which files vidssl reads as videos: the one definition of the video file extensions and of
the prepared-storage suffix, and the folder walk that every command uses.

``vidssl scan``, ``prepare``, ``flow``, ``embed`` and the folder-scanning dataset layouts all
find their files through :func:`find_video_files`, so a file one of them accepts is accepted
by all. This module imports nothing heavy (no PyAV), so the CLI can use it at start-up.
"""

from __future__ import annotations

from pathlib import Path

# prepared frame storage written by `vidssl prepare` / `vidssl flow` (vidssl.data.storage)
STORE_SUFFIX = ".vfs"

# raw video containers (lower-case suffixes) that PyAV decodes
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4",
        ".avi",
        ".mov",
        ".mkv",
        ".webm",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".ts",
    }
)

# every suffix that `open_video` reads: raw videos and prepared storage
SOURCE_EXTENSIONS: frozenset[str] = VIDEO_EXTENSIONS | {STORE_SUFFIX}


def is_raw_video(path: str | Path) -> bool:
    """True for a file name with a raw video container suffix (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_source_file(path: str | Path) -> bool:
    """True for a raw video or a ``.vfs`` prepared-storage file name."""
    return Path(path).suffix.lower() in SOURCE_EXTENSIONS


def find_video_files(
    root: str | Path, *, raw_only: bool = False, exclude: str | Path | None = None
) -> list[Path]:
    """Video files under ``root`` (searched recursively; ``root`` itself when it is a file),
    sorted. Names starting with '.' (files or folders below ``root``) are skipped.

    raw_only: raw videos only (no ``.vfs``); exclude: a folder whose files are skipped (an
    output folder inside ``root``).
    """
    root = Path(root)
    accept = is_raw_video if raw_only else is_source_file
    if root.is_file():
        return [root] if accept(root) else []
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for p in root.rglob("*"):
        if not p.is_file() or not accept(p):
            continue
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if skip is not None and p.resolve().is_relative_to(skip):
            continue
        found.append(p)
    return sorted(found)
