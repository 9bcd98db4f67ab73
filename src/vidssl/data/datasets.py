"""``VideoDataset``: an index of videos + a clip recipe, with corrupt-file skipping.

Item ``i`` of epoch ``e`` is built with ``np.random.default_rng([seed, e, i, attempt])``, so a
sample is deterministic given ``(seed, epoch, index)`` whatever the worker layout. Files are
opened lazily in ``__getitem__`` and closed before it returns, so the dataset pickles into
``DataLoader`` workers and never holds file descriptors between items.

Unreadable videos. When opening or reading a file raises ``VideoDecodeError``, the file is
logged (``logging`` warning, once per file per process), counted, and a replacement item is
drawn deterministically from ``(seed, epoch, i)``: a fixed random order over the other items.
The sample carries ``"skipped"``: the number of files replaced to make it. After
``max_retries`` consecutive failures (or when every item has been tried) a ``RuntimeError``
names the files that failed, so a fully unreadable folder fails fast instead of hanging.

``DATASETS`` is the one dataset registry: name -> builder of the index (and opener). Every
caller opens a dataset through :func:`open_split`:
``index, opener = open_split(name, root, subset, args)``. Every builder takes the data folder
as ``root`` (ignored by the in-memory synthetic set when empty) and the train/test part as
``subset``; ``args`` holds the dataset-specific keywords.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from torch.utils.data import Dataset

from vidssl.data.batch_augment import deferred_augmentation
from vidssl.data.layouts import DatasetIndex, class_folders, hmdb51, kinetics, ucf101, unlabelled
from vidssl.data.recipes import ClipRecipe

if TYPE_CHECKING:  # sources imports PyAV; it is imported lazily at run time
    from vidssl.data.sources import VideoSource

log = logging.getLogger(__name__)

Opener = Callable[[str], "VideoSource"]


def default_opener(path: str) -> VideoSource:
    """``vidssl.data.sources.open_video`` (imported lazily: PyAV is heavy)."""
    from vidssl.data.sources import open_video

    return open_video(path)


def _decode_error_type() -> type[Exception]:
    from vidssl.data.video import VideoDecodeError

    return VideoDecodeError


class VideoDataset(Dataset):
    """``len(index)`` samples; sample ``i`` is ``recipe(open(index.items[i].path), rng)``.

    Args:
        index: the videos and labels.
        recipe: turns an opened video and a generator into a sample dict.
        seed: base seed (>= 0).
        opener: ``path -> VideoSource``; default ``vidssl.data.sources.open_video``. Must be
            picklable (a module-level function or a picklable object) for worker processes.
        max_retries: consecutive unreadable files tolerated for one sample before giving up.

    Each sample also holds ``"label"``, ``"index"`` (the requested index), ``"item"`` (the
    index of the item it came from: ``"index"`` unless an unreadable file was replaced), every
    key of the used item's ``extra`` and ``"skipped"``.
    """

    def __init__(
        self,
        index: DatasetIndex,
        recipe: ClipRecipe,
        seed: int = 0,
        opener: Opener | None = None,
        max_retries: int = 20,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed={seed}: must be >= 0")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries}: must be >= 0")
        if len(index.items) == 0:
            raise ValueError("VideoDataset: the dataset index is empty")
        self.index = index
        self.recipe = recipe
        self.seed = int(seed)
        self.opener = opener
        self.max_retries = int(max_retries)
        self.epoch = 0
        self.skipped_count = 0  # replacements made in this process
        self.failed_files: set[str] = set()  # files that failed in this process (logged once)

    def __len__(self) -> int:
        return len(self.index.items)

    @property
    def classes(self) -> list[str]:
        return self.index.classes

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` makes."""
        if epoch < 0:
            raise ValueError(f"epoch={epoch}: must be >= 0")
        self.epoch = int(epoch)

    def _open(self, path: str) -> VideoSource:
        return (self.opener or default_opener)(path)

    def _load(self, j: int, rng: np.random.Generator) -> dict[str, Any]:
        source = self._open(self.index.items[j].path)
        try:
            return self.recipe(source, rng)
        finally:
            source.close()

    def _candidates(self, i: int, epoch: int) -> Iterator[int]:
        """``i`` then up to ``max_retries`` replacements, in a fixed order per (seed, epoch, i).

        Lazy: the replacement order (a permutation of every item) is drawn only after ``i``
        failed, so a readable item costs no permutation.
        """
        yield i
        n = len(self.index.items)
        order = np.random.default_rng([self.seed, epoch, i, 1]).permutation(n)
        yield from itertools.islice((int(j) for j in order if j != i), self.max_retries)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``i`` of the epoch set by :meth:`set_epoch`, or of ``epoch`` for a key
        ``(epoch, i)`` (a loader that lives across epochs passes the epoch this way)."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        n = len(self.index.items)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} videos")
        i = int(i) % n
        decode_error = _decode_error_type()
        errors: list[str] = []
        for attempt, j in enumerate(self._candidates(i, epoch)):
            rng = np.random.default_rng([self.seed, epoch, i, attempt])
            try:
                sample = self._load(j, rng)
            except decode_error as exc:
                self._record_failure(self.index.items[j].path, exc)
                errors.append(str(exc))
                continue
            item = self.index.items[j]
            sample.update(item.extra)
            sample["label"] = item.label
            sample["index"] = i
            sample["item"] = j  # the item the sample came from (differs from i if replaced)
            sample["skipped"] = attempt
            return sample
        shown = "\n  ".join(errors[:5]) + ("\n  ..." if len(errors) > 5 else "")
        raise RuntimeError(
            f"VideoDataset: {len(errors)} consecutive unreadable videos while building sample {i} "
            f"(epoch {epoch}); is the dataset readable? Errors:\n  {shown}"
        )

    def __getitems__(self, indices: list[int] | list[tuple[int, int]]) -> list[dict[str, Any]]:
        """The samples of one batch (the DataLoader's batched fetch): ``[self[i] for i in
        indices]``, with the recipe's photometric augmentation applied to all of them at once
        where the recipe allows it (``vidssl.data.batch_augment``)."""
        with deferred_augmentation(self.recipe):
            return [self[i] for i in indices]

    def _record_failure(self, path: str, exc: BaseException) -> None:
        self.skipped_count += 1
        if path not in self.failed_files:
            self.failed_files.add(path)
            log.warning("skipping unreadable video (replaced by another item): %s", exc)


