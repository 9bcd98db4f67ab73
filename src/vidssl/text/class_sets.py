"""Class sets for language-video training: class names by source, held-out classes for zero-shot."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from vidssl.text.prompts import load_class_list


def _synthetic_classes() -> list[str]:
    from vidssl.data.synthetic import MOTIONS

    return list(MOTIONS)


# class-list names that are not shipped class-list files -> their class names (index = label)
CLASS_LISTS: dict[str, Callable[[], list[str]]] = {"synthetic": _synthetic_classes}


def resolve_class_names(source: str) -> list[str]:
    """Class names of ``source``: a key of ``CLASS_LISTS``, a shipped class list or a file."""
    if source in CLASS_LISTS:
        return CLASS_LISTS[source]()
    return load_class_list(source)


def choose_held_out(
    classes: Sequence[str], names: Sequence[str] | None, fraction: float, seed: int
) -> list[int]:
    """Labels of the held-out classes: ``names`` (must be in ``classes``), else a seeded
    random ``ceil(fraction * K)`` of the K classes (none when ``fraction`` is 0), sorted."""
    if names:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise ValueError(f"held_out_classes: unknown class(es) {unknown}; classes: {classes}")
        labels = sorted({list(classes).index(n) for n in names})
    elif fraction > 0:
        count = math.ceil(fraction * len(classes))
        labels = sorted(np.random.default_rng(seed).permutation(len(classes))[:count].tolist())
    else:
        return []
    if len(labels) >= len(classes):
        raise ValueError(f"held_out_classes: at least one class must stay for training ({classes})")
    return labels
