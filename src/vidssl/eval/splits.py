"""The dataset side of an evaluation: splits, the train / test subsets and their label sets.

Splits: datasets with official splits (UCF101, HMDB51) read split 1, 2 or 3; the in-memory
synthetic set has none, so its split ``k`` draws the set with generator seed ``seed + k - 1``
(three independent train/test draws); other datasets have split 1 only.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidssl.config import ConfigError, check_type
from vidssl.data.datasets import (
    BuiltDataset,
    DatasetArgError,
    dataset_hints,
    dataset_params,
    open_split,
)

SPLITS: tuple[int, ...] = (1, 2, 3)

# dataset -> name of its primary label set in results (default: the dataset's name)
PRIMARY_LABEL_SET: dict[str, str] = {"synthetic": "motion"}


# ---------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """Train and test subsets of one split, plus what the label sets are called."""

    split: int
    args: dict[str, Any]  # builder keywords of this split (without root / subset)
    train: BuiltDataset
    test: BuiltDataset
    label_sets: dict[str, str]  # batch key -> label set name in results ("label" -> "motion")
    class_names: dict[str, list[str]]  # batch key -> class names, index = label


def resolve_splits(split: int | str) -> list[int]:
    """``1`` / ``"2"`` -> ``[1]`` / ``[2]``; ``"all"`` -> ``[1, 2, 3]``."""
    if str(split) == "all":
        return list(SPLITS)
    if str(split) in {str(s) for s in SPLITS}:
        return [int(split)]
    raise ConfigError("--split", f"expected 1, 2, 3 or all, got {split!r}")


def _builder_params(dataset: str) -> dict[str, Any]:
    try:
        return dataset_params(dataset)
    except DatasetArgError as err:  # an unknown dataset
        raise ConfigError("--data", err.message) from err


def check_dataset_args(dataset: str, root: str | None, args: dict[str, Any]) -> None:
    """Dataset name, folder and builder keywords, checked before any work."""
    params = _builder_params(dataset)
    hints = dataset_hints(dataset)
    for name, value in args.items():
        if name in ("root", "subset") or name not in params:
            allowed = sorted(set(params) - {"root", "subset"})
            raise ConfigError(
                f"data.{name}",
                f"unknown argument for dataset {dataset!r}; expected one of {allowed}",
            )
        check_type(value, hints.get(name, Any), f"data.{name}")
    needs_root = "root" in params and params["root"].default is inspect.Parameter.empty
    if needs_root and not root:
        raise ConfigError("--root", f"dataset {dataset!r} needs its data folder")
    if root and not Path(root).exists():
        raise ConfigError("--root", f"path does not exist: {root}")


def split_args(dataset: str, root: str | None, args: dict[str, Any], split: int) -> dict[str, Any]:
    """Builder keywords for ``split``: the official split, or a synthetic draw (see module doc)."""
    params = _builder_params(dataset)
    if "split" in params:
        return {**args, "split": split}
    if "seed" in params and not root:  # generated in memory: split k = generator seed + k - 1
        return {**args, "seed": int(args.get("seed", params["seed"].default)) + split - 1}
    if split != 1:
        raise ConfigError("--split", f"dataset {dataset!r} has a single split; use --split 1")
    return dict(args)


def build_subset(dataset: str, root: str | None, args: dict[str, Any], subset: str) -> BuiltDataset:
    """Subset ``subset`` of ``dataset`` (in ``root``) built with the keywords ``args``."""
    try:
        return open_split(dataset, root, subset, args)
    except DatasetArgError as err:  # names the field: --data, data.<argument>
        field = "--data" if err.field == "dataset" else f"data.{err.field.removeprefix('args.')}"
        raise ConfigError(field, err.message) from err


def _extra_class_names(
    root: str | None, args: dict[str, Any], keys: Sequence[str]
) -> dict[str, list[str]]:
    """Class names of the synthetic set's extra label sets (``appearance``)."""

    from vidssl.data.synthetic import APPEARANCES

    names: dict[str, list[str]] = {}
    meta = Path(root) / "classes.json" if root else None
    if meta is not None and meta.is_file():
        stored = json.loads(meta.read_text())
        names = {k: list(stored[k]) for k in keys if k in stored}
    if "appearance" in keys and "appearance" not in names:
        count = int(args.get("num_appearances", len(APPEARANCES)))
        names["appearance"] = list(APPEARANCES)[:count]
    return names


# dataset -> (root, builder args, extra label keys) -> class names of its extra label sets
EXTRA_CLASS_NAMES: dict[
    str, Callable[[str | None, dict[str, Any], Sequence[str]], dict[str, list[str]]]
] = {"synthetic": _extra_class_names}


def load_split(
    dataset: str, root: str | None, args: dict[str, Any], split: int, cfg: Any
) -> SplitData:
    """Build the train and test subsets of ``split`` and name their label sets."""
    sargs = split_args(dataset, root, args, split)
    train = build_subset(dataset, root, sargs, cfg.train_subset)
    test = build_subset(dataset, root, sargs, cfg.test_subset)
    extras = sorted(train.index.items[0].extra) if train.index.items else []
    label_sets = {"label": PRIMARY_LABEL_SET.get(dataset, dataset), **{k: k for k in extras}}
    names_of = EXTRA_CLASS_NAMES.get(dataset)
    class_names = {"label": list(train.index.classes)}
    if names_of is not None:
        class_names.update(names_of(root, sargs, extras))
    return SplitData(split, sargs, train, test, label_sets, class_names)


def item_labels(built: BuiltDataset, key: str) -> Tensor:
    """Label set ``key`` ("label" or an extra key) of every video of ``built``: (N,) int64."""
    items = built.index.items
    return torch.tensor([it.label if key == "label" else it.extra[key] for it in items])


def labelled_keys(data: SplitData) -> list[str]:
    """Label sets (batch keys) with a label on every train and test video; raises if none."""
    keys = [
        key
        for key in data.label_sets
        if (item_labels(data.train, key) >= 0).all() and (item_labels(data.test, key) >= 0).all()
    ]
    if not keys:
        raise ValueError(
            f"split {data.split} has unlabelled train/test videos; the protocols need labels"
        )
    return keys