# --- datasets by name ---------------------------------------------------------------------------


class BuiltDataset(NamedTuple):
    """What a ``DATASETS`` builder returns; ``opener`` None means ``default_opener``."""

    index: DatasetIndex
    opener: Opener | None


def build_synthetic(
    root: str | Path | None = None,
    subset: str = "train",
    num_videos: int = 256,
    frames: int = 16,
    size: int = 64,
    num_motions: int = 8,
    num_appearances: int = 4,
    test_fraction: float = 0.25,
    seed: int = 0,
    upright: bool = False,
    cache: bool = True,
) -> BuiltDataset:
    """The built-in synthetic set: in memory, or read from ``root`` written by ``vidssl synth``.
    ``upright``: light from above (``SyntheticConfig.upright``), so that rotations are visible.
    ``cache``: render every video once per run into a shared uint8 frame cache
    (:class:`vidssl.data.synthetic_cache.CachedSyntheticOpener`; same frames, bitwise) instead
    of rendering the frames of every clip on request.

    Defaults match the CPU training defaults (64 px frames for the 64 px crops).
    """
    from vidssl.data.synthetic import (
        SyntheticConfig,
        SyntheticOpener,
        load_synthetic,
        synthetic_index,
    )
    from vidssl.data.synthetic_cache import CachedSyntheticOpener

    if root:
        return BuiltDataset(load_synthetic(root, subset), None)
    cfg = SyntheticConfig(
        num_videos=num_videos,
        frames=frames,
        size=size,
        num_motions=num_motions,
        num_appearances=num_appearances,
        test_fraction=test_fraction,
        seed=seed,
        upright=upright,
    )
    opener = CachedSyntheticOpener(cfg) if cache else SyntheticOpener(cfg)
    return BuiltDataset(synthetic_index(cfg, subset), opener)


def _sub(root: str | Path, subset: str | None) -> Path:
    root = Path(root)
    return root / subset if subset and (root / subset).is_dir() else root


def build_folder(root: str | Path, subset: str | None = None) -> BuiltDataset:
    """Class folders under ``root/subset`` when that folder exists, else under ``root``."""
    return BuiltDataset(class_folders(_sub(root, subset)), None)


