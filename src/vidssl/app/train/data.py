"""Batches for the loop: a resumable distributed sampler, the per-epoch loader, device moves.

The data order of epoch ``e`` is ``DistributedSampler``'s permutation seeded with
``seed + e`` (rank r takes every W-th index from r), so it is a pure function of
``(seed, epoch)``; :class:`ResumableSampler` can start partway into it after a resume. The
loader's own generator (worker base seeds) is seeded from ``(seed, epoch)`` too, so creating a
loader never draws from the global RNG, whose state the checkpoints restore.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that skips the first ``start`` indices of the epoch."""

    start: int = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return super().__len__() - self.start


def make_loader(
    dataset: Dataset,
    sampler: ResumableSampler,
    *,
    batch_size: int,
    workers: int,
    seed: int,
    epoch: int,
    pin_memory: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """The loader of one epoch (full batches only)."""
    generator = torch.Generator().manual_seed(seed + 7919 * epoch)  # not the global RNG
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=True,
        generator=generator,
    )


def to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """Every tensor of a (nested) batch on ``device``; 5-D float tensors in channels_last_3d."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 5 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        return batch
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def count_clips(batch: dict[str, Any]) -> int:
    """Clips in a collated batch: N for "video", N*K for "clips", N*V for V "views"."""
    if "views" in batch:
        return sum(int(v.shape[0]) for v in batch["views"])
    if "clips" in batch:
        return int(batch["clips"].shape[0] * batch["clips"].shape[1])
    if "video" in batch:
        return int(batch["video"].shape[0])
    return 0
