"""Dataset layouts: where the videos of a dataset are and what their labels are.

Each layout function reads one split/subset of a dataset from disk and returns a
:class:`DatasetIndex` (items ``(path, label, extra)`` + class names). Datasets are opened by
name through :func:`vidssl.data.datasets.open_split` (the one registry, ``DATASETS``).

Prepared storage. ``vidssl prepare`` mirrors a raw video tree into ``.vfs`` frame-storage
files (``<root>/<rel>.vfs``, e.g. ``ApplyEyeMakeup/v_X.avi.vfs``). Every layout that resolves a
listed file name (``ucf101``, ``hmdb51``, ``kinetics``) accepts a prepared root in place of the
raw one: for a listed ``rel`` it uses the first existing of ``rel``, ``rel + ".vfs"`` and
``rel`` with its suffix replaced by ``.vfs``. The folder-scanning layouts (``class_folders``,
``unlabelled``) pick up ``.vfs`` files like any video file (a raw file and its ``.vfs`` twin
in one folder count once, the ``.vfs`` one is used).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vidssl.data.extensions import (
    SOURCE_EXTENSIONS,
    STORE_SUFFIX,
    find_video_files,
    is_source_file,
)


@dataclass(frozen=True)
class VideoItem:
    """One video: its file, primary label (-1 when unlabelled) and further label sets."""

    path: str
    label: int
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class DatasetIndex:
    """The items of one split/subset and the class names (``classes[label]``)."""

    items: list[VideoItem]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"DatasetIndex({len(self.items)} items, {len(self.classes)} classes)"

    def subset(self, indices: Iterable[int]) -> DatasetIndex:
        """A new index holding ``items[i]`` for ``i`` in ``indices`` (same classes)."""
        return DatasetIndex([self.items[i] for i in indices], list(self.classes))


# --- helpers -----------------------------------------------------------------------------------


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} is not a directory")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _prefer_prepared(files: Iterable[Path]) -> list[Path]:
    """Drop raw files whose prepared twin (``x.avi.vfs`` or ``x.vfs``) is in the same list."""
    files = sorted(files)
    present = set(files)
    kept = []
    for f in files:
        if f.suffix != STORE_SUFFIX and (
            Path(str(f) + STORE_SUFFIX) in present or f.with_suffix(STORE_SUFFIX) in present
        ):
            continue
        kept.append(f)
    return kept


def resolve_video(root: Path, rel: str) -> Path | None:
    """The file for listed name ``rel`` under ``root``: raw, then ``rel.vfs``, then ``rel``->.vfs."""
    raw = root / rel
    for candidate in (raw, Path(str(raw) + STORE_SUFFIX), raw.with_suffix(STORE_SUFFIX)):
        if candidate.is_file():
            return candidate
    return None


def _resolve_all(root: Path, rels: list[tuple[str, int]], list_file: Path) -> list[VideoItem]:
    items = []
    missing = []
    for rel, label in rels:
        path = resolve_video(root, rel)
        if path is None:
            missing.append(rel)
        else:
            items.append(VideoItem(str(path), label))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} video(s) listed in {list_file} are missing under {root}, "
            f"e.g. {root / missing[0]} (also tried the prepared names {missing[0]}{STORE_SUFFIX})"
        )
    return items


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


# --- generic folders ----------------------------------------------------------------------------


def class_folders(root: str | Path) -> DatasetIndex:
    """``root/<class>/**/<video>``: one sub-folder per class, classes sorted by name."""
    root = _require_dir(Path(root), "class-folder dataset root")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"no class sub-folders in {root}")
    items = []
    for label, name in enumerate(classes):
        files = _prefer_prepared(find_video_files(root / name))
        items += [VideoItem(str(p), label) for p in files]
    if not items:
        raise FileNotFoundError(f"no video files in the class folders of {root}")
    return DatasetIndex(items, classes)


def unlabelled(root: str | Path) -> DatasetIndex:
    """Every video file under ``root``, searched recursively, sorted; label -1."""
    root = _require_dir(Path(root), "video folder")
    files = _prefer_prepared(find_video_files(root))
    if not files:
        raise FileNotFoundError(f"no video files under {root}")
    return DatasetIndex([VideoItem(str(p), -1) for p in files], [])


# --- UCF101 --------------------------------------------------------------------------------------


def ucf101(
    video_root: str | Path, splits_dir: str | Path, split: int = 1, subset: str = "train"
) -> DatasetIndex:
    """UCF101 with the official ``ucfTrainTestlist`` files.

    ``splits_dir/classInd.txt`` lines ``"1 ApplyEyeMakeup"``; ``trainlist0{split}.txt`` lines
    ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"``; ``testlist0{split}.txt`` lines hold the
    path only and the label comes from the class folder via ``classInd`` (matched
    case-insensitively: the official lists spell ``HandStandPushups`` both ways). Videos are
    ``video_root/<class>/<file>``. Labels are 0-based (``classInd`` id - 1).
    """
    if split not in (1, 2, 3):
        raise ValueError(f"split={split}: UCF101 has splits 1, 2, 3")
    lists = {"train": "trainlist", "test": "testlist"}
    if subset not in lists:
        raise ValueError(f"subset={subset!r}: expected one of {sorted(lists)}")
    video_root = _require_dir(Path(video_root), "UCF101 video root")
    splits_dir = _require_dir(Path(splits_dir), "UCF101 splits folder")
    class_file = _require_file(splits_dir / "classInd.txt", "UCF101 class index")
    classes: list[str] = []
    for n, line in enumerate(_read_lines(class_file), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise ValueError(
                f"{class_file}:{n}: expected '<id> <ClassName>' in order, got {line!r}"
            )
        classes.append(parts[1])
    by_name = {c.lower(): i for i, c in enumerate(classes)}
    list_file = _require_file(splits_dir / f"{lists[subset]}0{split}.txt", f"UCF101 {subset} list")
    rels = []
    for n, line in enumerate(_read_lines(list_file), 1):
        parts = line.split()
        rel = parts[0].replace("\\", "/")
        folder = rel.split("/")[0].lower()
        if len(parts) >= 2:
            label = int(parts[1]) - 1
            if not 0 <= label < len(classes):
                raise ValueError(f"{list_file}:{n}: class id {parts[1]} not in {class_file}")
        elif folder in by_name:
            label = by_name[folder]
        else:
            raise ValueError(f"{list_file}:{n}: class folder of {rel!r} not in {class_file}")
        rels.append((rel, label))
    return DatasetIndex(_resolve_all(video_root, rels, list_file), classes)


# --- HMDB51 -------------------------------------------------------------------------------------

_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
_HMDB_SUBSETS = {"train": 1, "test": 2, "unused": 0}


def hmdb51(
    video_root: str | Path, splits_dir: str | Path, split: int = 1, subset: str = "train"
) -> DatasetIndex:
    """HMDB51 with the official ``testTrainMulti_7030_splits`` files.

    ``splits_dir/<class>_test_split{split}.txt`` lines ``"<video>.avi <k>"`` with k = 1 train,
    2 test, 0 unused; classes sorted by name; videos ``video_root/<class>/<video>``.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"split={split}: HMDB51 has splits 1, 2, 3")
    if subset not in _HMDB_SUBSETS:
        raise ValueError(f"subset={subset!r}: expected one of {sorted(_HMDB_SUBSETS)}")
    video_root = _require_dir(Path(video_root), "HMDB51 video root")
    splits_dir = _require_dir(Path(splits_dir), "HMDB51 splits folder")
    files = {}
    for p in splits_dir.iterdir():
        m = _HMDB_SPLIT.match(p.name)
        if m and int(m["split"]) == split:
            files[m["cls"]] = p
    if not files:
        raise FileNotFoundError(f"no '<class>_test_split{split}.txt' files in {splits_dir}")
    classes = sorted(files)
    want = _HMDB_SUBSETS[subset]
    items: list[VideoItem] = []
    for label, name in enumerate(classes):
        rels = []
        for n, line in enumerate(_read_lines(files[name]), 1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{files[name]}:{n}: expected '<video> <0|1|2>', got {line!r}")
            if int(parts[1]) == want:
                rels.append((f"{name}/{parts[0]}", label))
        items += _resolve_all(video_root, rels, files[name])
    return DatasetIndex(items, classes)


# --- Kinetics -----------------------------------------------------------------------------------


def _kinetics_stems(youtube_id: str, start: str, end: str) -> list[str]:
    names = []
    try:
        names.append(f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}")
    except ValueError:
        pass
    names.append(youtube_id)
    return names


def kinetics(
    video_root: str | Path,
    csv_path: str | Path,
    subset: str = "train",
    skip_missing: bool = False,
) -> DatasetIndex:
    """Kinetics-400/600/700 from the official annotation CSV.

    CSV columns ``label, youtube_id, time_start, time_end, split`` (extra columns are ignored;
    without a ``label`` column every item is unlabelled). Classes are the sorted labels of the
    whole CSV, so every subset shares one class numbering. Rows whose ``split`` equals
    ``subset`` are kept (when the CSV has no ``split`` column all rows are kept).

    A row's file is ``{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>`` (or
    ``{youtube_id}.<ext>``), with any video extension, found by one recursive scan of
    ``video_root``, so all common layouts work:

    - ``video_root/<split>/<label>/<file>`` (the ActivityNet crawler; ``<label>`` may have
      spaces replaced by ``_``),
    - ``video_root/<label>/<file>``,
    - ``video_root/<split>/<file>`` (the CVDF ``kinetics-dataset`` tarballs),
    - ``video_root/<file>`` (flat),

    and their prepared ``.vfs`` mirrors. When a name occurs more than once, a file under a
    ``<subset>`` folder wins. Missing videos raise an error naming the first one, unless
    ``skip_missing`` (YouTube videos disappear; the count of skipped rows is in the error-free
    result's length).
    """
    video_root = _require_dir(Path(video_root), "Kinetics video root")
    csv_path = _require_file(Path(csv_path), "Kinetics annotation CSV")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        for col in ("youtube_id", "time_start", "time_end"):
            if col not in fields:
                raise ValueError(f"{csv_path}: missing column {col!r} (have {sorted(fields)})")
        rows = list(reader)
    labelled = "label" in fields
    classes = sorted({r["label"] for r in rows}) if labelled else []
    label_of = {c: i for i, c in enumerate(classes)}
    if "split" in fields:
        rows = [r for r in rows if r["split"] == subset]
        if not rows:
            raise ValueError(f"{csv_path}: no rows with split == {subset!r}")

    # one scan: file stem (without video/prepared suffixes) -> candidate paths
    by_stem: dict[str, list[Path]] = {}
    for dirpath, _, names in os.walk(video_root):
        for name in names:
            p = Path(dirpath) / name
            if name.startswith(".") or not is_source_file(p):
                continue
            stem = p.name
            while Path(stem).suffix.lower() in SOURCE_EXTENSIONS:
                stem = stem[: -len(Path(stem).suffix)]
            by_stem.setdefault(stem, []).append(p)

    def pick(paths: list[Path]) -> Path:
        in_subset = [p for p in paths if subset in p.relative_to(video_root).parts[:-1]]
        return _prefer_prepared(in_subset or paths)[0]

    items = []
    missing = []
    for r in rows:
        stems = _kinetics_stems(r["youtube_id"], r["time_start"], r["time_end"])
        found = next((by_stem[s] for s in stems if s in by_stem), None)
        if found is None:
            missing.append(stems[0])
            continue
        items.append(VideoItem(str(pick(found)), label_of[r["label"]] if labelled else -1))
    if missing and not skip_missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(rows)} {subset!r} videos in {csv_path} are not under "
            f"{video_root}, e.g. {missing[0]}.mp4 (pass skip_missing=True to drop them)"
        )
    if not items:
        raise FileNotFoundError(
            f"none of the {subset!r} videos of {csv_path} are under {video_root}"
        )
    return DatasetIndex(items, classes)