def build_unlabelled(root: str | Path, subset: str | None = None) -> BuiltDataset:
    """Every video under ``root/subset`` (when it exists) or ``root``, recursively, label -1."""
    return BuiltDataset(unlabelled(_sub(root, subset)), None)


def _find_dir(root: Path, given: str | Path | None, name: str, field: str) -> Path:
    if given:
        return Path(given)
    for candidate in (root / name, root.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{field} not given and no {name}/ in {root} or {root.parent}")


def build_ucf101(
    root: str | Path, subset: str = "train", split: int = 1, splits_dir: str | Path | None = None
) -> BuiltDataset:
    """UCF101 videos under ``root``; lists in ``splits_dir`` (default: ``ucfTrainTestlist/``
    inside or next to ``root``)."""
    lists = _find_dir(Path(root), splits_dir, "ucfTrainTestlist", "splits_dir")
    return BuiltDataset(ucf101(root, lists, split, subset), None)


def build_hmdb51(
    root: str | Path, subset: str = "train", split: int = 1, splits_dir: str | Path | None = None
) -> BuiltDataset:
    """HMDB51 videos under ``root``; split files in ``splits_dir`` (default:
    ``testTrainMulti_7030_splits/`` inside or next to ``root``)."""
    lists = _find_dir(Path(root), splits_dir, "testTrainMulti_7030_splits", "splits_dir")
    return BuiltDataset(hmdb51(root, lists, split, subset), None)


def build_kinetics(
    root: str | Path,
    subset: str = "train",
    csv_path: str | Path | None = None,
    skip_missing: bool = False,
) -> BuiltDataset:
    """Kinetics videos under ``root``; annotations ``csv_path`` (default:
    ``root/annotations/<subset>.csv``, the CVDF layout)."""
    csv_file = Path(csv_path) if csv_path else Path(root) / "annotations" / f"{subset}.csv"
    return BuiltDataset(kinetics(root, csv_file, subset, skip_missing), None)


# dataset name -> builder(**kwargs) -> BuiltDataset(index, opener)
DATASETS: dict[str, Callable[..., BuiltDataset]] = {
    "synthetic": build_synthetic,
    "folder": build_folder,
    "unlabelled": build_unlabelled,
    "ucf101": build_ucf101,
    "hmdb51": build_hmdb51,
    "kinetics": build_kinetics,
}


# builder keywords filled from open_split's own arguments, never from ``args``
_OWNED = ("root", "subset")


class DatasetArgError(ValueError):
    """An unknown dataset or dataset argument. ``field`` names it: ``"dataset"`` or
    ``"args.<name>"`` (callers prefix their own section, e.g. ``data.args.<name>``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def dataset_params(name: str) -> dict[str, inspect.Parameter]:
    """Keyword parameters of dataset ``name``'s builder (``root`` and ``subset`` included)."""
    if name not in DATASETS:
        raise DatasetArgError(
            "dataset", f"unknown dataset {name!r}; choose from {sorted(DATASETS)}"
        )
    params = inspect.signature(DATASETS[name]).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: p for p in params if p.kind in kinds}


def dataset_hints(name: str) -> dict[str, Any]:
    """Type hints of dataset ``name``'s builder parameters (for value checks)."""
    dataset_params(name)  # the unknown-name error
    return typing.get_type_hints(DATASETS[name])


def open_split(
    name: str, root: str | Path | None, subset: str | None, args: dict[str, Any]
) -> BuiltDataset:
    """Subset ``subset`` of dataset ``name`` in folder ``root``, built with the further builder
    keywords ``args``: the one path from a dataset name to its index and opener (training,
    evaluation, zero-shot, bench and supervised all call it).

    ``root`` / ``subset`` are passed only when given and the builder takes them (the in-memory
    synthetic set has no folder; ``unlabelled`` ignores a missing subset folder). An unknown
    ``name`` or a key of ``args`` the builder does not take raises :class:`DatasetArgError`
    naming it.
    """
    params = dataset_params(name)
    for key in args:
        if key in _OWNED or key not in params:
            allowed = sorted(set(params) - set(_OWNED))
            raise DatasetArgError(
                f"args.{key}", f"unknown argument for dataset {name!r}; expected one of {allowed}"
            )
    kwargs = dict(args)
    if subset and "subset" in params:
        kwargs["subset"] = subset
    if root and "root" in params:
        kwargs["root"] = root
    return DATASETS[name](**kwargs)
